"""Tracker: scripted pose sequences (crossing, missed frames, leaving and returning), hysteresis, smoothing, errors.

Every test runs twice: with the compiled kernels (``pose_fast._track``) and with their NumPy reference.
"""
from __future__ import annotations

import numpy as np
import pytest
from synthetic import compiled_tracker_kernels

from pose_fast import _track_ref, tracking
from pose_fast.poses import Poses
from pose_fast.tracking import OneEuroFilter, Tracker


@pytest.fixture(autouse=True, params=["cython", "numpy"])
def kernels(request, monkeypatch):
    """The tracker's kernels for the test: trackers made in it use ``pose_fast._track`` or ``_track_ref``."""
    module = _track_ref if request.param == "numpy" else compiled_tracker_kernels()
    monkeypatch.setattr(tracking, "KERNELS", module)
    return module

# A standing person, BODY_18 order, in units of the person's height, relative to the hips' centre.
TEMPLATE = np.array([
    (0, -0.45), (0, -0.35), (-0.10, -0.35), (-0.13, -0.18), (-0.14, -0.02), (0.10, -0.35), (0.13, -0.18),
    (0.14, -0.02), (-0.06, 0.02), (-0.06, 0.25), (-0.06, 0.48), (0.06, 0.02), (0.06, 0.25), (0.06, 0.48),
    (-0.02, -0.47), (0.02, -0.47), (-0.04, -0.46), (0.04, -0.46),
])
FPS = 10.0
T0 = 1_764_000_000.0


def person(cx, cy, height=300.0, visible=None):
    kp = np.zeros((18, 3), np.float32)
    kp[:, :2] = TEMPLATE * height + (cx, cy)
    kp[:, 2] = 0.9
    if visible is not None:
        kp[[i for i in range(18) if i not in visible]] = 0.0
    return kp


def frame(*people, rng=None):
    """Poses of the given people, in a shuffled order when ``rng`` is given (the tracker must not rely on order)."""
    order = list(range(len(people)))
    if rng is not None:
        rng.shuffle(order)
    if not people:
        return Poses.empty(), order
    kps = np.stack([people[i] for i in order])
    return Poses(kps, np.full(len(people), 0.8, np.float32)), order


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, kind, track_id, frame_index, timestamp, people_count):
        self.events.append((kind, track_id, frame_index, timestamp, people_count))

    def kinds(self):
        return [(kind, tid) for kind, tid, *_ in self.events]


def run(tracker, frames, fps=FPS, rng=None):
    """Feed frames (each a list of person arrays, or None for an empty frame); return per-frame id lists in input
    order (ids of the people as given, whatever order the tracker saw them in)."""
    out = []
    for i, people in enumerate(frames):
        if people is None:
            people = []
        poses, order = frame(*people, rng=rng)
        ids = tracker.update(poses, i, T0 + i / fps)
        assert ids.shape == (len(people),) and ids.dtype.kind == "i"
        by_input = [None] * len(people)
        for pos, src in enumerate(order):
            by_input[src] = int(ids[pos])
        out.append(by_input)
    return out


@pytest.mark.parametrize("heights", [(300.0, 260.0), (300.0, 300.0)], ids=["different-sizes", "same-size"])
def test_crossing_people_keep_their_ids(heights):
    rec = Recorder()
    tracker = Tracker(on_event=rec)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(40):  # A walks right, B walks left; they overlap completely around frame 19-20
        frames.append([person(100 + 16 * i, 300, heights[0]), person(724 - 16 * i, 304, heights[1])])
    ids = run(tracker, frames, rng=rng)
    a, b = ids[2]
    assert a > 0 and b > 0 and a != b
    # the same ids all along; where the two coincide, one of them may be taken for a fragment of the other (-1)
    assert all(row[0] in (a, -1) and row[1] in (b, -1) for row in ids[2:]), ids
    assert sum(row.count(-1) for row in ids[2:]) <= 2, ids
    tracker.close(40, T0 + 4.0)
    assert sorted(rec.kinds()) == sorted([("enter", a), ("enter", b), ("exit", a), ("exit", b)])


def test_crossing_with_one_person_hidden_at_the_crossing():
    """B disappears behind A for two frames while they cross; both keep their ids."""
    tracker = Tracker()
    frames = []
    for i in range(30):
        a, b = person(200 + 15 * i, 300), person(650 - 15 * i, 300, 280)
        frames.append([a] if i in (15, 16) else [a, b])
    ids = run(tracker, frames, rng=np.random.default_rng(1))
    a_id, b_id = ids[5]
    assert a_id > 0 and b_id > 0 and a_id != b_id
    for i, row in enumerate(ids[5:], start=5):
        assert row[0] == a_id, (i, row)
        if len(row) == 2:
            assert row[1] == b_id, (i, row)


@pytest.mark.parametrize("fps", [10.0, 1.0])
def test_one_missed_frame_neither_ends_nor_restarts_a_person(fps):
    rec = Recorder()
    tracker = Tracker(on_event=rec, max_age=1.0)
    frames = [[person(300 + 2 * i, 250)] if i != 10 else None for i in range(20)]
    ids = run(tracker, frames, fps=fps)
    assert ids[10] == []
    seen = {row[0] for row in ids[2:] if row}
    assert len(seen) == 1 and seen.pop() > 0, ids
    assert [k for k, _ in rec.kinds()] == ["enter"]
    tracker.close(20, T0 + 20 / fps)
    assert [k for k, _ in rec.kinds()] == ["enter", "exit"]


def test_leaving_and_returning_much_later_is_a_new_person():
    rec = Recorder()
    tracker = Tracker(on_event=rec, max_age=1.0)
    frames = [[person(400, 250)] if i < 10 or i >= 50 else None for i in range(60)]
    ids = run(tracker, frames)
    first, second = ids[9][0], ids[59][0]
    assert first > 0 and second > 0 and first != second
    assert rec.kinds() == [("enter", first), ("exit", first), ("enter", second)]
    enter, exit_ = rec.events[0], rec.events[1]
    assert enter[2] == 0 and enter[3] == T0            # stamped with the frame first seen
    assert exit_[2] == 9 and exit_[3] == T0 + 0.9      # stamped with the frame last seen
    assert exit_[4] == 0 and enter[4] == 1
    tracker.close(60, T0 + 6.0)
    assert rec.kinds()[-1] == ("exit", second)
    assert rec.events[-1][2] == 60  # still in view at the end: exits when the stream ends


def test_hysteresis_birth_and_flicker():
    rec = Recorder()
    tracker = Tracker(on_event=rec)  # born after 0.2 s: 3 frames at 10 fps
    frames = []
    for i in range(20):
        people = [person(300, 250)]
        if i % 4 == 0:  # a false detection that shows up in isolated frames, never 3 in 5
            people.append(person(650, 250, 200))
        frames.append(people)
    ids = run(tracker, frames)
    assert [row[0] for row in ids[:3]] == [-1, -1, ids[2][0]] and ids[2][0] > 0
    for row in ids:
        if len(row) == 2:
            assert row[1] == -1
    assert rec.kinds() == [("enter", ids[2][0])]


def test_min_hits_one_is_born_at_once_and_ids_are_never_reused():
    rec = Recorder()
    tracker = Tracker(on_event=rec, min_hits=1, birth_time=0)
    ids = run(tracker, [[person(300, 250)], [person(302, 250)]])
    assert ids[0][0] == ids[1][0] == 1
    tracker.close(2, T0 + 0.2)
    tracker.close(2, T0 + 0.2)  # idempotent
    assert tracker.update(frame(person(300, 250))[0], 3, T0 + 0.3).tolist() == [2]
    assert rec.kinds() == [("enter", 1), ("exit", 1), ("enter", 2)]


def test_people_count_in_events():
    rec = Recorder()
    tracker = Tracker(on_event=rec, birth_time=0.1, max_age=0.25)
    frames = ([[person(200, 250)]] * 3 + [[person(200, 250), person(600, 250)]] * 5 + [[person(600, 250)]] * 5
              + [None] * 5)
    run(tracker, frames)
    assert [(kind, count) for kind, _, _, _, count in rec.events] == [
        ("enter", 1), ("enter", 2), ("exit", 1), ("exit", 0)]
    assert tracker.people_count == 0 and tracker.active_ids == []


def test_a_person_split_in_two_by_the_decoder_is_one_person():
    """The decoder sometimes returns an arm with its own copy of the neck next to the rest of the body (seen on
    one-by-one-person-detection.mp4): the fragment gets -1 and never becomes a person."""
    rec = Recorder()
    tracker = Tracker(on_event=rec)
    frames = []
    for i in range(30):
        body = person(300 + i, 250)
        if 5 <= i < 25:
            arm = np.zeros_like(body)
            arm[[1, 2, 3, 4, 16]] = body[[1, 2, 3, 4, 16]]
            arm[1, 1] -= 7.0  # a second neck peak 7 px away
            body[[2, 3, 4, 16]] = 0.0
            frames.append([body, arm])
        else:
            frames.append([body])
    ids = run(tracker, frames, rng=np.random.default_rng(4))
    person_id = ids[2][0]
    assert all(row[0] == person_id for row in ids[2:]), ids
    assert all(row[1] == -1 for row in ids[5:25]), ids
    assert rec.kinds() == [("enter", person_id)]
    # with the check off, the arm is a second person after a few frames (high_confidence=0: the arm's 5 keypoints
    # are a low-confidence detection, which on its own never starts a track either)
    rec2 = Recorder()
    run(Tracker(on_event=rec2, fragment_distance=0, high_confidence=0), frames)
    assert [k for k, _ in rec2.kinds()] == ["enter", "enter"]


def test_box_fallback_tracks_people_with_few_keypoints():
    """Only two keypoints visible (fewer than min_common_keypoints): matched by their boxes. (Two keypoints are a
    low-confidence detection, which never starts a track by default: high_confidence=0 lets them.)"""
    tracker = Tracker(min_common_keypoints=3, high_confidence=0)
    frames = [[person(200 + 5 * i, 250, visible=(1, 2)), person(600 - 5 * i, 250, visible=(1, 5))]
              for i in range(15)]
    ids = run(tracker, frames, rng=np.random.default_rng(2))
    a, b = ids[4]
    assert a > 0 and b > 0 and a != b
    assert all(row == [a, b] for row in ids[4:])


def test_smoothing_steadies_jitter_and_follows_motion():
    rng = np.random.default_rng(3)
    tracker = Tracker(smoothing=True, min_cutoff=0.5, beta=0.005)
    raw_err, smooth_err = [], []
    for i in range(60):
        truth = person(300, 250)
        noisy = truth.copy()
        noisy[:, :2] += rng.normal(0, 3.0, size=(18, 2))
        poses = Poses(noisy[None].copy(), np.ones(1, np.float32))
        tracker.update(poses, i, T0 + i / 30)
        if i >= 10:
            raw_err.append(np.abs(noisy[:, :2] - truth[:, :2]).mean())
            smooth_err.append(np.abs(poses.keypoints[0, :, :2] - truth[:, :2]).mean())
        assert np.array_equal(poses.keypoints[0, :, 2], noisy[:, 2])  # scores untouched
    assert np.mean(smooth_err) < 0.6 * np.mean(raw_err)
    # then a fast move: the filter follows within a few frames (no lag forever)
    for i in range(60, 90):
        truth = person(300 + 10 * (i - 60), 250)
        poses = Poses(truth[None].copy(), np.ones(1, np.float32))
        tracker.update(poses, i, T0 + i / 30)
    assert np.abs(poses.keypoints[0, :, :2] - truth[:, :2]).max() < 30


def test_smoothing_leaves_missing_keypoints_alone():
    tracker = Tracker(smoothing=True)
    for i in range(5):
        kp = person(300, 250, visible=set(range(14)) if i % 2 else None)
        poses = Poses(kp[None].copy(), np.ones(1, np.float32))
        tracker.update(poses, i, T0 + i / 30)
        assert np.all(poses.keypoints[0, 14:, :][poses.keypoints[0, 14:, 2] == 0] == 0)
        assert np.allclose(poses.keypoints[0, :14, :2], kp[:14, :2], atol=1e-3)  # static person: no drift


def test_smoothing_needs_writeable_keypoints():
    tracker = Tracker(smoothing=True)
    kp = person(300, 250)[None]
    kp.setflags(write=False)
    with pytest.raises(ValueError, match="poses.keypoints, which is read-only"):
        tracker.update(Poses(kp, np.ones(1, np.float32)), 0, T0)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_hits": 0}, r"min_hits must be an integer >= 1, got 0"),
    ({"min_hits": 2.5}, r"min_hits must be an integer, got 2.5"),
    ({"min_hits": True}, r"min_hits must be an integer, got True"),
    ({"hit_window": 0}, r"hit_window must be a finite number in \(0.0, inf\), got 0.0"),
    ({"max_speed": -1}, r"max_speed must be a finite number in \[0.0, inf\), got -1.0"),
    ({"high_confidence": 2}, r"high_confidence must be a finite number in \[0.0, 1.0\], got 2.0"),
    ({"max_age": 0}, r"max_age must be a finite number in \(0.0, inf\), got 0.0"),
    ({"max_age": float("nan")}, r"max_age must be a finite number in \(0.0, inf\), got nan"),
    ({"max_age": "1s"}, r"max_age must be a number, got '1s'"),
    ({"min_misses": 0}, r"min_misses must be an integer >= 1, got 0"),
    ({"min_similarity": 1.5}, r"min_similarity must be a finite number in \(0.0, 1.0\], got 1.5"),
    ({"keypoint_threshold": 1.0}, r"keypoint_threshold must be a finite number in \[0.0, 1.0\), got 1.0"),
    ({"min_common_keypoints": 19}, r"min_common_keypoints must be an integer between 1 and 18, got 19"),
    ({"fragment_distance": -0.1}, r"fragment_distance must be a finite number in \[0.0, 1.0\], got -0.1"),
    ({"smoothing": "yes"}, r"smoothing must be True or False, got 'yes'"),
    ({"min_cutoff": -1}, r"min_cutoff must be a finite number in \(0.0, inf\), got -1.0"),
    ({"beta": -0.1}, r"beta must be a finite number in \[0.0, inf\), got -0.1"),
    ({"on_event": 42}, r"on_event must be a callable\(kind, track_id, frame_index, timestamp, people_count\) or "
                       r"None, got 42"),
])
def test_bad_parameters_have_explicit_messages(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Tracker(**kwargs)


def test_bad_update_calls_have_explicit_messages():
    tracker = Tracker()
    poses = frame(person(300, 250))[0]
    with pytest.raises(ValueError, match=r"^poses must be a pose_fast.poses.Poses with keypoints of shape "
                                         r"\(P, 18, 3\), got ndarray$"):
        tracker.update(np.zeros((1, 18, 3)), 0, T0)
    with pytest.raises(ValueError, match=r"^frame_index must be an integer, got 1.0$"):
        tracker.update(poses, 1.0, T0)
    with pytest.raises(ValueError, match=r"^timestamp must be a finite number"):
        tracker.update(poses, 0, float("inf"))
    tracker.update(poses, 5, T0)
    with pytest.raises(ValueError, match=r"^frame_index must increase from one update to the next: got 5 after 5$"):
        tracker.update(poses, 5, T0 + 1)


def test_a_wall_clock_stepped_back_ages_nobody():
    """time.time() can jump back (NTP): the tracker keeps ageing by the increases only, it does not fail."""
    rec = Recorder()
    tracker = Tracker(on_event=rec, min_hits=1, birth_time=0, max_age=1.0)
    times = [T0, T0 + 0.1, T0 - 3600, T0 - 3599.9, T0 - 3599.8, T0 - 3599.0, T0 - 3598.0]
    people = [[person(300, 250)], [person(300, 250)], [], [], [person(300, 250)], [], []]
    for i, (ts, p) in enumerate(zip(times, people)):
        tracker.update(frame(*p)[0], i, ts)
    # seen at frame 4; missed at 5 (0.8 s of clock) and 6 (1.8 s): dies at frame 6, stamped with frame 4's time
    assert rec.events == [("enter", 1, 0, T0, 1), ("exit", 1, 4, T0 - 3599.8, 0)]


def test_one_euro_filter_validates_and_passes_constants_through():
    with pytest.raises(ValueError, match="d_cutoff must be a finite number"):
        OneEuroFilter(d_cutoff=0)
    f = OneEuroFilter()
    x = np.array([[1.0, 2.0]])
    for i in range(5):
        assert np.allclose(f(x, i / 30), x)


def test_people_standing_close_are_not_fragments():
    """Two whole people whose feet (same keypoints) almost touch, and a half-hidden person whose head and shoulders
    sit where the front person's are: all are people, none a fragment."""
    rec = Recorder()
    tracker = Tracker(on_event=rec)
    a = person(300, 250)
    b = person(300 + 2 * 0.06 * 300 + 3, 250)        # B's right ankle 3 px from A's left ankle
    behind = person(304, 246, visible={0, 1, 2, 5, 14, 15, 16, 17})  # only the head and shoulders show
    ids = run(tracker, [[a, b, behind]] * 10)
    assert len(set(ids[-1])) == 3 and -1 not in ids[-1], ids
    assert [k for k, _ in rec.kinds()] == ["enter"] * 3


def test_big_steps_at_a_few_results_per_second_keep_every_person():
    """Four people two heights apart walking right at 0.6 heights per second while the camera pans 5 % of a 1280-px
    width per result, seen twice a second (a stick at 2 inferences per second): each step is about 0.6 of a
    person's height. The
    tracker before issue 15 gave ids to none of them (a new candidate had no velocity and its similarity to the next
    detection fell under the threshold); now each is a person from its second result on, with one id throughout."""
    rec = Recorder()
    tracker = Tracker(on_event=rec)
    frames = []
    for k in range(12):
        x = 100 + (120 * 0.5 + 0.05 * 1280) * k  # 60 px of walking + 64 px of pan per result
        frames.append([person(x + 400 * n, 300 + 8 * n, 200 - 10 * n) for n in range(4)])
    ids = run(tracker, frames, fps=2.0, rng=np.random.default_rng(5))
    assert ids[0] == [-1] * 4
    assert len(set(ids[1])) == 4 and min(ids[1]) > 0, ids
    assert all(row == ids[1] for row in ids[1:]), ids
    assert [k for k, _ in rec.kinds()] == ["enter"] * 4


def test_time_is_the_media_time_when_given():
    """A file processed 50 times faster than real time: the wall clock (the events' stamps) moves 10 ms per result,
    the video 0.5 s. Ages are measured in the video's time: a person unseen for 3 results (1.5 s of video) exits,
    stamped with the wall-clock time last seen."""
    def feed(tracker, media):
        for i in range(10):
            people = [person(300 + 5 * i, 250)] if i < 4 else []
            tracker.update(frame(*people)[0], i * 5, T0 + 0.01 * i, media_time=0.5 * i if media else None)

    rec = Recorder()
    feed(Tracker(on_event=rec), media=True)
    assert [(kind, f, ts) for kind, _, f, ts, _ in rec.events] == [("enter", 0, T0), ("exit", 15, T0 + 0.03)]
    # the wall clock alone, as before issue 15: 30 ms of being seen are too short to be born (birth_time 0.2 s)
    rec = Recorder()
    feed(Tracker(on_event=rec), media=False)
    assert rec.events == []


def test_reset_forgets_without_events_and_ids_keep_increasing():
    rec = Recorder()
    tracker = Tracker(on_event=rec, birth_time=0)
    run(tracker, [[person(300, 250)]] * 3)
    assert tracker.active_ids == [1]
    tracker.close(3, T0 + 0.3)
    tracker.reset()  # what a stream loss does: close() for the exits, reset() for the new stream
    assert tracker.people_count == 0 and rec.kinds() == [("enter", 1), ("exit", 1)]
    ids = run(tracker, [[person(300, 250)]] * 3)  # frame indices start at 0 again
    assert ids[-1] == [2]
    tracker.update(frame(person(300, 250))[0], 3, T0 + 0.3)
    tracker.reset()  # without close(): no exit
    assert rec.kinds() == [("enter", 1), ("exit", 1), ("enter", 2)]
    assert run(tracker, [[person(300, 250)]] * 2)[-1] == [3]
