"""The overlay: skeletons in per-limb colours, each person's number, and a header with inference ms, FPS and people.

Everything is drawn in place on the frame it is given (the ring slot); sizes scale with the frame height so the
overlay reads the same at 480×270 and at 1080p.

Example
-------
>>> Renderer().draw(frame, poses, inference_ms=212.0, fps=4.6)   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from .poses import Poses
from .skeleton import DRAWN_LIMBS, LIMB_COLORS, NUM_KEYPOINTS

__all__ = ["Renderer", "order_numbers", "KEYPOINT_COLORS", "draw_zones"]

#: One BGR colour per keypoint: the colour of the first drawn limb that ends at it (the neck takes the first).
KEYPOINT_COLORS = tuple(
    next((LIMB_COLORS[i] for i, (_, b) in enumerate(DRAWN_LIMBS) if b == k), LIMB_COLORS[0])
    for k in range(NUM_KEYPOINTS))

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)
_FRAGMENT = (150, 150, 150)  # fragments (poses that are not people): thin grey lines, no number


def order_numbers(keypoints: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Numbers 1..P for the people in ``keypoints`` (P, 18, 3), left to right by their leftmost visible keypoint."""
    count = keypoints.shape[0]
    if count == 0:
        return np.zeros(0, np.int64)
    visible = keypoints[:, :, 2] > threshold
    xs = np.where(visible, keypoints[:, :, 0], np.inf).min(axis=1)
    order = np.argsort(xs, kind="stable")
    numbers = np.empty(count, np.int64)
    numbers[order] = np.arange(1, count + 1)
    return numbers


class Renderer:
    """Draws poses and a status header on a BGR uint8 frame, in place.

    Parameters
    ----------
    keypoint_threshold : float
        Keypoints with a score at or below this are not drawn.
    header : bool
        Draw the header (inference ms, FPS, people).
    numbers : bool
        Draw each person's number (track id, or order 1..P left to right).
    """

    def __init__(self, keypoint_threshold: float = 0.0, header: bool = True, numbers: bool = True):
        self.keypoint_threshold = float(keypoint_threshold)
        self.header = bool(header)
        self.numbers = bool(numbers)
        self._scale_for = None
        self._sizes = None

    def _scaled(self, height: int):
        if self._scale_for != height:
            s = height / 720.0
            self._sizes = {
                "line": max(1, int(round(3 * s))),
                "radius": max(2, int(round(4 * s))),
                "font": max(0.42, 0.75 * s),
                "text": max(1, int(round(2 * s))),
                "pad": max(3, int(round(8 * s))),
            }
            self._scale_for = height
        return self._sizes

    def warm_up(self, shape) -> None:
        """Draw once on a scratch frame of ``shape`` (H, W, 3), so that the first real frame does not pay OpenCV's
        first calls: the first ``getTextSize``/``putText`` loads the font (22-24 ms on opencv-python 5), the first
        anti-aliased line and circle a few ms more. Call it at start, not per frame."""
        height, width = int(shape[0]), int(shape[1])
        scratch = np.zeros((height, width, 3), np.uint8)
        kp = np.zeros((1, NUM_KEYPOINTS, 3), np.float32)
        kp[0, :, 0] = np.linspace(0.2, 0.8, NUM_KEYPOINTS) * width
        kp[0, :, 1] = np.linspace(0.2, 0.8, NUM_KEYPOINTS) * height
        kp[0, :, 2] = 1.0
        poses = Poses(kp, np.ones(1, np.float32))
        for _ in range(2):  # the second call still costs a few ms; Renderer.draw: not a subclass's (nothing counted)
            Renderer.draw(self, scratch, poses, np.ones(1, np.int64), inference_ms=0.0, fps=0.0, people=1,
                          status="warm-up", fragments=poses)

    def draw(self, frame: np.ndarray, poses, labels: Optional[Sequence[int]] = None, *,
             inference_ms: Optional[float] = None, fps: Optional[float] = None,
             people: Optional[int] = None, status: Optional[str] = None, fragments=None) -> np.ndarray:
        """Draw ``poses`` on ``frame`` (modified in place and returned).

        Parameters
        ----------
        frame : ndarray (H, W, 3) uint8
        poses : pose_fast.poses.Poses
        labels : sequence of int, optional
            The number to write next to each person (e.g. track ids); a negative one writes none. Default: order
            numbers 1..P left to right.
        inference_ms, fps : float, optional
            Shown in the header.
        people : int, optional
            People count for the header; default ``len(poses)``.
        status : str, optional
            A problem to show first in the header (e.g. the remote engine's ``status_message``).
        fragments : pose_fast.poses.Poses, optional
            Poses that are not people (:mod:`pose_fast.people`): drawn faintly, without a number, not counted.
        """
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError("frame must be an H x W x 3 uint8 BGR image")
        keypoints = poses.keypoints
        count = keypoints.shape[0]
        if labels is None:
            labels = order_numbers(keypoints, self.keypoint_threshold)
        elif len(labels) != count:
            raise ValueError(f"{len(labels)} labels for {count} people")
        size = self._scaled(frame.shape[0])
        if fragments is not None:
            for kp in fragments.keypoints:
                self._skeleton(frame, kp, 1, max(1, size["radius"] // 2), faint=True)
        for p in range(count):
            self._skeleton(frame, keypoints[p], size["line"], size["radius"])
        if self.numbers:
            for p in range(count):
                if int(labels[p]) >= 0:
                    self._label(frame, keypoints[p], str(int(labels[p])), size)
        if self.header:
            shown = count if people is None else int(people)
            parts = [status] if status else []
            if inference_ms is not None:
                parts.append(f"inference {inference_ms:.0f} ms")
            if fps is not None:
                parts.append(f"{fps:.1f} FPS")
            parts.append(f"{shown} {'person' if shown == 1 else 'people'}")
            self._header(frame, "  ".join(parts), size)
        return frame

    def _skeleton(self, frame, kp, line: int, radius: int, faint: bool = False) -> None:
        vis = kp[:, 2] > self.keypoint_threshold
        pts = np.round(kp[:, :2]).astype(np.int32)
        for i, (a, b) in enumerate(DRAWN_LIMBS):
            if vis[a] and vis[b]:
                cv2.line(frame, (int(pts[a, 0]), int(pts[a, 1])), (int(pts[b, 0]), int(pts[b, 1])),
                         _FRAGMENT if faint else LIMB_COLORS[i], line, cv2.LINE_AA)
        for k in np.flatnonzero(vis):
            cv2.circle(frame, (int(pts[k, 0]), int(pts[k, 1])), radius, _FRAGMENT if faint else KEYPOINT_COLORS[k],
                       -1, cv2.LINE_AA)

    def _label(self, frame, kp, text, size) -> None:
        vis = kp[:, 2] > self.keypoint_threshold
        if not vis.any():
            return
        xs, ys = kp[vis, 0], kp[vis, 1]
        scale = size["font"] * 1.15
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, size["text"])
        pad = max(2, size["pad"] // 2)
        height, width = frame.shape[:2]
        # a box with the number, left of the person's top-left visible keypoint, kept inside the frame
        x = int(round(xs.min())) - tw - 3 * pad
        y = int(round(ys.min()))
        x = min(max(x, 0), max(0, width - tw - 2 * pad))
        y = min(max(y, 0), max(0, height - th - base - 2 * pad))
        box = frame[y:y + th + base + 2 * pad, x:x + tw + 2 * pad]
        np.right_shift(box, 2, out=box)
        cv2.putText(frame, text, (x + pad, y + pad + th), _FONT, scale, _WHITE, size["text"], cv2.LINE_AA)

    def _header(self, frame, text, size) -> None:
        (tw, th), base = cv2.getTextSize(text, _FONT, size["font"], size["text"])
        pad = size["pad"]
        height, width = frame.shape[:2]
        box = frame[0:min(height, th + base + 2 * pad), 0:min(width, tw + 2 * pad)]
        np.right_shift(box, 2, out=box)  # darken in place: readable over any background
        cv2.putText(frame, text, (pad, pad + th), _FONT, size["font"], _WHITE, size["text"], cv2.LINE_AA)


_ZONE = (0, 200, 255)   # BGR: zones in amber
_LINE = (255, 128, 0)   # lines in blue


def draw_zones(frame: np.ndarray, polygons, segments, zones, lines, zone_counts, line_counts) -> np.ndarray:
    """Draw zones (polygons in pixels, int32 arrays of shape (N, 1, 2)) and lines (``(ax, ay, dx, dy, length)``
    in pixels) on ``frame`` in place, each with its name and live count: people inside a zone, ``in``/``out``
    crossings of a line. See :mod:`pose_fast.zones` (:class:`~pose_fast.zones.ZoneOverlay` calls this)."""
    height = frame.shape[0]
    thick = max(1, int(round(2 * height / 720.0)))
    font = max(0.4, 0.6 * height / 720.0)
    for poly, zone in zip(polygons, zones):
        pts = np.asarray(poly, np.int32).reshape(-1, 1, 2)  # no copy for the arrays ZoneTracker keeps
        cv2.polylines(frame, [pts], True, _ZONE, thick, cv2.LINE_AA)
        x, y = int(pts[:, 0, 0].min()), int(pts[:, 0, 1].min())
        _tag(frame, f"{zone.name}: {zone_counts.get(zone.name, 0)}", x, y, font, thick, _ZONE)
    for (ax, ay, dx, dy, _), line in zip(segments, lines):
        a, b = (int(ax), int(ay)), (int(ax + dx), int(ay + dy))
        cv2.arrowedLine(frame, a, b, _LINE, thick, cv2.LINE_AA, tipLength=0.03)
        counts = line_counts.get(line.name, {})
        _tag(frame, f"{line.name}: in {counts.get('in', 0)} out {counts.get('out', 0)}",
             int(ax + dx / 2), int(ay + dy / 2), font, thick, _LINE)
    return frame


def _tag(frame, text, x, y, font, thick, color) -> None:
    (tw, th), base = cv2.getTextSize(text, _FONT, font, thick)
    height, width = frame.shape[:2]
    x = min(max(x, 0), max(0, width - tw - 4))
    y = min(max(y, th + 4), height - base - 2)
    box = frame[max(0, y - th - 3):y + base + 1, x:x + tw + 4]
    np.right_shift(box, 1, out=box)
    cv2.putText(frame, text, (x + 2, y), _FONT, font, color, thick, cv2.LINE_AA)
