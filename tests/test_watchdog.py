"""The stream watchdog with real servers: GStreamer's RTSP server killed and restarted, an HTTP camera that stalls
for 30 s, one that drops its connection, a file cut off at half; through :class:`SupervisedSource` and through
``python demo.py`` as a user runs it (real model, real events database)."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support import RtspServer, VideoHttpServer, rtsp_unavailable, wait_for

from pose_fast.events import read_events, snapshot_folder
from pose_fast.supervisor import Backoff, SupervisedSource, limit_heap_arenas

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def env(model_dir, tmp_path):
    environ = dict(os.environ)
    environ["POSE_FAST_MODEL_DIR"] = str(model_dir)
    environ["POSE_FAST_DB"] = str(tmp_path / "default-events.sqlite3")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "POSE_FAST_SERVER"):
        environ.pop(name, None)
    return environ


def demo(env, *args, timeout=300):
    return subprocess.run([sys.executable, "demo.py", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_backoff_doubles_to_its_ceiling_with_jitter_and_resets():
    import random

    backoff = Backoff(0.5, 30.0, jitter=0.2, rng=random.Random(1))
    waits = [backoff.next() for _ in range(10)]
    for wait, base in zip(waits, [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]):
        assert 0.8 * base <= wait <= 1.2 * base
    assert len(set(waits[6:])) == 4  # jittered: cameras restarted together do not retry together
    backoff.reset()
    assert backoff.next() <= 0.6


@pytest.mark.parametrize("breakage", ["stall", "drop"])
def test_a_stalled_or_dropped_http_camera_is_reopened_and_frames_keep_coming(video_path, breakage, caplog):
    """The server stops sending for 30 s (connection open), or closes the connection, after 15 frames: read()
    waits through it and goes on with the next connection's frames; the loss is counted and logged."""
    options = {"stall_after": 15, "stall_s": 30.0} if breakage == "stall" else {"drop_after": 15}
    caplog.set_level(logging.WARNING, "pose_fast.supervisor")
    with VideoHttpServer(video_path("one-by-one"), fps=25, **options) as server:
        source = SupervisedSource(server.base + "/live.mjpg", name="camera door", stall_timeout=1.5,
                                  backoff=Backoff(0.2, 1.0))
        buffer = np.empty(source.shape, np.uint8)
        started = time.monotonic()
        for _ in range(30):
            assert source.read(buffer) is buffer
        took = time.monotonic() - started
        health = source.health()
        source.close()
    assert server.connections == 2 and source.epoch == 1 and health["reconnects"] == 1
    assert health["state"] == "running" and health["last_frame_s"] < 1.0
    assert took < 20, "waited for the stalled server instead of reconnecting"
    why = "no frame for 2 s" if breakage == "stall" else "the stream ended"
    messages = [r.getMessage() for r in caplog.records]
    assert f"camera door lost ({why}); reconnecting" in messages
    assert any(m.startswith("camera door back after ") for m in messages)


def test_interrupt_ends_a_read_waiting_for_a_camera_that_is_gone(video_path):
    with VideoHttpServer(video_path("one-by-one"), fps=25, drop_after=3) as server:
        source = SupervisedSource(server.base + "/live.mjpg", stall_timeout=1.0, backoff=Backoff(0.2, 0.5))
        buffer = np.empty(source.shape, np.uint8)
        for _ in range(3):
            source.read(buffer)
        server.stop()  # gone for good: every reconnection fails
        timer = __import__("threading").Timer(2.0, source.interrupt)
        timer.start()
        started = time.monotonic()
        assert source.read(buffer) is None
        assert 1.5 < time.monotonic() - started < 10
        assert source.health()["state"] == "reconnecting" and "cannot open stream" in source.last_error
        source.close()


_ARENAS_PROBE = """
import ctypes, sys, tempfile, threading
from pose_fast.supervisor import limit_heap_arenas
if sys.argv[1] == "limit":
    assert limit_heap_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
held, together = [], threading.Barrier(12)
def work():  # twelve threads alive at once, each allocating (as a capture's decoder threads do)
    together.wait()
    held.append([libc.malloc(4096) for _ in range(100)])
    together.wait()
threads = [threading.Thread(target=work) for _ in range(12)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    out = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, out)
    libc.fclose(out)
    print(open(report.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heaps")
def test_limit_heap_arenas_keeps_two_heaps_whatever_the_threads(monkeypatch):
    """What keeps ``pose-fast web``'s RSS flat across reconnections: every reopened capture starts new FFmpeg
    threads, and glibc gave each its own heap (arena), where the capture's freed buffers stayed (+1-2 MB per
    reconnection). After :func:`limit_heap_arenas` twelve threads allocating at once share two heaps."""
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}

    def heaps(mode):
        done = subprocess.run([sys.executable, "-c", _ARENAS_PROBE, mode], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert heaps("limit") <= 2
    assert heaps("none") > 2  # glibc's default: a heap per thread, up to 8 per core
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the environment's choice wins
    assert limit_heap_arenas() is False


def test_demo_on_a_file_cut_off_at_half_warns_and_exits_1(env, video_path, tmp_path):
    """Over HTTP (the connection drops after half the bytes) and as a local file truncated at half: a one-line
    warning naming where it ended, exit code 1, no traceback; the events seen before are stored."""
    data = video_path("asl-walk").read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with VideoHttpServer(video_path("asl-walk")) as server:
        for spec in (server.base + "/cut", cut):
            proc = demo(env, "-i", spec, "--no-show", "--db", tmp_path / "e.db", timeout=300)
            assert proc.returncode == 1, proc.stderr
            assert "Traceback" not in proc.stderr
            warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
            assert len(warning) == 1 and "ended at frame 40 of 89: the file is truncated" in warning[0]
            assert "40 frames" in proc.stdout
    whole = demo(env, "-i", video_path("asl-walk"), "--no-show", "--no-db")
    assert whole.returncode == 0 and "warning" not in whole.stderr


def test_demo_without_reconnect_reports_a_lost_stream(env, video_path):
    with VideoHttpServer(video_path("one-by-one"), fps=25, drop_after=20) as server:
        proc = demo(env, "-i", server.base + "/live.mjpg", "--no-show", "--no-db", "--no-reconnect",
                    "--stall-timeout", "2", timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "stopped giving frames after 20 (--no-reconnect" in proc.stderr


@pytest.mark.skipif(bool(rtsp_unavailable()), reason=rtsp_unavailable() or "-")
def test_demo_on_rtsp_survives_the_server_being_killed_and_restarted(env, video_path, tmp_path):
    """GStreamer's RTSP server is SIGKILLed mid-stream and restarted 5 s later: the demo keeps running, says so on
    stderr, records before and after; the people in view exit at the loss ('stream lost'), new ids after; SIGTERM
    ends it with every enter paired with an exit, person ids unique, and snapshots beside the database.

    By eye (tests/rtsp_server.py serving one-by-one-person-detection.mp4): the walker who is in view when the
    server dies gets an exit stamped at the cut; after the reconnect the video starts again from its beginning
    (the server restarts it for each client), so the first walker enters again under a new person id.
    """
    db = tmp_path / "events.sqlite3"
    with RtspServer(video_path("one-by-one")) as rtsp:
        proc = subprocess.Popen([sys.executable, "demo.py", "-i", rtsp.url, "--no-show", "--db", db,
                                 "--stall-timeout", "3"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        before = after = False
        try:
            before = wait_for(lambda: _count(db) >= 1 or proc.poll() is not None, timeout=90) and _count(db) >= 1
            if before:
                time.sleep(2)
                rtsp.stop()
                time.sleep(5)
                rtsp.start()
                cut = time.time()
                after = wait_for(lambda: any(e["timestamp"] > _iso(cut) for e in read_events(db, limit=100)[0]
                                             if e["kind"] == "enter"), timeout=120)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert before, f"no enter before the cut (demo exit {proc.returncode}); its stderr:\n{err[-3000:]}"
    assert after, f"nothing recorded after the restart; the demo's stderr:\n{err[-3000:]}"
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert f"stream {rtsp.url} lost (" in err and f"stream {rtsp.url} back after " in err
    assert "[ WARN" not in err and "cap_ffmpeg" not in err  # OpenCV's own lines stay off the console
    events, _ = read_events(db, limit=100)
    enters = [e["person_id"] for e in events if e["kind"] == "enter"]
    exits = [e["person_id"] for e in events if e["kind"] == "exit"]
    assert sorted(enters) == sorted(exits) and len(set(enters)) == len(enters) >= 2
    reasons = {e["reason"] for e in events if e["kind"] == "exit"}
    assert "stream lost" in reasons and reasons <= {"stream lost", "left", "run ended"}
    assert len({e["run_id"] for e in events}) == 1
    for event in events:  # the frame that decided it, drawn; an exit forced by a loss or the end has no frame
        if event["reason"] in (None, "left"):
            assert event["snapshot"] and (snapshot_folder(db) / event["snapshot"]).is_file()
        else:
            assert event["snapshot"] is None


def _count(db) -> int:
    """Events stored so far (0 while the demo is still creating the database)."""
    from pose_fast.errors import EventStoreError

    try:
        return read_events(db)[1] if db.exists() else 0
    except EventStoreError:  # created, not yet migrated: a moment at start
        return 0


def _iso(t: float) -> str:
    from pose_fast.timestamps import iso_utc

    return iso_utc(t)
