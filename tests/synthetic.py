"""Synthetic model outputs for known skeletons: Gaussian keypoint peaks and ideal part-affinity fields.

Coordinates are in heatmap pixels, in the decoder's convention: a keypoint at ``g`` is a Gaussian centred on pixel
index ``g - 0.5``, so that the decoder (peak, ±0.25 refinement, +0.5 shift) returns ``g`` to within a quarter pixel
when the frame size equals the heatmap size.

A :class:`Scene` knows which keypoints the decoder must find: those inside the map that are connected to the neck
through limbs whose two ends are inside (a partly visible person keeps the visible part that hangs together).
Keypoints outside the map lie far enough out (``OUTSIDE_MARGIN``) that their Gaussian tail stays below the score
threshold at the border.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

from pose_fast.skeleton import LIMBS, NUM_KEYPOINTS, PAF_X_CHANNELS

#: A person facing the camera, neck at (0, 0), y down, heatmap pixels (about 19 px tall, 9 px wide).
TEMPLATE = np.array([
    (0.0, -3.0),    # nose
    (0.0, 0.0),     # neck
    (-3.0, 0.3),    # r_shoulder (image left)
    (-4.0, 3.6),    # r_elbow
    (-4.6, 7.0),    # r_wrist
    (3.0, 0.3),     # l_shoulder
    (4.0, 3.6),     # l_elbow
    (4.6, 7.0),     # l_wrist
    (-1.8, 7.2),    # r_hip
    (-2.1, 11.2),   # r_knee
    (-2.4, 15.2),   # r_ankle
    (1.8, 7.2),     # l_hip
    (2.1, 11.2),    # l_knee
    (2.4, 15.2),    # l_ankle
    (-1.1, -3.9),   # r_eye
    (1.1, -3.9),    # l_eye
    (-2.2, -3.3),   # r_ear
    (2.2, -3.3),    # l_ear
])

SIGMA = 1.0            # Gaussian peaks, heatmap pixels
PAF_RADIUS = 1.5       # a limb's field covers pixels this close to the segment
OUTSIDE_MARGIN = 3.5   # keypoints outside the map are at least this far out
MIN_SAME_TYPE = 4.0    # same-type keypoints of different people are at least this far apart
MIN_SAME_LIMB = 4.5    # same-type limbs of different people are at least this far apart


@dataclass
class Scene:
    heatmaps: np.ndarray   # (19, H, W) float32
    pafs: np.ndarray       # (38, H, W) float32
    people: np.ndarray     # (P, 18, 2) keypoint positions g (may lie outside the map)
    expected: np.ndarray   # (P, 18) bool: the keypoints the decoder must return

    @property
    def size(self) -> tuple:
        """(W, H): decode with this frame size to get heatmap-pixel coordinates."""
        return self.heatmaps.shape[2], self.heatmaps.shape[1]


def make_person(center, scale: float = 1.0, angle: float = 0.0, jitter: float = 0.0, rng=None) -> np.ndarray:
    """The template scaled, rotated by ``angle`` radians around the neck, jittered, with its neck at ``center``."""
    c, s = np.cos(angle), np.sin(angle)
    points = TEMPLATE @ np.array([[c, s], [-s, c]]) * scale
    if jitter:
        points = points + (rng or np.random.default_rng()).uniform(-jitter, jitter, points.shape)
    return points + np.asarray(center, float)


def _inside(points: np.ndarray, height: int, width: int) -> np.ndarray:
    return (points[..., 0] >= 0) & (points[..., 0] < width) & (points[..., 1] >= 0) & (points[..., 1] < height)


def _far_outside(points: np.ndarray, height: int, width: int) -> np.ndarray:
    x, y = points[..., 0], points[..., 1]
    m = OUTSIDE_MARGIN
    return (x < -m) | (x >= width + m) | (y < -m) | (y >= height + m)


def expected_keypoints(person: np.ndarray, height: int, width: int) -> np.ndarray:
    """(18,) bool: inside keypoints connected to the neck through limbs with both ends inside."""
    inside = _inside(person, height, width)
    found = np.zeros(NUM_KEYPOINTS, bool)
    if not inside[1]:
        return found
    found[1] = True
    grew = True
    while grew:
        grew = False
        for a, b in LIMBS:
            if inside[a] and inside[b] and found[a] != found[b]:
                found[a] = found[b] = True
                grew = True
    return found


def render(people, height: int, width: int, sigma: float = SIGMA, paf_radius: float = PAF_RADIUS) -> Scene:
    """Heatmaps and PAFs of ``people`` ((P, 18, 2) positions) on an (H, W) map."""
    people = np.asarray(people, float).reshape(-1, NUM_KEYPOINTS, 2)
    ys, xs = np.mgrid[0:height, 0:width].astype(float)
    heatmaps = np.zeros((NUM_KEYPOINTS + 1, height, width))
    field_sum = np.zeros((len(PAF_X_CHANNELS), 2, height, width))
    field_count = np.zeros((len(PAF_X_CHANNELS), height, width))
    for person in people:
        for k, (gx, gy) in enumerate(person):
            peak = np.exp(-((xs - (gx - 0.5)) ** 2 + (ys - (gy - 0.5)) ** 2) / (2 * sigma ** 2))
            np.maximum(heatmaps[k], peak, out=heatmaps[k])
        for limb, (a, b) in enumerate(LIMBS):
            start, end = person[a], person[b]
            vec = end - start
            length = np.hypot(*vec)
            if length < 1e-6:
                continue
            unit = vec / length
            # distance from each pixel index (the decoder samples round(position)) to the segment
            t = np.clip(((xs - start[0]) * unit[0] + (ys - start[1]) * unit[1]) / length, 0, 1)
            dist = np.hypot(xs - (start[0] + t * vec[0]), ys - (start[1] + t * vec[1]))
            near = dist <= paf_radius
            field_sum[limb, 0][near] += unit[0]
            field_sum[limb, 1][near] += unit[1]
            field_count[limb][near] += 1
    heatmaps[NUM_KEYPOINTS] = np.clip(1 - heatmaps[:NUM_KEYPOINTS].max(axis=0), 0, 1)
    pafs = np.zeros((2 * len(PAF_X_CHANNELS), height, width))
    for limb, channel in enumerate(PAF_X_CHANNELS):
        count = np.maximum(field_count[limb], 1)
        pafs[channel] = field_sum[limb, 0] / count
        pafs[channel + 1] = field_sum[limb, 1] / count
    expected = np.array([expected_keypoints(p, height, width) for p in people]).reshape(-1, NUM_KEYPOINTS)
    return Scene(heatmaps.astype(np.float32), pafs.astype(np.float32), people, expected)


def _segment_distance(p0, p1, q0, q1) -> float:
    t = np.linspace(0, 1, 12)[:, None]
    a = p0 + t * (p1 - p0)
    b = q0 + t * (q1 - q0)
    return float(np.min(np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1))))


def is_well_posed(people, height: int, width: int) -> bool:
    """True when every keypoint is clearly inside or clearly outside, and people do not share peaks or fields."""
    people = np.asarray(people, float)
    inside = _inside(people, height, width)
    if not np.all(inside | _far_outside(people, height, width)):
        return False
    for i in range(len(people)):
        if expected_keypoints(people[i], height, width).sum() < 4:
            return False
        for j in range(i):
            both = inside[i] & inside[j]
            if np.any(np.hypot(*(people[i] - people[j]).T)[both] < MIN_SAME_TYPE):
                return False
            for a, b in LIMBS:
                if _segment_distance(people[i][a], people[i][b], people[j][a], people[j][b]) < MIN_SAME_LIMB:
                    return False
    return True


def random_scene(rng: np.random.Generator, count: int, height: int = 32, width: int = 57,
                 allow_outside: bool = True, scale=(0.8, 1.2), max_tries: int = 2000) -> Scene:
    """``count`` randomly placed, scaled, tilted and jittered people; some may be partly outside the map."""
    people = []
    tries = 0
    while len(people) < count:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(f"could not place {count} people on a {width}x{height} map")
        margin = -2.0 if allow_outside else 5.0
        center = (rng.uniform(margin, width - margin), rng.uniform(4.0, height - (4.0 if allow_outside else 16.0)))
        candidate = make_person(center, rng.uniform(*scale), rng.uniform(-0.3, 0.3), jitter=0.4, rng=rng)
        if is_well_posed(people + [candidate], height, width):
            people.append(candidate)
    return render(np.array(people), height, width)


def crowd_scene(rows: int = 2, cols: int = 5, height: int = 32, width: int = 57, scale: float = 0.72) -> Scene:
    """A grid of ``rows`` × ``cols`` people filling the map (the benchmark's 10-person scene)."""
    people = []
    for r in range(rows):
        for c in range(cols):
            center = ((c + 0.5) * width / cols + 0.13, 3.5 * scale + r * height / rows + 0.67)
            people.append(make_person(center, scale, angle=0.08 * ((r + c) % 3 - 1)))
    return render(np.array(people), height, width)


def overlap_scene() -> Scene:
    """Three people on a 32×57 map: two overlapping (arms across each other's bodies), one cut by the bottom edge.

    Positions avoid integers: a Gaussian centred between pixels makes a plateau, which is two peaks (as for the peer).
    """
    people = [
        make_person((18.2, 6.1), 1.0, 0.05),
        make_person((25.3, 8.4), 1.05, -0.1),   # 7 px to the right, in front of the first one's left arm
        make_person((45.1, 24.4), 1.0, 0.02),   # knees and ankles below the map
    ]
    return render(np.array(people), 32, 57)


def match(scene: Scene, keypoints: np.ndarray, tolerance: float = 1.0) -> list:
    """For each scene person, the index of the decoded person whose keypoints are its expected ones within
    ``tolerance`` (in the decoded coordinates, frame size = map size), or -1. ``keypoints``: (P, 18, 3).

    Like the peer, the decoder clips coordinates to [0, W - 1] × [0, H - 1] (heatmap pixel indices), so a keypoint
    in the last half pixel is expected there.
    """
    height, width = scene.heatmaps.shape[1:]
    result = []
    for person, expected in zip(scene.people, scene.expected):
        person = np.clip(person, 0, [width - 1, height - 1])
        found = -1
        for i, decoded in enumerate(keypoints):
            present = decoded[:, 2] > 0
            if not np.array_equal(present, expected):
                continue
            error = np.hypot(*(decoded[expected, :2] - person[expected]).T)
            if np.all(error <= tolerance):
                found = i
                break
        result.append(found)
    return result


#: Backends that must be available (CI sets POSE_FAST_REQUIRE_BACKENDS=cython,numba,numpy).
REQUIRED_BACKENDS = tuple(name.strip() for name in os.environ.get("POSE_FAST_REQUIRE_BACKENDS", "").split(",")
                          if name.strip())


def backend_or_skip(name: str) -> str:
    """``name`` if that decoder backend imports; else skip, or fail when POSE_FAST_REQUIRE_BACKENDS lists it."""
    from pose_fast.decoding import BackendUnavailableError, load_backend

    try:
        load_backend(name)
    except BackendUnavailableError as exc:
        if name in REQUIRED_BACKENDS:
            pytest.fail(f"{exc} (POSE_FAST_REQUIRE_BACKENDS requires it)")
        pytest.skip(str(exc))
    return name


def compiled_tracker_kernels():
    """``pose_fast._track`` (the tracker's compiled kernels) if it imports; else skip, or fail when
    POSE_FAST_REQUIRE_BACKENDS lists cython."""
    try:
        from pose_fast import _track
    except ImportError as exc:
        message = f"pose_fast._track is not compiled ({exc}): pip install -e . with Cython and a C compiler builds it"
        if "cython" in REQUIRED_BACKENDS:
            pytest.fail(f"{message}; POSE_FAST_REQUIRE_BACKENDS requires it")
        pytest.skip(message)
    return _track


# --- the peer decoder ------------------------------------------------------------------------------------------

def maxpool3(heatmaps: np.ndarray) -> np.ndarray:
    """3×3 max-pool, zero padding, stride 1, of (1, C, H, W) maps, channel by channel as the OpenVINO pose
    notebook's ``pool2d`` does it (a strided window view and ``max``)."""
    from numpy.lib.stride_tricks import as_strided

    out = np.empty_like(heatmaps)
    for c in range(heatmaps.shape[1]):
        padded = np.pad(heatmaps[0, c], 1, mode="constant")
        shape = (padded.shape[0] - 2, padded.shape[1] - 2, 3, 3)
        windows = as_strided(padded, shape=shape, strides=padded.strides * 2)
        out[0, c] = windows.reshape(-1, 3, 3).max(axis=(1, 2)).reshape(shape[:2])
    return out


def peer_decoder():
    """A callable ``(heatmaps, pafs, frame_size) -> (poses (P, 17, 3), scores (P,))`` running the peer.

    The peer is ``OpenPoseDecoder`` from ``openvino-model-api==0.2.5`` (``pip install --no-deps
    openvino-model-api==0.2.5``; it imports scipy), fed as the OpenVINO pose notebook feeds it: NMS input
    ``heatmaps * (heatmaps == maxpool3(heatmaps))``, output scaled by (frame_w / W, frame_h / H).
    """
    import sys
    import warnings

    import openvino

    sys.modules.setdefault("openvino.runtime", openvino)  # model_api 0.2.5 still imports it
    try:
        with warnings.catch_warnings():  # it imports numpy.core.umath, deprecated in NumPy 2
            warnings.simplefilter("ignore", DeprecationWarning)
            from model_api.models.open_pose import OpenPoseDecoder
    except ImportError as exc:
        pytest.fail(f"the peer decoder is missing ({exc}): pip install --no-deps openvino-model-api==0.2.5 scipy")
    decoder = OpenPoseDecoder()

    def run(heatmaps: np.ndarray, pafs: np.ndarray, frame_size) -> tuple:
        heatmaps = np.asarray(heatmaps, np.float32).reshape((1, -1) + heatmaps.shape[-2:])
        pafs = np.asarray(pafs, np.float32).reshape((1, -1) + pafs.shape[-2:])
        nms = heatmaps * (heatmaps == maxpool3(heatmaps))
        poses, scores = decoder(heatmaps, nms, pafs)
        height, width = heatmaps.shape[-2:]
        poses[:, :, :2] *= (frame_size[0] / width, frame_size[1] / height)
        return poses, scores

    return run
