"""The stream watchdog: a live source (camera, RTSP, HTTP stream) that keeps itself alive.

:class:`SupervisedSource` reads like a :class:`~pose_fast.frames.FrameSource`, but when its stream gives no frame
for ``stall_timeout`` seconds, or ends, it closes it and opens it again, forever, waiting between attempts with
:class:`Backoff` (0.5 s doubling to 30 s, with jitter, so that cameras restarted together do not retry together).
Meanwhile :meth:`SupervisedSource.read` simply waits; the pipeline and the web server keep running. Each loss
raises :attr:`SupervisedSource.epoch`; the pipeline ends the tracks of the people in view at that moment (their
exits carry the reason ``stream lost``) and identities start fresh after the reconnect. The log says what happened
(``camera door lost (no frame for 10 s); reconnecting``, ``camera door back after 12.3 s``), and
:meth:`SupervisedSource.health` says it to ``/stats`` and ``/readyz``.

A frame size that changes across a reconnect (a camera that comes back in another mode) is scaled to the first size,
so the pipeline's buffers and the overlay stay valid.

A process that reopens streams for weeks calls :func:`limit_heap_arenas` first, before it starts threads
(``pose-fast web`` and ``pose-fast demo`` do). Every capture FFmpeg opens starts new decoder threads; glibc gives
threads their own heaps ("arenas", up to 8 per core) and keeps what they free for reuse by the threads of the same
arena, so the buffers of each reopened capture landed in another arena and stayed: under ``pose-fast web`` RSS grew
1-2 MB per reconnection (+20 MB over 10), the memory in use flat, the growth all free heap. With two arenas it stays
flat (no difference in frames per second was measurable on a shared 2-core host; ``MALLOC_ARENA_MAX`` overrides it).
"""
from __future__ import annotations

import ctypes
import logging
import os
import random
import sys
import threading
import time
from typing import Callable, Optional

import cv2
import numpy as np

from .errors import SourceError, first_line
from .frames import DEFAULT_OPEN_TIMEOUT_MS, FrameSize, FrameSource, open_source

__all__ = ["Backoff", "SupervisedSource", "DEFAULT_STALL_TIMEOUT", "limit_heap_arenas", "HEAP_ARENAS"]

log = logging.getLogger("pose_fast.supervisor")

DEFAULT_STALL_TIMEOUT = 10.0
_BACK_MESSAGE_S = 5.0  # how long the overlay says "back after ..."
#: glibc heaps (arenas) a long-running process keeps (see the module docstring); its default is 8 per core.
HEAP_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_heap_arenas(arenas: int = HEAP_ARENAS) -> bool:
    """Keep at most ``arenas`` C heaps in this process (glibc's ``mallopt(M_ARENA_MAX)``), unless the environment
    sets ``MALLOC_ARENA_MAX``. Call it before starting threads: glibc fixes its limit once it has more than eight
    heaps. Returns False where it does nothing (another C library or system, or ``MALLOC_ARENA_MAX`` is set)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_ARENA_MAX, int(arenas)) == 1


class Backoff:
    """Waits between reconnection attempts: ``first`` doubling up to ``most`` seconds, each ±``jitter`` of itself."""

    def __init__(self, first: float = 0.5, most: float = 30.0, jitter: float = 0.2, rng=None):
        if not 0 < first <= most:
            raise ValueError(f"backoff needs 0 < first <= most, got {first} and {most}")
        self.first, self.most, self.jitter = float(first), float(most), float(jitter)
        self._rng = rng or random.Random()
        self._next = self.first

    def next(self) -> float:
        """The next wait in seconds (and double the one after, up to ``most``)."""
        base, self._next = self._next, min(self._next * 2, self.most)
        return base * (1 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._next = self.first


class SupervisedSource(FrameSize):
    """A live source that reconnects by itself; see the module docstring.

    Parameters
    ----------
    spec : str
        Camera index, device path, or stream URL (what :func:`~pose_fast.frames.open_source` takes).
    name : str, optional
        What the log and the overlay call it (``camera door``); default ``source <spec>``.
    stall_timeout : float
        Seconds without a frame that count as a lost stream.
    first : FrameSource, optional
        The source already opened (its size is the size of every frame); default: opened here (raises
        :class:`~pose_fast.errors.SourceError` if that fails: a first connection that fails is the caller's to
        retry or report).
    opener : callable, optional
        ``opener(spec, read_timeout_ms=..., open_timeout_ms=...) -> FrameSource``; default ``open_source``.
    """

    live = True
    seekable = False
    frame_count = None
    realtime = False
    kind = "supervised"

    def __init__(self, spec, *, name: Optional[str] = None, stall_timeout: float = DEFAULT_STALL_TIMEOUT,
                 first: Optional[FrameSource] = None, opener: Optional[Callable[..., FrameSource]] = None,
                 backoff: Optional[Backoff] = None):
        if isinstance(stall_timeout, bool) or not isinstance(stall_timeout, (int, float)) \
                or not 0.1 <= stall_timeout <= 3600:
            raise ValueError(f"the stall timeout must be seconds in [0.1, 3600], got {stall_timeout!r}")
        self.spec = str(spec)
        self.name = name or f"source {self.spec}"
        self.stall_timeout = float(stall_timeout)
        self._opener = opener or open_source
        self.backoff = backoff or Backoff()
        self._source: Optional[FrameSource] = first if first is not None else self._open()
        self.kind = self._source.kind
        self.width, self.height = self._source.width, self._source.height
        self.fps = self._source.fps
        self._scratch: Optional[np.ndarray] = None  # frames of another size, before scaling
        self._interrupted = threading.Event()
        self.state = "running"  # running | reconnecting | closed
        self.epoch = 0  # +1 at every loss
        self.losses = 0
        self.reconnects = 0
        self.lost_at: Optional[float] = None  # time.time() of the last loss
        self.last_error: Optional[str] = None
        self.last_outage_s: Optional[float] = None
        self.frames_read = 0
        self.reallocations = 0
        self.stride = 1
        self.media_time = 0.0  # the monotonic clock at the last frame: a live source's time line
        self._last_frame = time.monotonic()
        self._back_at: Optional[float] = None

    def _open(self) -> FrameSource:
        timeout_ms = int(self.stall_timeout * 1000)
        return self._opener(self.spec, read_timeout_ms=timeout_ms,
                            open_timeout_ms=max(timeout_ms, DEFAULT_OPEN_TIMEOUT_MS))

    # -- what FrameSource has ---------------------------------------------------------------------------------
    def read(self, into: np.ndarray) -> Optional[np.ndarray]:
        """The next frame into ``into``; waits through losses and reconnections. None only once interrupted."""
        while not self._interrupted.is_set():
            source = self._source
            if source is None:
                self._reconnect()
                continue
            started = time.monotonic()
            try:
                frame = self._read(source, into)
            except SourceError as exc:
                frame, error = None, first_line(exc)
            else:
                error = None
            if frame is not None:
                self._last_frame = self.media_time = time.monotonic()
                self.frames_read += 1
                return frame
            if self._interrupted.is_set():
                break
            waited = time.monotonic() - started
            self._lost(error or (f"no frame for {waited:.0f} s" if waited >= 0.9 * self.stall_timeout
                                 else "the stream ended"))
        return None

    def _read(self, source: FrameSource, into: np.ndarray) -> Optional[np.ndarray]:
        if source.shape == into.shape:
            return source.read(into)
        if self._scratch is None or self._scratch.shape != source.shape:
            self._scratch = np.empty(source.shape, np.uint8)
        if source.read(self._scratch) is None:
            return None
        cv2.resize(self._scratch, (into.shape[1], into.shape[0]), dst=into, interpolation=cv2.INTER_AREA)
        return into

    def _lost(self, why: str) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()
        self.state = "reconnecting"
        self.epoch += 1
        self.losses += 1
        self.lost_at = time.time()
        self.last_error = why
        self._back_at = None
        self.backoff.reset()
        log.warning("%s lost (%s); reconnecting", self.name, why)

    def _reconnect(self) -> None:
        if self._interrupted.wait(self.backoff.next()):
            return
        try:
            source = self._open()
        except SourceError as exc:
            self.last_error = first_line(exc)
            log.debug("%s: still unreachable: %s", self.name, self.last_error)
            return
        if self._interrupted.is_set():
            source.close()
            return
        self._source = source
        self.state = "running"
        self.reconnects += 1
        self.last_outage_s = time.time() - (self.lost_at or time.time())
        self._back_at = time.monotonic()
        self._last_frame = time.monotonic()
        if source.shape != self.shape:
            log.warning("%s came back at %dx%d; its frames are scaled to %dx%d", self.name, source.width,
                        source.height, self.width, self.height)
        log.warning("%s back after %.1f s", self.name, self.last_outage_s)

    # -- state for people --------------------------------------------------------------------------------------
    @property
    def status_message(self) -> Optional[str]:
        """For the overlay: ``back after 12.3 s`` for a few seconds after a reconnection, else None."""
        if self._back_at is not None and time.monotonic() - self._back_at < _BACK_MESSAGE_S:
            return f"{self.name} back after {self.last_outage_s:.1f} s"
        return None

    def health(self) -> dict:
        """``state``, ``last_error``, ``last_frame_s`` (seconds since the last frame), ``losses``, ``reconnects``."""
        return {"state": self.state, "last_error": self.last_error,
                "last_frame_s": round(time.monotonic() - self._last_frame, 3), "losses": self.losses,
                "reconnects": self.reconnects, "last_outage_s": self.last_outage_s}

    def interrupt(self) -> None:
        """Make a waiting :meth:`read` return None (the pipeline stops); the source stays open."""
        self._interrupted.set()

    def rewind(self) -> bool:
        return False

    def close(self) -> None:
        self._interrupted.set()
        self.state = "closed"
        source, self._source = self._source, None
        if source is not None:
            source.close()

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def __enter__(self) -> SupervisedSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        fps = f" at {self.fps:.3g} fps" if self.fps else ""
        return (f"{self.name} ({self.spec}): {self.width}x{self.height}{fps}, reopened after "
                f"{self.stall_timeout:g} s without a frame")

    def __repr__(self) -> str:
        return f"SupervisedSource({self.spec!r}, {self.state}, epoch={self.epoch})"
