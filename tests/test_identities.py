"""Identities at the rates a slow device really runs (issue 15): the tracker on every 2nd, 3rd and 5th frame of the
shared videos (timestamps kept) against its own full-rate tracks, and under a synthetic camera pan.

Each video goes through the real model, decoder and person filter once per session (``video_poses``); the tracker
then runs offline on the kept poses (``pose_fast.bench.identities``, which ``pose-fast bench`` reports from too).

What was checked by eye (ids drawn on the frames, the full-rate run beside the every-5th-frame run, frames 0-60 of
store-aisle-detection.mp4 every 10th and frames 0, 5, 40-70 of people-walking.mp4): at full rate the tracks are
right. store-aisle: the man in the hat and the woman in teal keep their ids through the clip, and the blonde woman
who walks in at frame 30 gets a third id by frame 40 and keeps it while she stands in front of the man
(frames 50-60). people-walking: one person at the left edge in the first clip (an id by frame 5), then a woman and a
man walking side by side towards the camera, each with one id to the end. On every 5th frame each of them carries
one id from their second result on, the same person as at full rate (the numbers of the second clip's two are
swapped, which IDF1 does not count: it pairs ids, not numbers). So the full-rate tracks are a fair reference here.
The enter/exit counts of one-by-one-person-detection.mp4 (the slow test) were compared with the demo's stored
events, not by eye.
"""
from __future__ import annotations

import numpy as np
import pytest

from pose_fast.bench.identities import PAN_STEP, STRIDES, TARGET_IDF1, compare_runs, decode_video, idf1, pan, track_run

#: The multi-person clips are short (about 70 frames: quick); the long one (1394 frames) is marked slow.
QUICK = ("store-aisle", "people-walking")


@pytest.fixture(scope="session")
def video_poses(video_path, engine_for):
    """``video_poses(name)``: the people in every frame of a shared video (decoded once per session)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = decode_video(video_path(name), engine_for)
        return cache[name]

    return get


def _within(value, reference, share=0.10):
    return abs(value - reference) <= share * reference


def _check_stride(video, stride):
    reference = track_run(video)
    run = track_run(video, stride)
    result = compare_runs(reference, run)
    assert result["reference_people"] >= 1, "no one tracked at full rate: nothing compared"
    assert result["idf1"] >= TARGET_IDF1, result
    assert abs(result["people"] - result["reference_people"]) <= 1, result
    assert _within(result["enters"], result["reference_enters"]), result
    assert _within(result["exits"], result["reference_exits"]), result
    assert run["frames"] == list(range(0, len(video), stride))
    return result


@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("name", QUICK)
def test_every_nth_frame_gives_the_same_people_the_same_ids(video_poses, name, stride):
    _check_stride(video_poses(name), stride)


@pytest.mark.slow
@pytest.mark.parametrize("stride", STRIDES)
def test_every_nth_frame_of_the_long_video_gives_the_same_enters_and_exits(video_poses, stride):
    result = _check_stride(video_poses("one-by-one"), stride)
    assert result["reference_enters"] >= 3  # three people come and go in the first half alone


@pytest.mark.parametrize("stride", (1, 5))
@pytest.mark.parametrize("name", QUICK)
def test_a_camera_pan_does_not_break_identities(video_poses, name, stride):
    """Every result's poses 5 % of the width farther right than the one before (at stride 5 on people-walking,
    24 px per result): the same ids as without the pan."""
    video = video_poses(name)
    result = pan(video, stride)
    assert result["shift_px"] == PAN_STEP * video.size[0]
    assert result["reference_people"] >= 1
    assert result["idf1"] >= TARGET_IDF1, result
    assert result["people"] == result["reference_people"], result
    assert result["enters"] == result["reference_enters"], result


def _run(frames, ids, kps):
    return {"frames": frames, "ids": [np.array(i) for i in ids], "keypoints": kps, "events": []}


def test_idf1_counts_a_swap_and_a_missing_id():
    """The metric itself, on hand-made runs: two people, four frames."""
    rng = np.random.default_rng(0)
    kps = []
    for _ in range(4):
        kp = np.zeros((2, 18, 3))
        kp[:, :, :2] = rng.uniform(0, 400, size=(2, 18, 2))
        kp[:, :, 2] = 0.9
        kps.append(kp)
    frames = [0, 1, 2, 3]
    reference = _run(frames, [[1, 2]] * 4, kps)
    assert idf1(reference, _run(frames, [[7, 8]] * 4, kps))["idf1"] == 1.0          # other numbers, same people
    swapped = idf1(reference, _run(frames, [[7, 8], [7, 8], [8, 7], [8, 7]], kps))  # a swap half way
    assert swapped["idtp"] == 4 and swapped["idf1"] == 0.5
    missing = idf1(reference, _run(frames, [[7, -1]] * 4, kps))                       # one never born
    assert missing["idf1"] == pytest.approx(2 * 4 / (8 + 4))
    # detections are paired by position, not by their order in the frame
    reordered = _run(frames, [[8, 7]] * 4, [kp[::-1] for kp in kps])
    assert idf1(reference, reordered)["idf1"] == 1.0
    # only the frames both runs saw count
    assert idf1(reference, _run([0, 2], [[7, 8], [7, 8]], [kps[0], kps[2]]))["reference_detections"] == 4
