"""`python demo.py` as a user runs it: real model, shared videos, subprocesses, a real window under Xvfb.

The window test needs Debian's xvfb, imagemagick (``import``) and xdotool.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import wait_for

from pose_fast.skeleton import LIMB_COLORS

ROOT = Path(__file__).resolve().parent.parent
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture()
def env(model_dir, tmp_path):
    """The environment of a user's shell: the model dir, a private events database, no display."""
    environ = dict(os.environ)
    environ["POSE_FAST_MODEL_DIR"] = str(model_dir)
    environ["POSE_FAST_DB"] = str(tmp_path / "default-events.sqlite3")
    environ.pop("DISPLAY", None)
    environ.pop("WAYLAND_DISPLAY", None)
    environ.pop("POSE_FAST_SERVER", None)
    return environ


def demo(env, *args, timeout=300):
    return subprocess.run([sys.executable, "demo.py", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_clean_exit(proc):
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_json_and_output_video(env, video_path, tmp_path):
    """One JSON line per frame with people where people are (none in the black frames 23-37), and an annotated,
    playable video with the same number of frames."""
    jsonl, video = tmp_path / "poses.jsonl", tmp_path / "annotated.mp4"
    proc = demo(env, "--video-url", video_path("people-walking"), "--no-show", "--no-db", "--json", jsonl,
                "--output", video)
    _assert_clean_exit(proc)
    records = _lines(jsonl)
    assert [r["index"] for r in records] == list(range(73))
    for r in records:
        assert ISO_Z.match(r["timestamp"]), r["timestamp"]
        for person in r["people"]:
            assert len(person["keypoints"]) == 18 and all(len(k) == 3 for k in person["keypoints"])
            assert person["score"] > 0
        assert sorted(p["id"] for p in r["people"]) == list(range(1, len(r["people"]) + 1))
    assert all(not records[i]["people"] for i in range(23, 38))
    assert all(records[i]["people"] for i in range(38, 73))
    assert "73 frames" in proc.stdout and "FPS" in proc.stdout
    for stage in ("capture", "inference", "decode", "render"):
        assert re.search(rf"^{stage}\s+\d+\.\d\s+\d+\.\d$", proc.stdout, re.M), proc.stdout

    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 270)
    written = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        written.append(frame)
    cap.release()
    assert len(written) == 73
    source = cv2.VideoCapture(str(video_path("people-walking")))
    ok, first = source.read()
    source.release()
    # the header is drawn over the frame: the top-left corner is darker than in the source
    assert written[0][:12, :80].mean() < first[:12, :80].mean() - 5 or first[:12, :80].mean() < 10



@pytest.mark.slow
def test_min_pose_score_moves_poses_to_the_fragments(env, video_path, tmp_path):
    """people-walking.mp4 (two walkers, whole bodies, pose scores of 160-500): raising --min-pose-score to 300
    turns the weaker poses into fragments, which --keep-fragments writes beside the people; the summary counts
    people only."""
    default, high = tmp_path / "default.jsonl", tmp_path / "high.jsonl"
    _assert_clean_exit(demo(env, "-i", video_path("people-walking"), "--no-show", "--no-db", "--json", default,
                            "--keep-fragments"))
    proc = demo(env, "-i", video_path("people-walking"), "--no-show", "--no-db", "--json", high,
                "--keep-fragments", "--min-pose-score", "300")
    _assert_clean_exit(proc)
    for low, strict in zip(_lines(default), _lines(high)):
        everyone = sorted(p["score"] for p in low["people"] + low["fragments"])
        assert sorted(p["score"] for p in strict["people"] + strict["fragments"]) == everyone  # nothing lost
        assert all(p["score"] >= 300 for p in strict["people"])
        assert all(p["score"] < 300 for p in strict["fragments"] if sum(k[2] > 0 for k in p["keypoints"]) >= 4)
    assert sum(len(r["fragments"]) for r in _lines(high)) > sum(len(r["fragments"]) for r in _lines(default))
    most = max(len(r["people"]) for r in _lines(high))
    assert f"up to {most} {'person' if most == 1 else 'people'}" in proc.stdout
    bad = demo(env, "-i", video_path("people-walking"), "--no-show", "--no-db", "--min-pose-score", "-1")
    assert bad.returncode == 2 and "--min-pose-score" in bad.stderr and "Traceback" not in bad.stderr

def test_limit(env, video_path, tmp_path):
    jsonl = tmp_path / "five.jsonl"
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--no-db", "--json", jsonl, "--limit", 5)
    _assert_clean_exit(proc)
    assert [r["index"] for r in _lines(jsonl)] == [0, 1, 2, 3, 4]
    assert "5 frames" in proc.stdout


def test_loop_goes_past_the_end_of_the_file(env, video_path, tmp_path):
    jsonl = tmp_path / "loop.jsonl"
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--no-db", "--json", jsonl, "--loop",
                "--limit", 75, "--input-height", 128)
    _assert_clean_exit(proc)
    records = _lines(jsonl)
    assert [r["index"] for r in records] == list(range(75))
    # frame 67 is frame 0 again: the same people
    assert len(records[67]["people"]) == len(records[0]["people"])
    np.testing.assert_allclose(
        sorted(p["score"] for p in records[67]["people"]), sorted(p["score"] for p in records[0]["people"]),
        rtol=1e-3)


def test_without_loop_the_file_ends(env, video_path, tmp_path):
    jsonl = tmp_path / "end.jsonl"
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--no-db", "--json", jsonl, "--limit", 500,
                "--input-height", 128, "--mode", "latency")
    _assert_clean_exit(proc)
    assert len(_lines(jsonl)) == 67


def test_a_file_without_a_frame_count_is_processed_whole_and_loops(env, read_frames, tmp_path):
    """A raw MJPEG file (its container gives no frame count) is a file: throughput mode, every frame, --loop."""
    frames = read_frames("store-aisle", count=20)
    clip = tmp_path / "clip.mjpeg"
    writer = cv2.VideoWriter(str(clip), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 12.5, (480, 270))
    for frame in frames:
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) <= 0  # what makes this file the case under test
    capture.release()
    jsonl = tmp_path / "clip.jsonl"
    proc = demo(env, "-i", clip, "--no-show", "--no-db", "--json", jsonl, "--loop", "--limit", 30,
                "--input-height", 128)
    _assert_clean_exit(proc)
    records = _lines(jsonl)
    assert [r["index"] for r in records] == list(range(30))
    assert "throughput mode" in proc.stdout and "0 stale frames dropped" in proc.stdout
    assert len(records[20]["people"]) == len(records[0]["people"])  # frame 20 is frame 0 again


def test_events_go_to_the_database(env, video_path, tmp_path):
    from pose_fast.events import count_events, read_events

    db = tmp_path / "events.sqlite3"
    jsonl = tmp_path / "tracked.jsonl"
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--db", db, "--json", jsonl, "--limit", 12,
                "--input-height", 128)
    _assert_clean_exit(proc)
    assert count_events(db) >= 2
    events, total = read_events(db, limit=100)
    assert {e["kind"] for e in events} == {"enter", "exit"}
    assert {e["source"] for e in events} == {str(video_path("store-aisle"))}
    ids = {p["id"] for r in _lines(jsonl) for p in r["people"]}
    assert any(i >= 1 for i in ids)  # track ids once people are born
    assert not Path(env["POSE_FAST_DB"]).exists()


def _event_counts(db):
    from pose_fast.events import read_events

    events, total = read_events(db, limit=1000)
    assert len(events) == total
    return {kind: sum(e["kind"] == kind for e in events) for kind in ("enter", "exit")}


@pytest.mark.slow
def test_stride_5_counts_the_same_people_entering_and_leaving(env, video_path, tmp_path):
    """one-by-one-person-detection.mp4, frames 0-699 (three people walk in and out one after the other; looked at
    in the --json output and the stored events): every frame, then --stride 5 (every 5th frame inferred, 2 results
    per second of video, as a slow stick sees a camera): the same enters and exits, and the results carry the
    file's frame indices."""
    full_db, strided_db = tmp_path / "full.sqlite3", tmp_path / "stride5.sqlite3"
    jsonl = tmp_path / "stride5.jsonl"
    full = demo(env, "-i", video_path("one-by-one"), "--no-show", "--db", full_db, "--limit", 700)
    _assert_clean_exit(full)
    strided = demo(env, "-i", video_path("one-by-one"), "--no-show", "--db", strided_db, "--limit", 140,
                   "--stride", 5, "--json", jsonl)
    _assert_clean_exit(strided)
    assert "1 frame in 5 inferred (--stride)" in strided.stdout and "140 frames in" in strided.stdout
    assert [r["index"] for r in _lines(jsonl)] == list(range(0, 700, 5))
    counts = _event_counts(full_db)
    assert counts["enter"] == counts["exit"] >= 2, counts
    assert _event_counts(strided_db) == counts
    for proc, db in ((full, full_db), (strided, strided_db)):
        assert f"events: {2 * counts['enter']} stored in {db}" in proc.stdout


def test_default_database(env, video_path):
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--limit", 2, "--input-height", 128)
    _assert_clean_exit(proc)
    assert Path(env["POSE_FAST_DB"]).is_file()


# the demo under a file-size limit (RLIMIT_FSIZE): write() past it fails with EFBIG, as on a full disk. Python
# ignores SIGXFSZ, so the demo sees failed writes, not a signal.
LIMITED = ("import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
           "os.execv(sys.executable, [sys.executable, 'demo.py'] + sys.argv[2:])")
# a WAL commit of a few events writes 6 pages (the table, 4 indexes, the counts): 32 + 6 * 4120 bytes; the -shm file
# needs 32768. So this lets the WAL take one commit and refuses the next.
ONE_COMMIT = 40000


def _limited_demo(env, tmp_path, *args):
    cache = tmp_path / "no-cache"
    cache.write_text("")  # XDG_CACHE_HOME is a file: no compiled-model cache, the database is all it writes
    return subprocess.run([sys.executable, "-c", LIMITED, str(ONE_COMMIT), *map(str, args)], cwd=ROOT,
                          env=dict(env, XDG_CACHE_HOME=str(cache)), capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_under_the_json_file_is_one_line(env, video_path):
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--no-db", "--limit", 3, "--json", "/dev/full")
    _assert_one_line_error(proc, "cannot write JSON file /dev/full: No space left on device")


def _refused_write(db) -> str:
    """What the demo says when a write is refused. RLIMIT_FSIZE makes write() fail with EFBIG, which SQLite reports
    as an I/O error (a real full disk, ENOSPC, it reports as SQLITE_FULL on every apsw); an apsw with
    ``Connection.system_errno`` lets the store tell EFBIG apart; an older one (3.40, the oldest supported) says
    what it knows."""
    import apsw

    if hasattr(apsw.Connection, "system_errno"):
        return f"cannot write events to {db}: the disk or database is full"
    return f"cannot write events to {db}: disk I/O error (IOError: disk I/O error); the disk may be full"


def _assert_one_line_error(proc, *phrases):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "frames in" in proc.stdout  # the summary still comes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as a full disk: Linux")
def test_a_disk_that_fills_up_during_the_run_is_one_line_and_keeps_the_events_saved(env, video_path, tmp_path):
    from pose_fast.events import create_or_migrate, read_events

    db = tmp_path / "events.sqlite3"
    create_or_migrate(db)
    proc = _limited_demo(env, tmp_path, "-i", video_path("store-aisle"), "--no-show", "--db", db, "--loop",
                         "--limit", 200, "--input-height", 128)
    _assert_one_line_error(proc, _refused_write(db), "--db/POSE_FAST_DB",
                           "saved before")
    saved = int(re.search(r"; (\d+) saved before\)$", proc.stderr.strip()).group(1))
    assert saved >= 1
    events, total = read_events(db, limit=100)
    assert total == saved and [e["id"] for e in events] == list(range(1, saved + 1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as a full disk: Linux")
def test_a_final_commit_that_fails_is_one_line_and_keeps_the_events_saved(env, video_path, tmp_path):
    """A short run whose events all go in the store's last commit, on close, into a WAL that is already full."""
    import apsw

    from pose_fast.events import EventStore, create_or_migrate, read_events

    db = tmp_path / "events.sqlite3"
    create_or_migrate(db)
    keep = apsw.Connection(str(db))  # while it reads, closing a store neither checkpoints nor empties the WAL
    try:
        keep.execute("SELECT count(*) FROM events").fetchall()
        with EventStore(db) as store:  # one commit: the WAL now holds all the limit allows
            store.add("enter", 1, 0, time.time(), 1, "earlier", "CPU")
            store.add("exit", 1, 1, time.time(), 0, "earlier", "CPU")
        proc = _limited_demo(env, tmp_path, "-i", video_path("store-aisle"), "--no-show", "--db", db, "--limit", 6,
                             "--input-height", 128)
    finally:
        keep.close()
    _assert_one_line_error(proc, _refused_write(db), "0 saved before")
    events, _ = read_events(db, limit=100)
    assert [(e["kind"], e["source"]) for e in events] == [("enter", "earlier"), ("exit", "earlier")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bad_inputs(tmp_path, video):
    text = tmp_path / "readme.mp4"
    text.write_text("not a video")
    port = _free_port()
    quiet = ["--no-show", "--no-db"]
    return [
        (["-i", tmp_path / "missing.mp4", *quiet], "missing.mp4 not found"),
        (["-i", text, *quiet], "not a video file"),
        (["-i", tmp_path, *quiet], "is a folder"),
        (["-i", f"http://127.0.0.1:{port}/cam.mp4", *quiet], f"cannot open stream http://127.0.0.1:{port}"),
        (["-i", f"rtsp://127.0.0.1:{port}/live", *quiet], f"cannot open stream rtsp://127.0.0.1:{port}"),
        (["-i", "ftp://127.0.0.1/a.mp4", *quiet], "unsupported URL scheme"),
        (["-i", "99", *quiet], "no camera 99"),
        (["-i", "99999999999999", *quiet], "no camera 99999999999999: a camera index is 0 to 9999"),  # cv2.error
        (["-i", video, *quiet, "--device-name", "TPU"], "unknown device 'TPU'"),
        (["-i", video, *quiet, "--server", "grpc://[::1:5999/m"], "--server"),  # does not parse: no connection
        (["-i", video, *quiet, "--input-height", 250], "multiple of 8"),
        (["-i", video, *quiet, "--output", tmp_path / "nowhere" / "a.mp4"], "does not exist"),
        (["-i", video, *quiet, "--output", tmp_path / "a.txt"], "must end in .mp4"),
        (["-i", video, *quiet, "--json", tmp_path], "is a directory"),
        (["-i", video, *quiet, "--db", tmp_path / "e.db"], "--db and --no-db"),
        (["-i", video, *quiet, "--stride", 0], "--stride must be 1 or more"),
        (["-i", video, *quiet, "--realtime", "--stride", 5], "is live"),  # a file played like a camera
        (["-i", video, *quiet, "--model", tmp_path / "nope.xml"], "nope.xml"),
    ]


def test_bad_input_is_one_line_and_exit_code_2(env, tmp_path, video_path):
    for args, message in _bad_inputs(tmp_path, video_path("store-aisle")):
        proc = demo(env, *args, timeout=120)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and message in errors[0], (args, proc.stderr)


def test_without_a_display_it_runs_headless(env, video_path):
    proc = demo(env, "-i", video_path("store-aisle"), "--no-db", "--limit", "3", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no display (DISPLAY is not set), so no window: running headless" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_limit_must_be_positive(env, video_path):
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--limit", 0)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--limit" in proc.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_ends_cleanly_with_the_summary(env, video_path, tmp_path, sig, code):
    jsonl = tmp_path / "interrupted.jsonl"
    proc = subprocess.Popen([sys.executable, "demo.py", "-i", str(video_path("store-aisle")), "--no-show", "--no-db",
                             "--loop", "--json", str(jsonl)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 3):
            time.sleep(0.2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    frames = len(_lines(jsonl))
    assert frames >= 3
    assert f"{frames} frames" in out


def _wait_until_steady(count, quiet: float = 0.5, timeout: float = 60.0) -> int:
    """Poll ``count()`` until it has not changed for ``quiet`` seconds (the run stopped writing); return it."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def _has_enters(db) -> bool:
    from pose_fast.events import EventStoreError, read_events

    try:
        return bool(read_events(db, kind="enter")[1])
    except EventStoreError:  # not there yet, or not yet created
        return False


def test_sigterm_keeps_an_exit_for_every_enter_even_when_repeated_during_the_final_commit(env, video_path, tmp_path):
    """SIGTERM, then another while the store's final commit waits for a lock another program holds: the second is
    ignored, and once the lock is free the exits of everyone still in view are committed."""
    import apsw

    from pose_fast.events import read_events

    db, jsonl = tmp_path / "events.sqlite3", tmp_path / "frames.jsonl"
    proc = subprocess.Popen([sys.executable, "demo.py", "-i", str(video_path("store-aisle")), "--no-show", "--db",
                             str(db), "--loop", "--input-height", "128", "--json", str(jsonl)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    other = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _has_enters(db):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        other = apsw.Connection(str(db))
        other.setbusytimeout(5000)
        other.execute("BEGIN IMMEDIATE")  # the final commit waits (the store retries a busy database)
        proc.send_signal(signal.SIGTERM)
        _wait_until_steady(lambda: len(jsonl.read_text().splitlines()))  # the run has ended; the store is closing
        assert proc.poll() is None  # waiting for the lock
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the second one is handled (ignored) while the commit still waits: nothing to poll for
        other.execute("ROLLBACK")
        out, err = proc.communicate(timeout=60)
    finally:
        if other is not None:
            other.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "frames in" in out
    events, total = read_events(db, limit=100)
    assert len(events) == total
    enters = [e for e in events if e["kind"] == "enter"]
    assert enters
    for enter in enters:
        assert any(e["kind"] == "exit" and e["person_id"] == enter["person_id"] and e["id"] > enter["id"]
                   for e in events), (enter, events)


# -- the window, under Xvfb -------------------------------------------------------------------------------------------
NEEDED = {"Xvfb": "xvfb", "import": "imagemagick", "xdotool": "xdotool"}


@pytest.fixture()
def xvfb(env):
    missing = [pkg for tool, pkg in NEEDED.items() if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the window test needs Debian packages: apt-get install {' '.join(missing)}")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten",
                               "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    number = b""
    with os.fdopen(read_fd, "rb") as pipe:
        while not number.endswith(b"\n"):
            chunk = pipe.read(1)
            if not chunk:
                break
            number += chunk
    assert number.strip(), "Xvfb did not start"
    env = dict(env, DISPLAY=f":{int(number)}")
    yield env
    server.terminate()
    server.wait(10)


def _window_id(env, title, deadline):
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--name", title], env=env, capture_output=True, text=True)
        if found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.3)
    return None


def test_window_shows_the_overlay_space_pauses_and_q_quits(xvfb, video_path, tmp_path):
    video = video_path("store-aisle")
    jsonl = tmp_path / "window.jsonl"
    shot = tmp_path / "window.png"
    proc = subprocess.Popen([sys.executable, "demo.py", "-i", str(video), "--no-db", "--loop", "--json", str(jsonl),
                             "--input-height", "128"], cwd=ROOT, env=xvfb, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        window = _window_id(xvfb, "pose_fast", deadline)
        assert window, "no window appeared"
        while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 10):
            time.sleep(0.2)
        subprocess.run(["import", "-window", "root", str(shot)], env=xvfb, check=True, timeout=60)
        geometry = subprocess.run(["xdotool", "getwindowgeometry", "--shell", window], env=xvfb, check=True,
                                  capture_output=True, text=True, timeout=30).stdout

        def key(name):
            subprocess.run(["xdotool", "key", "--window", window, name], env=xvfb, check=True, timeout=30)

        def lines():
            return len(jsonl.read_text().splitlines())

        key("space")  # pause: no frame goes further than the window
        paused_at = _wait_until_steady(lines)
        time.sleep(1.5)  # and it stays paused
        assert lines() == paused_at, "frames kept coming while paused"
        key("space")  # resume
        resume_deadline = time.monotonic() + 60
        while lines() <= paused_at + 3 and time.monotonic() < resume_deadline:
            time.sleep(0.2)
        assert lines() > paused_at + 3, "no frames after resuming"
        key("q")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "frames in" in out
    if os.environ.get("POSE_FAST_SCREENSHOT"):
        shutil.copy(shot, os.environ["POSE_FAST_SCREENSHOT"])

    screen = cv2.imread(str(shot))
    assert screen is not None
    box = dict(line.split("=") for line in geometry.split())
    x, y, w, h = (int(box[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    assert w >= 480 and h >= 270
    shown = screen[y:y + h, x:x + w]
    # skeleton lines: pixels in the exact limb colours (line centres are not blended)
    colours = np.array(LIMB_COLORS, np.uint8)
    exact = (shown[:, :, None, :] == colours[None, None]).all(axis=3).any(axis=2)
    assert exact.sum() >= 40, exact.sum()
    # the header: rows at the top-left of the video that are mostly dark (the darkened box) with white text in them;
    # the source's top-left corner (shop shelves) is nowhere near that dark
    dark_rows = np.flatnonzero((shown[:, :150].max(axis=2) <= 60).mean(axis=1) > 0.6)
    assert 8 <= len(dark_rows) <= 40, dark_rows
    header = shown[dark_rows.min():dark_rows.max() + 1, :200]
    assert (header.min(axis=2) >= 200).sum() >= 20  # the text


def test_escape_closes_the_window(xvfb, video_path, tmp_path):
    jsonl = tmp_path / "window.jsonl"
    proc = subprocess.Popen([sys.executable, "demo.py", "-i", str(video_path("people-walking")), "--no-db", "--loop",
                             "--input-height", "128", "--json", str(jsonl)], cwd=ROOT, env=xvfb,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = _window_id(xvfb, "pose_fast", time.monotonic() + 120)
        assert window, "no window appeared"
        assert wait_for(lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) >= 3, timeout=120)
        subprocess.run(["xdotool", "key", "--window", window, "Escape"], env=xvfb, check=True, timeout=30)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "frames in" in out


# -- a command line that behaves the same everywhere ----------------------------------------------------------------
def test_names_are_case_insensitive_and_the_summary_says_what_ran(env, video_path, tmp_path):
    """-d cpu failed before (web -d cpu worked); --requests sets the requests in flight; the demo says where its
    events went."""
    db = tmp_path / "events.sqlite3"
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "-d", "cpu", "--precision", "fp16-int8",
                "--mode", "THROUGHPUT", "--requests", "3", "--db", db, "--limit", "12")
    _assert_clean_exit(proc)
    assert "engine: CPU FP16-INT8 456x256, 3 request(s), throughput" in proc.stdout
    assert re.search(rf"^events: \d+ stored in {re.escape(str(db))} ", proc.stdout, re.M), proc.stdout


def test_realtime_plays_a_file_at_its_own_frame_rate(env, video_path):
    """store-aisle-detection.mp4 is 67 frames at 12.5 fps: in real time it cannot take less than 5.3 s (before,
    a window showed it at the device's speed, 130 fps)."""
    proc = demo(env, "-i", video_path("store-aisle"), "--no-show", "--no-db", "--realtime")
    _assert_clean_exit(proc)
    seconds = float(re.search(r"(\d+) frames in ([\d.]+) s", proc.stdout).group(2))
    assert seconds >= 0.9 * 67 / 12.5, proc.stdout
    assert "latency mode" in proc.stdout


def test_a_mistyped_command_gets_a_suggestion():
    proc = subprocess.run([sys.executable, "-m", "pose_fast.cli.main", "dmeo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "No such command 'dmeo'. Did you mean 'demo'?" in proc.stderr


def test_web_takes_demo_video_none_on_the_command_line(env):
    proc = subprocess.Popen([sys.executable, "main.py", "--demo-video", "none", "--camera", "none", "--port", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("sources: none;"), (line, proc.stderr.read() if proc.poll() is not None else "")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_a_database_locked_by_another_program_loses_no_event(env, video_path, tmp_path):
    """Before: '26 events not saved; 0 saved before', exit code 2. Now the events wait in the journal beside the
    database (a warning, exit 0) and the next start adds them."""
    import apsw

    from pose_fast.events import create_or_migrate, read_events

    db = tmp_path / "events.sqlite3"
    create_or_migrate(db)
    other = apsw.Connection(str(db))
    other.execute("BEGIN IMMEDIATE")  # held for the whole run
    try:
        proc = demo(env, "-i", video_path("people-walking"), "--no-show", "--db", db, "--input-height", "128")
    finally:
        other.execute("ROLLBACK")
        other.close()
    _assert_clean_exit(proc)
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "kept in" in warning[0] and ".journal" in warning[0], proc.stderr
    kept = int(re.search(r"; (\d+) events were kept", warning[0]).group(1))
    assert kept >= 2 and (tmp_path / "events.sqlite3.journal").is_file()
    create_or_migrate(db)  # the next start
    events, total = read_events(db, limit=100)
    assert total == kept and not (tmp_path / "events.sqlite3.journal").exists()
    assert {e["kind"] for e in events} == {"enter", "exit"}


@pytest.mark.parametrize("flag", ["--motion-gate", "--no-motion-gate"])
def test_motion_gate_on_a_still_scene_played_live(flag, env, read_frames, tmp_path):
    """An empty aisle, still, played at its own rate like a camera: --motion-gate skips inference on the frames
    where nothing moved and the summary says how many; --no-motion-gate infers every frame."""
    import cv2

    frame = read_frames("one-by-one", 1, 0)[0]  # nobody in view
    still = tmp_path / "still.mp4"
    writer = cv2.VideoWriter(str(still), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (frame.shape[1], frame.shape[0]))
    for _ in range(30):
        writer.write(frame)
    writer.release()
    proc = demo(env, "-i", still, "--no-show", "--no-db", "--realtime", flag)
    _assert_clean_exit(proc)
    gated = re.search(r"motion gate: (\d+) of (\d+) frames without inference", proc.stdout)
    if flag == "--motion-gate":
        assert gated and int(gated.group(1)) > 0, proc.stdout
    else:
        assert gated is None, proc.stdout
