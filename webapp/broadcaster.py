"""The MJPEG broadcaster: :class:`MjpegBroadcaster`, a pipeline sink that JPEG-encodes each annotated frame once for
every viewer, and :func:`mjpeg_part`, one part of a ``multipart/x-mixed-replace`` body."""
from __future__ import annotations

import threading
import time
from typing import Optional, Tuple

import cv2

__all__ = ["MjpegBroadcaster", "BOUNDARY", "mjpeg_part"]

BOUNDARY = "frame"


def mjpeg_part(jpeg: bytes, sequence: int = 0) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` MJPEG body (``X-Frame-Sequence``: the broadcaster's frame
    number, so a client can see the frames it skipped)."""
    return (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
            + str(len(jpeg)).encode() + b"\r\nX-Frame-Sequence: " + str(sequence).encode() + b"\r\n\r\n"
            + jpeg + b"\r\n")


class MjpegBroadcaster:
    """A pipeline sink keeping the latest annotated frame as JPEG for any number of viewers.

    Parameters
    ----------
    quality : int
        JPEG quality, 1-100.

    Attributes
    ----------
    frames : int
        Frames the pipeline delivered.
    frames_watched : int
        Frames delivered while at least one viewer was subscribed.
    encodes : int
        JPEG encodes done: one per watched frame, whatever the number of viewers (fewer only if one fails).
    """

    def __init__(self, quality: int = 80):
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be 1-100, got {quality}")
        self.params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
        self.cond = threading.Condition()
        self.viewers = 0
        self.jpeg: Optional[bytes] = None
        self.seq = 0  # number of the latest encoded frame (increases by one per encode)
        self.jpeg_frame = 0  # the value of ``frames`` when ``jpeg`` was encoded: current if still equal
        self.frames = 0
        self.frames_watched = 0
        self.encodes = 0
        self.encode_ms = 0.0
        self.fps = 0.0
        self.inference_ms = 0.0
        self.people = 0
        self.frame_index = -1
        self.last_frame_at: Optional[float] = None
        self.size: Optional[Tuple[int, int]] = None
        self.closed = False

    # -- sink side (the pipeline's delivery thread) ------------------------------------------------------------
    def write(self, result) -> None:
        self.frames += 1
        number = self.frames
        self.fps = float(result.fps)
        self.inference_ms = float(result.inference_ms)
        self.people = int(result.people)
        self.frame_index = int(result.index)
        self.last_frame_at = time.time()
        frame = result.frame
        self.size = (int(frame.shape[1]), int(frame.shape[0]))
        if not self.viewers:  # nobody watches: no encode (a racy read is fine, the next frame catches up)
            return
        self.frames_watched += 1
        start = time.perf_counter()
        ok, buf = cv2.imencode(".jpg", frame, self.params)  # the only per-frame copy, done once for everyone
        if not ok:
            return
        jpeg = buf.tobytes()
        with self.cond:
            self.encodes += 1
            self.encode_ms = (time.perf_counter() - start) * 1000.0
            self.jpeg = jpeg
            self.jpeg_frame = number
            self.seq += 1
            self.cond.notify_all()

    def show_status(self, lines) -> None:
        """While the stream has no frames (a camera reconnecting): give the viewers a frame of the stream's size
        saying so, drawn here (called about once a second by the manager, only while someone watches)."""
        if not self.viewers:
            return
        import numpy as np

        width, height = self.size or (640, 360)
        image = np.full((height, width, 3), 40, np.uint8)
        scale = max(0.4, min(1.0, width / 900))
        for row, line in enumerate(lines):
            cv2.putText(image, line, (16, int(40 * scale) + row * int(36 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, (0, 200, 255) if row == 0 else (230, 230, 230), 1 + (row == 0), cv2.LINE_AA)
        ok, buf = cv2.imencode(".jpg", image, self.params)
        if not ok:
            return
        with self.cond:
            self.encodes += 1
            self.jpeg = buf.tobytes()
            self.jpeg_frame = self.frames  # the newest there is: a viewer arriving now gets it at once
            self.seq += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- viewer side -------------------------------------------------------------------------------------------
    def add_viewer(self) -> None:
        with self.cond:
            self.viewers += 1

    def remove_viewer(self) -> None:
        with self.cond:
            self.viewers = max(0, self.viewers - 1)
            self.cond.notify_all()

    def start_seq(self) -> int:
        """Where a new viewer starts: before the latest JPEG if it shows the newest delivered frame, else after it
        (a JPEG left from before nobody watched is stale: wait for the next one)."""
        with self.cond:
            current = self.jpeg is not None and self.jpeg_frame == self.frames
            return self.seq - 1 if current else self.seq

    def wait_newer(self, seq: int, timeout: float) -> Tuple[Optional[bytes], int]:
        """The latest JPEG if it is newer than ``seq`` (waiting up to ``timeout`` s for one), else (None, seq)."""
        with self.cond:
            if self.seq <= seq and not self.closed:
                self.cond.wait(timeout)
            if self.seq > seq and self.jpeg is not None:
                return self.jpeg, self.seq
            return None, seq

