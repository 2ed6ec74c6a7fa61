"""The pipeline's capture side: :class:`Capture` reads a :class:`~pose_fast.frames.FrameSource` into
:class:`~pose_fast.frames.FrameRing` slots and hands them to the feeder, in one of three ways:

``in order``
    (throughput) a capture thread reads every frame into a bounded queue; it blocks when the ring is full.
``newest``
    (latency, live source) a capture thread reads continuously; the newest frame replaces one the feeder has not
    picked up yet, which is dropped (``dropped``).
``on demand``
    (latency, file) no thread: :meth:`Capture.next` reads the next frame just before its inference, so it is never
    stale and none is dropped.

Every slot handed out is stamped (frame index, stream epoch, wall-clock and media time, capture time); the feeder
or the pipeline gives it back to the ring.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import List, Optional

from .errors import SourceError
from .frames import FrameRing, FrameSlot, FrameSource

__all__ = ["Capture", "CAPTURE_MODES"]

CAPTURE_MODES = ("in order", "newest", "on demand")
_END = object()
_EMPTY_RESTARTS = 3  # a looped source that restarts this often in a row without giving a frame is an error


class Capture:
    """Frames from ``source`` in ``ring`` slots for the feeder, until the source ends, ``limit`` frames (in order),
    or ``stop`` is set.

    Parameters
    ----------
    source : FrameSource
    ring : FrameRing
    stop : threading.Event
        The run's stop flag; blocked calls look at it every ``poll`` seconds (:meth:`wake` rouses a feeder waiting
        for the newest frame at once).
    mode : {"in order", "newest", "on demand"}
    loop : bool
        Restart the source at its end (a file).
    limit : int, optional
        Frames to read at most (``in order``; the feeder counts for the other two).
    """

    def __init__(self, source: FrameSource, ring: FrameRing, stop: threading.Event, mode: str, loop: bool = False,
                 limit: Optional[int] = None, poll: float = 0.1):
        if mode not in CAPTURE_MODES:
            raise ValueError(f"unknown capture mode {mode!r}: use one of {', '.join(CAPTURE_MODES)}")
        self.source, self.ring, self.mode = source, ring, mode
        self.loop, self.limit = bool(loop), limit
        self._stop = stop
        self._poll = poll
        self._queue: queue.Queue = queue.Queue(maxsize=len(ring) + 1)  # in order
        self._latest: Optional[FrameSlot] = None  # newest
        self._cond = threading.Condition()
        self._done = False
        self._frame_index = 0
        self.dropped = 0  # frames replaced by a newer one before the feeder took them (newest)

    @property
    def threaded(self) -> bool:
        """Whether :meth:`run` must run on a thread of its own (``in order`` and ``newest``)."""
        return self.mode != "on demand"

    def run(self) -> None:
        """The capture thread: read until the end, the limit or the stop flag (nothing to do ``on demand``)."""
        if self.mode == "in order":
            self._read_in_order()
        elif self.mode == "newest":
            self._read_newest()

    def next(self) -> Optional[FrameSlot]:
        """The feeder's next frame (a slot it must submit or release); None when there are no more."""
        if self.mode == "in order":
            while True:
                try:
                    item = self._queue.get(timeout=self._poll)
                except queue.Empty:
                    if self._stop.is_set() or (self._done and self._queue.empty()):
                        return None
                    continue
                return None if item is _END else item
        if self.mode == "newest":
            with self._cond:
                while self._latest is None:
                    if self._stop.is_set() or self._done:
                        return None
                    self._cond.wait(self._poll)
                slot, self._latest = self._latest, None
                return slot
        return self._read_into_slot()

    def wake(self) -> None:
        """Wake a feeder waiting in :meth:`next` for the newest frame (the run is stopping)."""
        with self._cond:
            self._cond.notify_all()

    def leftovers(self) -> List[FrameSlot]:
        """Take the slots read but never handed out (after the run's threads ended)."""
        with self._cond:
            slots = [] if self._latest is None else [self._latest]
            self._latest = None
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return slots
            if item is not _END:
                slots.append(item)

    # -- reading ---------------------------------------------------------------------------------------------------
    def _read_into_slot(self) -> Optional[FrameSlot]:
        """Take a free slot and read the next frame into it; None at the end of the source or when stopping.

        Raises SourceError when a looped source gives no frame even after ``_EMPTY_RESTARTS`` restarts in a row.
        """
        restarts = 0  # rewinds in a row that were followed by no frame
        while True:
            slot = None
            while slot is None:
                if self._stop.is_set():
                    return None
                slot = self.ring.acquire(timeout=self._poll)
            start = time.perf_counter()
            frame = self.source.read(slot.array)
            done = time.perf_counter()
            if frame is not None:
                slot.frame_index = self._frame_index
                self._frame_index += getattr(self.source, "stride", 1)  # a file's own index with --stride
                slot.epoch = getattr(self.source, "epoch", 0)
                slot.timestamp = time.time()
                slot.media_time = getattr(self.source, "media_time", slot.timestamp)
                slot.captured_at = done
                slot.capture_ms = (done - start) * 1000.0
                return slot
            self.ring.release(slot)
            if self.loop and restarts >= _EMPTY_RESTARTS:
                raise SourceError(f"{self.source.spec} gave no frame after {restarts} restarts in a row: it was "
                                  f"truncated, replaced or damaged while being read; check the file")
            if not (self.loop and self.source.rewind()):
                return None
            restarts += 1

    def _read_in_order(self) -> None:
        count = 0
        try:
            while not self._stop.is_set() and (self.limit is None or count < self.limit):
                slot = self._read_into_slot()
                if slot is None:
                    break
                count += 1
                while True:
                    try:
                        self._queue.put(slot, timeout=self._poll)
                        break
                    except queue.Full:
                        if self._stop.is_set():
                            self.ring.release(slot)
                            return
        finally:
            self._done = True
            try:
                self._queue.put_nowait(_END)
            except queue.Full:
                pass  # the feeder also ends on _done

    def _read_newest(self) -> None:
        try:
            while not self._stop.is_set():
                slot = self._read_into_slot()
                if slot is None:
                    break
                with self._cond:
                    stale, self._latest = self._latest, slot
                    self._cond.notify_all()
                if stale is not None:
                    self.dropped += 1
                    self.ring.release(stale)
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
