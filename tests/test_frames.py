"""Frame sources and the frame ring, on the shared videos and real local HTTP servers (loopback only)."""
from __future__ import annotations

import collections
import functools
import gc
import http.server
import io
import os
import re
import resource
import socket
import threading
import time
import tracemalloc

import numpy as np
import pytest

from pose_fast.frames import FrameRing, SourceError, open_source, parse_spec

VIDEO_FACTS = {  # name: (width, height, frames)
    "store-aisle": (480, 270, 67),
    "people-walking": (480, 270, 73),
    "asl-walk": (640, 480, 89),
}


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with byte ranges (what FFmpeg asks an mp4 server for)."""

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404, "not found")
            return None
        size = os.path.getsize(path)
        start, end = 0, size - 1
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else size - 1
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            return io.BytesIO(f.read(end - start + 1))


@pytest.fixture(scope="module")
def video_server(video_path):
    folder = video_path("store-aisle").parent
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_all(source) -> list:
    frames = []
    while True:
        buf = np.empty(source.shape, np.uint8)
        if source.read(buf) is None:
            return frames
        frames.append(buf)


@pytest.mark.parametrize("name", sorted(VIDEO_FACTS))
def test_file_source_reports_size_fps_and_length(video_path, name):
    width, height, count = VIDEO_FACTS[name]
    with open_source(str(video_path(name))) as source:
        assert (source.width, source.height) == (width, height)
        assert source.shape == (height, width, 3)
        assert source.fps and source.fps > 0
        assert source.frame_count == count
        assert source.kind == "file" and not source.live and source.seekable
        frames = _read_all(source)
    assert len(frames) == count
    assert source.closed


def test_frames_match_what_opencv_decodes(read_frames, video_path):
    expected = read_frames("asl-walk", count=5)
    with open_source(video_path("asl-walk")) as source:
        got = [np.empty(source.shape, np.uint8) for _ in range(5)]
        for buf in got:
            assert source.read(buf) is buf
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def test_read_writes_into_the_given_slot(video_path):
    with open_source(video_path("store-aisle")) as source:
        ring = FrameRing(3, source.shape)
        pointers = [slot.array.ctypes.data for slot in ring.slots]
        for _ in range(20):
            slot = ring.acquire()
            before = slot.array.ctypes.data
            assert source.read(slot.array) is slot.array
            assert slot.array.ctypes.data == before
            ring.release(slot)
        assert source.reallocations == 0
        assert [slot.array.ctypes.data for slot in ring.slots] == pointers


@pytest.mark.parametrize("make", [
    lambda shape: np.zeros(shape, np.float32),          # cap.read() hands back a new uint8 array
    lambda shape: np.zeros(shape, np.uint8, order="F"),  # cv2 cannot wrap it at all
])
def test_a_buffer_opencv_cannot_fill_is_detected_and_still_filled(video_path, read_frames, make):
    expected = read_frames("store-aisle", count=2)
    with open_source(video_path("store-aisle")) as source:
        source.read(np.empty(source.shape, np.uint8))
        odd = make(source.shape)
        assert source.read(odd) is odd
        assert source.reallocations == 1
        np.testing.assert_array_equal(odd, expected[1])


def test_a_strided_view_is_filled_in_place(video_path, read_frames):
    expected = read_frames("store-aisle", count=1)[0]
    with open_source(video_path("store-aisle")) as source:
        wide = np.zeros((270, 640, 3), np.uint8)
        view = wide[:, 80:560]
        source.read(view)  # the probed first frame (copied once)
        source.rewind()
        assert source.read(view) is view
        assert source.reallocations == 0
    np.testing.assert_array_equal(wide[:, 80:560], expected)
    assert not wide[:, :80].any()


def test_a_slot_of_another_size_is_a_source_error(video_path):
    with open_source(video_path("store-aisle")) as source:
        source.read(np.empty(source.shape, np.uint8))
        with pytest.raises(SourceError, match="frame size changed from 640x480 to 480x270"):
            source.read(np.empty((480, 640, 3), np.uint8))


def test_rewind_restarts_a_file(video_path, read_frames):
    first = read_frames("people-walking", count=1)[0]
    with open_source(video_path("people-walking")) as source:
        assert len(_read_all(source)) == 73
        assert source.rewind()
        again = _read_all(source)
    assert len(again) == 73
    np.testing.assert_array_equal(again[0], first)


def test_stride_returns_every_nth_frame_with_the_files_own_times(video_path, read_frames):
    """people-walking.mp4 (73 frames, 12.5 fps) with stride 5: frames 0, 5, ..., 70 decoded exactly as read one by
    one, each with its position in the file as media_time (a file is read faster than real time here); across a
    rewind the time counts on."""
    every = read_frames("people-walking", count=73)
    with open_source(video_path("people-walking"), stride=5) as source:
        assert source.stride == 5 and not source.live
        got, times = [], []
        buf = np.empty(source.shape, np.uint8)
        while source.read(buf) is not None:
            got.append(buf.copy())
            times.append(source.media_time)
        assert source.rewind() and source.read(buf) is not None
        after_rewind = source.media_time
    assert len(got) == 15
    for k, frame in enumerate(got):
        np.testing.assert_array_equal(frame, every[5 * k])
    assert times == pytest.approx([5 * k / 12.5 for k in range(15)])
    assert after_rewind == pytest.approx(73 / 12.5)  # the first frame of the second pass


def test_a_file_played_in_real_time_keeps_its_own_times(video_path):
    with open_source(video_path("store-aisle"), realtime=True) as source:
        buf = np.empty(source.shape, np.uint8)
        times = [source.media_time for _ in range(3) if source.read(buf) is not None]
    assert times == pytest.approx([0.0, 0.08, 0.16])


@pytest.mark.parametrize("stride, message", [
    (0, r"^stride must be an integer >= 1 \(infer on every Nth frame\), got 0$"),
    (2.5, r"^stride must be an integer >= 1 \(infer on every Nth frame\), got 2.5$"),
])
def test_a_bad_stride_is_one_line(video_path, stride, message):
    with pytest.raises(SourceError, match=message):
        open_source(video_path("store-aisle"), stride=stride)


def test_a_live_source_refuses_a_stride(video_path):
    with pytest.raises(SourceError, match=r"^a stride of 3 needs a video file read as fast as it decodes, but file "
                                          r".*store-aisle-detection.mp4 is live \(a camera, a stream, or a file "
                                          r"played in real time\)$"):
        open_source(video_path("store-aisle"), realtime=True, stride=3)


def _raw_mjpeg(path, frames, fps=12.5):
    """A raw MJPEG stream (no container index): CAP_PROP_FRAME_COUNT reports no usable count for it."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) <= 0, "this OpenCV counts raw MJPEG frames: no such file here"
    capture.release()
    return path


def test_a_file_without_a_frame_count_is_a_file_not_a_live_source(tmp_path, read_frames):
    frames = read_frames("store-aisle", count=20)
    with open_source(_raw_mjpeg(tmp_path / "clip.mjpeg", frames)) as source:
        assert source.kind == "file" and source.frame_count is None
        assert not source.live and source.seekable
        first = _read_all(source)
        assert len(first) == 20
        assert source.rewind()  # the seek reports success and reads nothing here: the file is reopened
        again = _read_all(source)
    assert len(again) == 20
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[-1], first[-1])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes: POSIX")
def test_a_pipe_without_a_frame_count_is_live(tmp_path, read_frames):
    data = _raw_mjpeg(tmp_path / "clip.mjpeg", read_frames("store-aisle", count=5)).read_bytes()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with open_source(fifo) as source:
        assert source.kind == "file" and source.frame_count is None
        assert source.live and not source.seekable
        before = time.monotonic()
        assert len(_read_all(source)) == 5
        assert before <= source.media_time <= time.monotonic()  # a live source's media time: when frames came
        assert not source.rewind()
    writer.join(10)


def test_http_source_reads_the_whole_video(video_server):
    with open_source(f"{video_server}/store-aisle-detection.mp4") as source:
        assert source.kind == "url"
        assert (source.width, source.height, source.frame_count) == (480, 270, 67)
        assert len(_read_all(source)) == 67


def test_realtime_file_is_live_and_paced(video_path):
    with open_source(video_path("store-aisle"), realtime=True) as source:
        assert source.live and source.seekable
        buf = np.empty(source.shape, np.uint8)
        start = time.monotonic()
        for _ in range(6):
            source.read(buf)
        # 12.5 fps: six frames span at least five intervals (a lower bound, not a speed assertion)
        assert time.monotonic() - start >= 5 / source.fps - 0.01


@pytest.mark.parametrize("spec, kind, target", [
    ("0", "camera", 0), (3, "camera", 3), ("rtsp://127.0.0.1:8554/cam", "url", "rtsp://127.0.0.1:8554/cam"),
    ("https://example.org/a.mp4", "url", "https://example.org/a.mp4"),
])
def test_parse_spec(spec, kind, target):
    assert parse_spec(spec) == (kind, target)


def test_bad_sources_fail_with_one_line_naming_them(tmp_path, video_server):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    refused = f"http://127.0.0.1:{_free_port()}/video.mp4"
    cases = {
        str(tmp_path / "missing.mp4"): "not found",
        str(tmp_path): "is a folder",
        str(text): "not a video file",
        str(empty): "not a video file",
        refused: "cannot open stream",
        f"{video_server}/no-such-video.mp4": "cannot open stream",
        f"rtsp://127.0.0.1:{_free_port()}/live": "cannot open stream",
        "ftp://127.0.0.1/video.mp4": "unsupported URL scheme",
        "99": "no camera 99",
        "  ": "empty video source",
    }
    for spec, message in cases.items():
        with pytest.raises(SourceError) as info:
            open_source(spec)
        text_ = str(info.value)
        assert message in text_, (spec, text_)
        assert "\n" not in text_
        if spec.strip():
            assert spec.strip() in text_ or spec in text_


def test_unanswered_url_times_out_fast():
    """A server that accepts the connection but never answers: the open timeout ends the wait."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        start = time.monotonic()
        with pytest.raises(SourceError, match="cannot open stream"):
            open_source(f"http://127.0.0.1:{listener.getsockname()[1]}/x.mp4", open_timeout_ms=1000,
                        read_timeout_ms=1000)
        assert time.monotonic() - start < 20  # FFmpeg's own default would wait 30 s
    finally:
        listener.close()


# -- the ring ---------------------------------------------------------------------------------------------------------
def test_ring_slot_is_reused_only_after_every_holder_released_it():
    ring = FrameRing(2, (4, 6, 3))
    a = ring.acquire()
    b = ring.acquire()
    assert a is not b and ring.free_count == 0
    assert ring.acquire(timeout=0.05) is None
    ring.retain(a)  # a second consumer (e.g. a sink still encoding)
    ring.release(a)
    assert ring.acquire(timeout=0.05) is None
    ring.release(a)
    c = ring.acquire(timeout=1)
    assert c is a and c.refs == 1
    ring.release(b)
    with pytest.raises(RuntimeError, match="already free"):
        ring.release(b)


def test_ring_blocks_until_a_release_from_another_thread():
    ring = FrameRing(1, (2, 2, 3))
    held = ring.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(ring.acquire(timeout=10)))
    waiter.start()
    time.sleep(0.1)
    assert not got
    ring.release(held)
    waiter.join(10)
    assert got == [held]


def test_ring_close_wakes_waiters():
    ring = FrameRing(1, (2, 2, 3))
    ring.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(ring.acquire()))
    waiter.start()
    ring.close()
    waiter.join(10)
    assert got == [None]


@pytest.mark.parametrize("size, shape", [(0, (2, 2, 3)), (2, (2, 2)), (2, (2, 2, 4)), (True, (2, 2, 3))])
def test_ring_rejects_bad_arguments(size, shape):
    with pytest.raises(ValueError):
        FrameRing(size, shape)


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_long_capture_reuses_the_same_slots_and_memory_stays_flat(video_path):
    """3,000 frames through ring + capture (looping a 67-frame file): the same slot objects and buffers all along,
    no reallocation, and neither Python allocations nor RSS grow."""
    with open_source(video_path("store-aisle")) as source:
        ring = FrameRing(4, source.shape)
        identities = [(id(s), id(s.array), s.array.ctypes.data) for s in ring.slots]
        seen = set()

        held = collections.deque()

        def run(frames):
            done = 0
            while done < frames:
                slot = ring.acquire(timeout=5)
                if source.read(slot.array) is None:
                    ring.release(slot)
                    assert source.rewind()
                    continue
                seen.add((id(slot), id(slot.array), slot.array.ctypes.data))
                held.append(slot)  # up to three frames held downstream at once, as in the pipeline
                if len(held) == 3:
                    ring.release(held.popleft())
                done += 1

        run(300)  # warm up decoder buffers and allocator pools
        gc.collect()
        tracemalloc.start()
        rss_before = _rss_kb()
        snapshot_before = tracemalloc.take_snapshot()
        run(3000)
        gc.collect()
        growth = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(snapshot_before, "filename"))
        rss_after = _rss_kb()
        tracemalloc.stop()
    assert seen == set(identities)
    assert source.reallocations == 0
    assert source.restarts >= 40
    assert growth < 64 * 1024, f"Python allocations grew by {growth} bytes"
    assert rss_after - rss_before < 5 * 1024, f"RSS grew by {rss_after - rss_before} kB"
