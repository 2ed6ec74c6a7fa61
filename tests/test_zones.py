"""Zones and lines: parsing (one-line errors), the anchor, hysteresis on edges, and the events on the shared
one-by-one video with a line placed across the people's path, stored and filtered through ``/detections``."""
from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pose_fast.poses import Poses
from pose_fast.zones import (
    Line,
    Zone,
    ZoneError,
    ZoneTracker,
    anchor,
    parse_line_option,
    parse_zone_option,
    zones_from_config,
)


def person_at(x, y, hips=True):
    """Keypoints (18, 3) of a person whose hips (or, without hips, neck) are at pixel (x, y)."""
    kp = np.zeros((18, 3), np.float32)
    kp[1] = (x, y - 60, 1)  # neck
    kp[0] = (x, y - 80, 1)  # nose
    if hips:
        kp[8] = (x - 10, y, 1)
        kp[11] = (x + 10, y, 1)
    return kp


def test_anchor_is_mid_hip_else_neck_else_mean():
    assert anchor(person_at(100, 200)) == pytest.approx((100, 200))
    assert anchor(person_at(100, 200, hips=False)) == pytest.approx((100, 140))  # the neck
    kp = np.zeros((18, 3), np.float32)
    kp[0] = (10, 20, 1)
    kp[14] = (30, 40, 1)
    assert anchor(kp) == pytest.approx((20, 30))
    assert anchor(np.zeros((18, 3), np.float32)) is None


@pytest.mark.parametrize("text, says", [
    ("door=0.1,0.1 0.5,0.1", "'door' has 2 points"),
    ("door=0.1,0.1 1.5,0.1 0.5,0.9", "'door': point 1.5,0.1 is outside 0-1"),
    ("door=0.1,0.1 x,0.1 0.5,0.9", "'door': points must be pairs"),
    ("0.1,0.1 0.2,0.2 0.3,0.1", "expected NAME="),
])
def test_bad_zones_are_one_line_naming_them(text, says):
    with pytest.raises(ZoneError) as info:
        parse_zone_option(text)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_config_tables_per_camera_and_top_level():
    config = {"zones": [{"name": "till", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}],
              "cameras": [{"name": "door", "url": "rtsp://x", "lines": [{"name": "sill", "points": [[0, 1], [1, 1]]}]}]}
    found = zones_from_config(config)
    assert found[None][0] == [Zone("till", ((0, 0), (0.5, 0), (0.5, 0.5)))]
    assert found["door"][1] == [Line("sill", ((0, 1), (1, 1)))]
    with pytest.raises(ZoneError, match="camera 'door': zone 'x' has 2 points"):
        zones_from_config({"cameras": [{"name": "door", "zones": [{"name": "x", "points": [[0, 0], [1, 1]]}]}]})


def run(tracker, xs, y=100.0, width=400, height=200, hips=True, start=0.0, dt=0.1):
    for i, x in enumerate(xs):
        tracker.update(np.array([7]), person_at(x, y, hips)[None], i, start + i * dt)


def test_jitter_on_a_line_or_an_edge_is_one_event():
    events = []
    line = parse_line_option("mid=0.5,0 0.5,1")  # vertical, pointing down: right of it (x < 0.5) is "in"
    zone = parse_zone_option("left=0,0 0.5,0 0.5,1 0,1")
    zt = ZoneTracker([zone], [line], on_event=lambda *a, **k: events.append((a[0], k)), frame_size=(400, 200))
    # walk from x=300 to x=100, crossing x=200 while jittering +-4 px around it (the margin is 6 px)
    xs = list(range(300, 210, -10)) + [204, 196, 203, 197, 204, 196, 202] + list(range(190, 90, -10))
    run(zt, xs)
    assert [e[0] for e in events] == ["zone_enter", "line_cross"]  # the zone's edge is the line: same frame
    assert events[1][1]["direction"] == "in" and events[1][1]["zone"] == "mid"
    assert zt.zone_counts == {"left": 1} and zt.line_counts == {"mid": {"in": 1, "out": 0}}
    run(zt, [150, 250, 260, 270, 280, 290, 300], start=10.0)  # and back out, once
    assert [e[0] for e in events][2:] == ["zone_exit", "line_cross"]
    assert events[3][1]["direction"] == "out"
    # in once 6 px (the margin) inside: x=190, frame 16 (1.6 s); out at x=250, 10.1 s
    assert events[2][1]["dwell_s"] == pytest.approx(10.1 - 1.6, abs=0.01)


def test_a_person_who_disappears_leaves_the_zone_and_walking_past_a_line_end_is_no_crossing():
    events = []
    zt = ZoneTracker([parse_zone_option("all=0,0 1,0 1,1 0,1")], [parse_line_option("short=0.5,0 0.5,0.3")],
                     on_event=lambda *a, **k: events.append(a[0]), frame_size=(400, 200), lost_s=0.5)
    run(zt, [100, 120, 140, 160, 250, 260, 280, 300])  # y=100 is below the short line's end (y=60): no crossing
    assert events == ["zone_enter"]
    zt.update(np.zeros(0, np.int64), np.zeros((0, 18, 3), np.float32), 10, 5.0)  # gone for 4.7 s
    assert events == ["zone_enter", "zone_exit"] and zt.zone_counts == {"all": 0}


def test_durations_are_measured_on_media_time_and_events_stamped_with_the_timestamps():
    """A file read ten times faster than it plays (a frame every 0.01 s of wall clock, 0.1 s of video), and the
    same frames on every 5th frame (0.5 s of video apart): settling, dwelling and being lost go by the video."""
    def zone_tracker(events):
        return ZoneTracker([parse_zone_option("left=0,0 0.5,0 0.5,1 0,1")], frame_size=(400, 200), lost_s=1.0,
                           on_event=lambda kind, tid, f, t, n, **k: events.append((kind, f, t, k["dwell_s"])))

    xs = [300] * 5 + [100] * 100 + [300] * 20  # 10 s in the zone (from frame 5 to 105), then out for 2 s
    for stride in (1, 5):
        events = []
        zt = zone_tracker(events)
        for i in range(0, len(xs), stride):
            zt.update(np.array([7]), person_at(xs[i], 100)[None], i, 1000.0 + i * 0.01, media_time=i * 0.1)
        assert [(kind, f) for kind, f, _, _ in events] == [("zone_enter", 5), ("zone_exit", 105)], stride
        assert [t for _, _, t, _ in events] == pytest.approx([1000.05, 1001.05])  # the timestamps of frames 5, 105
        assert events[1][3] == pytest.approx(10.0)  # seconds of video, not the 1 s of wall clock they took
        # (the 20 frames outside are 2 s of video, past settle_s: on the wall clock, 0.2 s, the exit would wait)
        events = []
        zt = zone_tracker(events)
        for i in range(0, 51, stride):  # in the zone for 5 s of video, then out of view
            zt.update(np.array([8]), person_at(100, 100)[None], i, 1000.0 + i * 0.01, media_time=i * 0.1)
        nobody = np.zeros(0, np.int64), np.zeros((0, 18, 3), np.float32)
        zt.update(*nobody, 55, 1000.55, media_time=5.5)
        assert [kind for kind, *_ in events] == ["zone_enter"]  # unseen for 0.5 s of video: not lost yet
        zt.update(*nobody, 65, 1000.65, media_time=6.5)  # 1.5 s: lost_s (1 s) is over, though 0.15 s of wall clock
        assert [(kind, f) for kind, f, _, _ in events] == [("zone_enter", 0), ("zone_exit", 50)]
        assert events[1][3] == pytest.approx(5.0) and zt.zone_counts == {"left": 0}
    # without media_time, the timestamps are the clock (as before)
    events = []
    zt = zone_tracker(events)
    for i, x in enumerate(xs):
        zt.update(np.array([7]), person_at(x, 100)[None], i, i * 0.1)
    assert events[1][3] == pytest.approx(10.0)


def test_a_zoned_tracker_gives_the_zones_the_frames_media_time():
    from pose_fast.tracking import Tracker
    from pose_fast.zones import ZonedTracker

    seen = []

    class Zones(ZoneTracker):
        def update(self, *args, **kwargs):
            seen.append(kwargs.get("media_time"))

    zoned = ZonedTracker(Tracker(), Zones())
    zoned.update(Poses(person_at(100, 100)[None], np.ones(1, np.float32)), 0, 1000.0, media_time=4.5)
    zoned.update(Poses(person_at(100, 100)[None], np.ones(1, np.float32)), 1, 1000.1)
    assert seen == [4.5, None]


# -- on the shared video ------------------------------------------------------------------------------------------
#: By eye (frames 0-1393 of one-by-one-person-detection.mp4, looked at every 20th frame): six people, one at a
#: time, walk in from the bottom of the picture, stop at the table in the middle and leave through the doorway on
#: the right (person 1 about frames 65-195, 2: 232-444, 3: 507-692, 4: 749-863, 5: 927-1194, 6: 1240-1355).
#: The line x = 0.75 from y = 0.15 down to 0.85 stands between the table and the doorway; pointing down, its
#: right is the table's side, so leaving through the doorway is "out": 0 in, 6 out. The zone "table" (x 0.4-0.72,
#: y 0.3-0.8) is where each of them stands: 6 zone_enter, 6 zone_exit.
BY_EYE = {"in": 0, "out": 6, "table_enter": 6, "table_exit": 6}


@pytest.mark.slow
@pytest.mark.parametrize("stride", [1, 5])
def test_line_and_zone_events_on_the_one_by_one_video(model_dir, video_path, tmp_path, stride):
    """The same events at full rate and on every 5th frame (the video is 10 fps: two looks a second, a Pi's rate).

    Measured: the six dwells at the table were 11.9, 20.2, 17.6, 10.2, 25.4, 10.1 s at full rate and 12.0, 20.0,
    17.5, 10.5, 25.5, 10.0 s on every 5th frame; before durations went by the video's time, every 5th frame gave
    0.6-1.5 s (the wall clock of a file read faster than it plays) and no doorway crossing at all (each walker is
    seen once beyond the line before leaving the picture, and a change needed three looks)."""
    from pose_fast.events import read_events

    db = tmp_path / "events.sqlite3"
    proc = subprocess.run(
        [sys.executable, "-m", "pose_fast.cli.main", "demo", "-i", str(video_path("one-by-one")), "--no-show",
         "--db", str(db), "--stride", str(stride), "--line", "doorway=0.75,0.15 0.75,0.85",
         "--zone", "table=0.4,0.3 0.72,0.3 0.72,0.8 0.4,0.8"],
        env={**os.environ, "POSE_FAST_MODEL_DIR": str(model_dir)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    crossings, count = read_events(db, zone="doorway", limit=100)
    assert count == len(crossings)
    directions = [e["direction"] for e in crossings]
    assert {"in": directions.count("in"), "out": directions.count("out")} == {"in": BY_EYE["in"],
                                                                              "out": BY_EYE["out"]}
    assert all(e["kind"] == "line_cross" for e in crossings)
    assert len({e["person_id"] for e in crossings}) == len(crossings)  # one crossing per person: no burst
    table, _ = read_events(db, zone="table", limit=100)
    assert [e["kind"] for e in table].count("zone_enter") == BY_EYE["table_enter"]
    assert [e["kind"] for e in table].count("zone_exit") == BY_EYE["table_exit"]
    assert all(e["dwell_s"] > 8.0 for e in table if e["kind"] == "zone_exit")  # each stood there 10 s or more
    exits, _ = read_events(db, kind="zone_exit", zone="table", limit=100)
    assert len(exits) == BY_EYE["table_exit"]
    for event in crossings + table:  # each with the frame it was decided on
        assert event["snapshot"] is not None, event
        image = cv2.imread(str(db.parent / f"{db.name}.snapshots" / event["snapshot"]))
        assert image is not None and image.shape == (432, 768, 3), event


def test_an_anchor_that_jumps_out_for_a_moment_changes_nothing():
    events = []
    zt = ZoneTracker([parse_zone_option("top=0,0 1,0 1,0.5 0,0.5")], on_event=lambda *a, **k: events.append(a[0]),
                     frame_size=(400, 200))
    for i in range(30):  # inside (y=50), except frames 5, 6 and 20, 21 (y=150: hips came into view, say)
        zt.update(np.array([3]), person_at(200, 150 if i in (5, 6, 20, 21) else 50)[None], i, i * 0.1)
    assert events == ["zone_enter"] and zt.zone_counts == {"top": 1}


def test_crossing_a_line_and_leaving_the_picture_at_once_counts():
    events = []
    zt = ZoneTracker([], [parse_line_option("door=0.75,0 0.75,1")], frame_size=(400, 200), lost_s=0.5,
                     on_event=lambda *a, **k: events.append((a[0], k["direction"])))
    run(zt, [200, 220, 240, 260, 280, 310, 320])  # 2 frames past the line (x=300, margin 6 px), then gone
    zt.update(np.zeros(0, np.int64), np.zeros((0, 18, 3), np.float32), 20, 2.0)
    assert events == [] and zt.line_counts["door"]["out"] == 0  # 2 frames beyond are not enough
    zt2 = ZoneTracker([], [parse_line_option("door=0.75,0 0.75,1")], frame_size=(400, 200), lost_s=0.5,
                      on_event=lambda *a, **k: events.append((a[0], k["direction"])))
    run(zt2, [200, 240, 280, 310, 320, 330])  # 3 frames beyond (0.2 s, less than settle_s), then out of view
    assert events == []
    zt2.update(np.zeros(0, np.int64), np.zeros((0, 18, 3), np.float32), 20, 2.0)
    assert events == [("line_cross", "out")]


def test_a_walker_seen_once_beyond_a_line_by_a_slow_device_has_crossed_it():
    """Looks 0.5 s apart (a device inferring twice a second): one look beyond the line, then out of the picture, is
    a crossing; looks 0.1 s apart need three (see the test above), and a jump back within settle_s is none."""
    for dt, xs, crossed in ((0.5, [200, 240, 280, 320], True), (0.1, [200, 240, 280, 320], False),
                            (0.5, [200, 240, 280, 320, 280, 260], False)):
        events = []
        zt = ZoneTracker([], [parse_line_option("door=0.75,0 0.75,1")], frame_size=(400, 200), lost_s=1.0,
                         on_event=lambda *a, out=events, **k: out.append((a[0], k["direction"])))
        run(zt, xs, dt=dt)
        gone = len(xs) * dt + 2.0
        zt.update(np.zeros(0, np.int64), np.zeros((0, 18, 3), np.float32), 99, gone)
        assert events == ([("line_cross", "out")] if crossed else []), (dt, xs)


def test_the_overlay_draws_zones_and_lines_with_their_live_counts():
    from pose_fast.zones import ZoneOverlay

    zt = ZoneTracker([parse_zone_option("till=0.1,0.2 0.5,0.2 0.5,0.8 0.1,0.8")],
                     [parse_line_option("sill=0.7,0.1 0.7,0.9")], frame_size=(400, 200))

    class Result:
        frame = np.zeros((200, 400, 3), np.uint8)

    def drawn():
        result = Result()
        result.frame = np.zeros((200, 400, 3), np.uint8)
        ZoneOverlay(zt).write(result)
        return result.frame

    empty = drawn()
    assert not empty[100, 45:195].any()  # inside the zone: nothing drawn
    assert empty[120, 38:42].any() and empty[120, 198:202].any()  # its left and right edges (x = 40, 200)
    assert empty[120, 278:282].any()  # the line (x = 280)
    zt.zone_counts["till"] = 2
    zt.line_counts["sill"]["out"] = 1
    assert (drawn() != empty).any()  # the counts are part of the picture
