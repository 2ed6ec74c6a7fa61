"""Frame sources (camera, file, http(s)/RTSP stream) and the zero-copy frame ring.

A :class:`FrameSource` reads frames straight into caller-owned arrays with ``cap.read(slot)``; OpenCV writes into the
given array when its shape, dtype and layout match the decoded frame, and :meth:`FrameSource.read` checks that it did
(the slot's data pointer is unchanged). The :class:`FrameRing` owns a fixed set of such arrays, allocated once; a slot
goes back to the free list only when every holder has released it (reference count), so capture, inference, overlay
and display all work on the same buffer without a copy.

Example
-------
>>> with open_source("video.mp4") as source:                      # doctest: +SKIP
...     ring = FrameRing(4, source.shape)
...     slot = ring.acquire()
...     if source.read(slot.array) is not None:
...         ...                                                    # use slot.array
...     ring.release(slot)
"""
from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path
from typing import Optional, Tuple
from urllib.parse import urlparse

# FFmpeg prints its own errors ("moov atom not found", "Connection refused") to stderr; the one-line SourceError
# says it better. Read once by OpenCV when its FFmpeg backend starts, so it is set before any capture opens.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
# OpenCV's own "[ WARN:0@12.3] ... cap_ffmpeg_impl.hpp" lines when a stream breaks: the watchdog's log says it better.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .errors import SourceError  # noqa: E402

__all__ = ["SourceError", "FrameSource", "FrameRing", "FrameSlot", "open_source", "parse_spec",
           "STREAM_SCHEMES", "DEFAULT_OPEN_TIMEOUT_MS", "DEFAULT_READ_TIMEOUT_MS"]

#: URL schemes handed to OpenCV's FFmpeg backend.
STREAM_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt", "mms", "hls")
#: Schemes that are live whatever the server says of their length (an RTSP server replaying a file reports one).
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "udp", "tcp", "srt")
DEFAULT_OPEN_TIMEOUT_MS = 5000
DEFAULT_READ_TIMEOUT_MS = 5000


def parse_spec(spec) -> Tuple[str, object]:
    """``("camera", index)``, ``("url", url)`` or ``("file", Path)`` for a ``--video-url`` value."""
    if isinstance(spec, bool):
        raise SourceError(f"not a video source: {spec!r} (use a camera index, a file or a URL)")
    if isinstance(spec, (int, np.integer)):
        return "camera", _camera_index(int(spec))
    text = str(spec).strip()
    if not text:
        raise SourceError("empty video source: use a camera index (0), a video file or a URL")
    if text.isdigit():
        return "camera", _camera_index(int(text))
    if text.startswith("/dev/"):  # a local capture device (V4L2): a camera by path
        return "camera", text
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme == "file":
            return "file", Path(urlparse(text).path)
        if scheme not in STREAM_SCHEMES:
            raise SourceError(f"unsupported URL scheme {scheme!r} in {text}: use http(s)://, rtsp:// or a file path")
        return "url", text
    return "file", Path(text).expanduser()


#: Camera indices OpenCV takes (a C int); nobody has more cameras than this anyway.
MAX_CAMERA_INDEX = 9999


def _camera_index(index: int) -> int:
    if not 0 <= index <= MAX_CAMERA_INDEX:
        raise SourceError(f"no camera {index}: a camera index is 0 to {MAX_CAMERA_INDEX} (0 is the first camera)")
    return index


class _QuietOpenCV:
    """Silence OpenCV's own warnings while a capture opens (they repeat what SourceError says)."""

    def __enter__(self):
        try:
            self._level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:  # very old OpenCV builds
            self._level = None
        return self

    def __exit__(self, *exc):
        if self._level is not None:
            cv2.utils.logging.setLogLevel(self._level)


class FrameSize:
    """``shape`` and ``size`` from ``width`` and ``height``: what a source's frames are."""

    width: int
    height: int

    @property
    def shape(self) -> Tuple[int, int, int]:
        """(height, width, 3): the shape a slot must have."""
        return (self.height, self.width, 3)

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height)."""
        return (self.width, self.height)


class FrameSource(FrameSize):
    """An opened camera, video file or stream. Use :func:`open_source` to make one.

    Attributes
    ----------
    spec : str
        What the user gave (``"0"``, a path, a URL).
    kind : {"camera", "file", "url"}
    width, height : int
        Frame size in pixels (of the frames actually decoded, not what the container claims).
    fps : float or None
        Frames per second the source reports (None when it does not say).
    frame_count : int or None
        Frames in a file or stream as the container reports it; None for cameras, live streams, and files whose
        container does not say (a raw MJPEG stream).
    live : bool
        True for cameras, for streams and pipes without a known length (frames keep coming and old ones go stale),
        and for ``realtime`` files. A regular local file is never live, whatever its container says.
    realtime : bool
        A file read at its own frame rate, as a camera would deliver it (``read()`` waits for each frame's time);
        such a source is live.
    reallocations : int
        Reads where OpenCV did not write into the given array (always 0 with :class:`FrameRing` slots).
    stride : int
        :meth:`read` returns every ``stride``-th frame of a file and skips the others cheaply (``grab()``, no
        decoding); 1 (the default) returns every frame. Not for live sources.
    media_time : float
        Seconds on the source's own time line of the frame :meth:`read` returned last: for a file, its position
        (frame index / fps, counting on across ``rewind``), whatever the speed of reading or ``live``; for a
        camera, a stream or a pipe, the monotonic clock when it arrived. What the tracker measures time and motion in.
    """

    def __init__(self, spec, *, open_timeout_ms: int = DEFAULT_OPEN_TIMEOUT_MS,
                 read_timeout_ms: int = DEFAULT_READ_TIMEOUT_MS, realtime: bool = False, stride: int = 1):
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise SourceError(f"stride must be an integer >= 1 (infer on every Nth frame), got {stride!r}")
        self.stride = int(stride)
        self.kind, self._target = parse_spec(spec)
        self.spec = str(spec)
        self.open_timeout_ms = int(open_timeout_ms)
        self.read_timeout_ms = int(read_timeout_ms)
        self.reallocations = 0
        self.frames_read = 0
        self.restarts = 0
        self.ended_early = False  # the last read found the end well before the frame count: truncated, damaged
        self.ended_at = 0  # frames of the file before the end the last read found
        self._lock = threading.Lock()
        self._cap = None
        self._pending = None
        self._open()
        first = self._probe()
        self.height, self.width = int(first.shape[0]), int(first.shape[1])
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind != "camera" else 0
        if self.kind == "url" and self.spec.split("://", 1)[0].lower() in LIVE_SCHEMES:
            count = 0
        self.frame_count = count if count > 0 else None
        self.realtime = bool(realtime) and self.kind != "camera"
        self._regular_file = self.kind == "file" and self._target.is_file()
        self.live = self.kind == "camera" or self.realtime or (self.frame_count is None and not self._regular_file)
        self._interval = 1.0 / (self.fps or 25.0)
        self._due = None
        self._pending = first
        self._position = -1      # index in the current pass of the frame read last
        self._time_offset = 0.0  # seconds of the passes before this one (--loop)
        self.media_time = 0.0
        if self.stride > 1 and self.live:
            self.close()
            what = {"camera": "camera", "file": "file", "url": "stream"}[self.kind]
            raise SourceError(f"a stride of {self.stride} needs a video file read as fast as it decodes, but {what} "
                              f"{self.spec} is live (a camera, a stream, or a file played in real time)")

    # -- opening ---------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        if self.kind == "file":
            path = self._target
            if not path.exists():
                raise SourceError(f"video file {self.spec} not found: check the path")
            if path.is_dir():
                raise SourceError(f"{self.spec} is a folder, not a video file")
            if not os.access(path, os.R_OK):
                raise SourceError(f"video file {self.spec} is not readable: check its permissions")
        with _QuietOpenCV():
            if self.kind == "camera":
                cap = cv2.VideoCapture(self._target)
            else:
                params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.open_timeout_ms,
                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.read_timeout_ms]
                try:
                    cap = cv2.VideoCapture(str(self._target), cv2.CAP_FFMPEG, params)
                except cv2.error:
                    cap = cv2.VideoCapture(str(self._target), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._cannot_open())
        self._cap = cap

    def _cannot_open(self) -> str:
        if self.kind == "camera":
            return (f"no camera {self._target}: none is connected, it is in use, or access is denied "
                    f"(use --video-url FILE_OR_URL to read a video instead)")
        if self.kind == "url":
            return (f"cannot open stream {self.spec}: unreachable, refused, or not a video (waited up to "
                    f"{self.open_timeout_ms / 1000:g} s; check the address and that the server is up)")
        return f"cannot open {self.spec}: not a video file OpenCV's FFmpeg can read"

    def _probe(self) -> np.ndarray:
        with _QuietOpenCV():
            ok, frame = self._cap.read()
        if not ok or frame is None or frame.size == 0:
            self.close()
            if self.kind == "camera":
                raise SourceError(f"camera {self._target} opened but gave no frame: check that no other program "
                                  f"uses it (or use --video-url FILE_OR_URL)")
            raise SourceError(f"{self.spec} has no readable video frames: not a video, or the stream sent nothing "
                              f"within {self.read_timeout_ms / 1000:g} s")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            self.close()
            raise SourceError(f"{self.spec} gives {frame.dtype} frames of shape {frame.shape}; "
                              f"only 8-bit colour video is supported")
        return np.ascontiguousarray(frame)

    # -- reading ---------------------------------------------------------------------------------------------------

    @property
    def seekable(self) -> bool:
        """Whether :meth:`rewind` can restart the source (regular files, and streams of known length)."""
        return self._regular_file or (self.kind != "camera" and self.frame_count is not None)

    def read(self, into: np.ndarray) -> Optional[np.ndarray]:
        """Decode the next frame into ``into`` (H×W×3 uint8, C-contiguous); return it, or None at the end.

        Raises SourceError when the frame size changes mid-stream. If OpenCV ever hands back a new array instead
        of filling ``into`` (a mismatched slot), the frame is copied into ``into`` and ``reallocations`` counts it.
        """
        if self._cap is None:
            return None
        if self.realtime:
            self._pace()
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self._store(frame, into, probe=True)
            self.frames_read += 1
            self._stamp()
            return into
        if self.stride > 1 and self._position >= 0:
            for _ in range(self.stride - 1):  # skipped, not decoded
                if not self._cap.grab():
                    return self._end()
                self._position += 1
        pointer = into.ctypes.data
        try:
            ok, frame = self._cap.read(into)
        except cv2.error:  # a layout OpenCV cannot wrap (e.g. Fortran order): decode, then copy
            ok, frame = self._cap.read()
        if not ok or frame is None:
            return self._end()
        if frame is not into or frame.ctypes.data != pointer:
            self._store(frame, into)
        self.frames_read += 1
        self._stamp()
        return into

    def _end(self) -> None:  # returns None: the end
        count, self.ended_at = self.frame_count, self._position + 1
        if count and not self.live:  # containers round their count a little: allow 1 % (at least 3 frames)
            self.ended_early = self.ended_at + max(3, count // 100) < count
        return None

    def _stamp(self) -> None:
        self._position += 1
        if not self._regular_file:  # a camera, a stream, a pipe: when the frame arrived
            self.media_time = time.monotonic()
        else:  # a file's own time line, however fast it is read (also played realtime, or treated as live)
            self.media_time = self._time_offset + self._position * self._interval

    def _pace(self) -> None:
        now = time.monotonic()
        if self._due is None or now - self._due > 1.0:  # first frame, or far behind: restart the clock
            self._due = now
        elif self._due > now:
            time.sleep(self._due - now)
        self._due += self._interval

    def _store(self, frame: np.ndarray, into: np.ndarray, probe: bool = False) -> None:
        if frame is into:
            return
        if frame.shape != into.shape:
            raise SourceError(f"{self.spec}: the frame size changed from {into.shape[1]}x{into.shape[0]} to "
                              f"{frame.shape[1]}x{frame.shape[0]} mid-stream; restart with the new source")
        if not probe:
            self.reallocations += 1
        np.copyto(into, frame)

    def rewind(self) -> bool:
        """Restart a file from its first frame (for ``--loop``); False when the source cannot restart."""
        if not self.seekable or self._cap is None:
            return False
        self.restarts += 1
        self.ended_early = False
        self._time_offset += (self._position + 1) * self._interval
        self._position = -1
        # a container without a frame count (a raw MJPEG stream) says the seek worked and then reads nothing: reopen
        if (self.frame_count is not None and self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                and self._cap.get(cv2.CAP_PROP_POS_FRAMES) == 0):
            return True
        self._cap.release()
        self._cap = None
        self._open()
        return True

    def close(self) -> None:
        cap, self._cap = self._cap, None
        self._pending = None
        if cap is not None:
            cap.release()

    @property
    def closed(self) -> bool:
        return self._cap is None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        what = {"camera": "camera", "file": "file", "url": "stream"}[self.kind]
        length = f", {self.frame_count} frames" if self.frame_count else ""
        fps = f" at {self.fps:.3g} fps" if self.fps else ""
        return f"{what} {self.spec}: {self.width}x{self.height}{fps}{length}"

    def __repr__(self) -> str:
        return f"FrameSource({self.spec!r}, {self.width}x{self.height}, live={self.live})"


def open_source(spec="0", **kwargs) -> FrameSource:
    """Open a camera index (``"0"``), a video file, or an http(s)/RTSP URL; raise :class:`SourceError` if it fails.

    Parameters
    ----------
    spec : str or int
        ``"0"`` (default camera), a path, ``file://`` URL, or a stream URL.
    open_timeout_ms, read_timeout_ms : int
        For URLs: how long FFmpeg waits to connect and for data, so an unreachable address fails fast.
    realtime : bool
        Read a file at its own frame rate, like a camera (a live source: the latency mode drops stale frames).
    stride : int
        Return every Nth frame of a file, skipping the others without decoding them (not for live sources).
    """
    return FrameSource(spec, **kwargs)


class FrameSlot:
    """One preallocated frame buffer of a :class:`FrameRing` and what the pipeline knows about its frame."""

    __slots__ = ("array", "slot_id", "refs", "frame_index", "timestamp", "media_time", "captured_at", "capture_ms",
                 "epoch")

    def __init__(self, array: np.ndarray, slot_id: int):
        self.array = array
        self.slot_id = slot_id
        self.refs = 0
        self.frame_index = -1
        self.timestamp = 0.0   # wall clock (time.time()) when read: what events are stamped with
        self.media_time = 0.0  # the source's media_time of the frame: what the tracker measures time in
        self.captured_at = 0.0
        self.capture_ms = 0.0
        self.epoch = 0  # the source's losses before this frame (pose_fast.supervisor)

    def __repr__(self) -> str:
        return f"FrameSlot({self.slot_id}, frame={self.frame_index}, refs={self.refs})"


class FrameRing:
    """A fixed set of preallocated H×W×3 uint8 frame buffers, reused only when every holder has released them.

    Parameters
    ----------
    size : int
        Number of slots (at least 1). Capture blocks in :meth:`acquire` when all are in use: the back-pressure.
    shape : (height, width, 3)
    """

    def __init__(self, size: int, shape, dtype=np.uint8):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"ring size must be an integer >= 1, got {size!r}")
        shape = tuple(int(n) for n in shape)
        if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
            raise ValueError(f"slot shape must be (height, width, 3), got {shape}")
        self.shape = shape
        self.slots = tuple(FrameSlot(np.zeros(shape, dtype=dtype), i) for i in range(int(size)))
        self._free = collections.deque(self.slots)  # FIFO: slots are used in turn, like a ring
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self.slots)

    @property
    def free_count(self) -> int:
        with self._cond:
            return len(self._free)

    def acquire(self, timeout: Optional[float] = None) -> Optional[FrameSlot]:
        """Take a free slot (reference count 1); wait up to ``timeout`` s (None: until one is free or the ring is
        closed). Returns None on time-out or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._free and not self._closed:
                if deadline is None:
                    self._cond.wait(0.1)
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(min(remaining, 0.1))
            if self._closed:
                return None
            slot = self._free.popleft()
            slot.refs = 1
            return slot

    def retain(self, slot: FrameSlot) -> FrameSlot:
        """Add a holder: the slot stays out of the free list until a matching :meth:`release`."""
        with self._cond:
            if slot.refs <= 0:
                raise RuntimeError(f"retain() on a free slot {slot.slot_id}")
            slot.refs += 1
        return slot

    def release(self, slot: FrameSlot) -> None:
        """Drop one holder; the last release returns the slot to the free list."""
        with self._cond:
            if slot.refs <= 0:
                raise RuntimeError(f"release() of slot {slot.slot_id} that is already free")
            slot.refs -= 1
            if slot.refs == 0:
                self._free.append(slot)
                self._cond.notify()

    def close(self) -> None:
        """Wake every waiter in :meth:`acquire` (they get None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    def __repr__(self) -> str:
        return f"FrameRing({len(self.slots)} x {self.shape}, free={self.free_count})"
