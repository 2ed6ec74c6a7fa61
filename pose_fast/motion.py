"""The motion gate: skip inference on a live source while nobody is there and nothing moves.

A camera watching an empty, still scene would otherwise run the full network on every frame. The gate shrinks each
frame to a small grey image (``cv2.resize`` with area averaging, which also smooths sensor noise, then
``cv2.cvtColor``), into buffers allocated once, and compares it with the small image of the last frame that was
inferred (``cv2.absdiff``, a threshold, ``cv2.countNonZero``). Comparing with the last inferred frame rather than the
previous one means that slow motion adds up until it counts. Inference runs when:

- the caller says someone may be there (people tracked or poses seen on the last inferred frame), or
- enough of the small image changed (``min_changed`` of its pixels by more than ``threshold`` grey levels), or
- ``period`` seconds passed since the last inference (a person who walked in too slowly, or stands still in a
  changed scene, is still found within about a period).

Example
-------
>>> gate = MotionGate((432, 768, 3))                        # doctest: +SKIP
>>> if gate.should_infer(frame, now, occupied=False): ...   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

__all__ = ["MotionGate", "IDLE_STATUS", "DEFAULT_PERIOD_S"]

#: What the overlay says on a frame the gate let through without inference.
IDLE_STATUS = "idle: no motion"
#: Seconds between inferences while idle.
DEFAULT_PERIOD_S = 1.0


class MotionGate:
    """Decides, frame by frame, whether a live source's frame needs inference (see the module docstring).

    Parameters
    ----------
    frame_shape : tuple
        (H, W, 3) of the source's frames.
    width : int
        Width of the small grey image (its height keeps the aspect ratio).
    threshold : int
        Grey levels (0-255) a small pixel must change by to count as changed.
    min_changed : float
        Share of the small image's pixels that must change for motion.
    period : float
        Seconds between inferences while nothing moves (``<= 0``: never infer while idle).
    """

    def __init__(self, frame_shape, width: int = 96, threshold: int = 18, min_changed: float = 0.004,
                 period: float = DEFAULT_PERIOD_S):
        height_in, width_in = int(frame_shape[0]), int(frame_shape[1])
        if height_in <= 0 or width_in <= 0:
            raise ValueError(f"frame shape must be positive, got {frame_shape!r}")
        if not 0 <= threshold <= 255:
            raise ValueError(f"threshold is in grey levels, 0-255, got {threshold}")
        if not 0 < min_changed <= 1:
            raise ValueError(f"min_changed is a share of the pixels, 0-1, got {min_changed}")
        width = max(8, min(int(width), width_in))
        height = max(4, int(round(width * height_in / width_in)))
        self.size: Tuple[int, int] = (width, height)
        self.threshold = int(threshold)
        self.min_pixels = max(1, int(round(min_changed * width * height)))
        self.period = float(period)
        self._small = np.empty((height, width, 3), np.uint8)
        self._grey = np.empty((height, width), np.uint8)
        self._reference = np.empty((height, width), np.uint8)
        self._diff = np.empty((height, width), np.uint8)
        self._has_reference = False
        self._last_inference: Optional[float] = None
        self.changed = 0          #: small pixels that changed on the last frame looked at
        self.skipped = 0          #: frames let through without inference
        self.inferred = 0         #: frames sent to inference

    def moved(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` differs from the last inferred frame (always True for the first frame)."""
        cv2.resize(frame, self.size, dst=self._small, interpolation=cv2.INTER_AREA)
        cv2.cvtColor(self._small, cv2.COLOR_BGR2GRAY, dst=self._grey)
        if not self._has_reference:
            self.changed = self._grey.size
            return True
        cv2.absdiff(self._grey, self._reference, dst=self._diff)
        cv2.threshold(self._diff, self.threshold, 255, cv2.THRESH_BINARY, dst=self._diff)
        self.changed = int(cv2.countNonZero(self._diff))
        return self.changed >= self.min_pixels

    def should_infer(self, frame: np.ndarray, now: float, occupied: bool) -> bool:
        """Decide for one frame at time ``now`` (seconds, any monotonic clock); ``occupied``: someone may be in
        view (tracked, or poses on the last inferred frame). Keeps the frame as the reference when it says yes."""
        moved = self.moved(frame)
        due = self._last_inference is None or (self.period > 0 and now - self._last_inference >= self.period)
        if occupied or moved or due:
            np.copyto(self._reference, self._grey)
            self._has_reference = True
            self._last_inference = now
            self.inferred += 1
            return True
        self.skipped += 1
        return False
