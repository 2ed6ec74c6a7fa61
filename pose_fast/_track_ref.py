"""NumPy kernels of the tracker: the readable reference of :mod:`pose_fast._track` (compiled at install), and the
fallback where it is not.

Four functions over the arrays of :class:`pose_fast.tracking.Tracker` (float64, one row per track or detection):
:func:`describe` the detections, find the decoder's :func:`fragments`, the :func:`similarity` of every track with
every detection, and :func:`advance` the matched tracks.
"""
from __future__ import annotations

import numpy as np

from .skeleton import NUM_KEYPOINTS

__all__ = ["NAME", "KERNEL_API", "KEYPOINT_SIGMAS", "describe", "fragments", "similarity", "advance"]

NAME = "numpy"
KERNEL_API = 1  # must equal pose_fast.tracking.KERNEL_API

#: COCO's per-keypoint OKS sigmas in BODY_18 order; the neck (no COCO counterpart) takes the shoulders' value.
KEYPOINT_SIGMAS = np.array(
    [0.026, 0.079, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089,
     0.025, 0.025, 0.035, 0.035], dtype=np.float64)
_OKS_K2 = (2.0 * KEYPOINT_SIGMAS) ** 2  # COCO's "vars"
_IOU_PAD = np.array([-8.0, -8.0, 8.0, 8.0])  # pixels around each box, so that single points can overlap
_MIN_SIZE = 32.0  # pixels: the least person height (and sqrt of the least area) used for scales and gates


def describe(keypoints, threshold):
    """Visible keypoints (P, 18) bool, their boxes (P, 4; x0, y0, x1, y1, zeros for none) and the confidences (P,):
    the sum of the visible keypoints' scores over 18."""
    visible = keypoints[:, :, 2] > threshold
    xy = keypoints[:, :, :2]
    box = np.concatenate([np.where(visible[..., None], xy, np.inf).min(1),
                          np.where(visible[..., None], xy, -np.inf).max(1)], axis=1)
    box[~visible.any(1)] = 0.0
    confidence = (keypoints[:, :, 2] * visible).sum(1) / NUM_KEYPOINTS
    return visible, box, confidence


def fragments(keypoints, visible, box, score, distance):
    """(P,) bool: poses that repeat a keypoint of a better pose (``score``, then visible keypoints, then order)
    closer than ``distance`` × the taller one's height, while holding mostly keypoints the better one lacks."""
    n = keypoints.shape[0]
    out = np.zeros(n, dtype=bool)
    if n < 2 or distance == 0:
        return out
    height = box[:, 3] - box[:, 1]
    limit = distance * np.maximum(height[:, None], height[None, :])
    x = np.where(visible, keypoints[:, :, 0], np.nan)  # NaN: never close to anything
    y = np.where(visible, keypoints[:, :, 1], np.nan)
    dx = x[:, None, :] - x[None, :, :]
    dy = y[:, None, :] - y[None, :, :]
    close = (dx * dx + dy * dy < (limit * limit)[:, :, None]).any(-1)      # (P, P)
    np.fill_diagonal(close, False)
    if not close.any():
        return out
    vis = visible.astype(np.float64)
    shared = vis @ vis.T
    seen = visible.sum(1)
    order = np.lexsort((np.arange(n), -seen, -np.asarray(score)))
    for rank, i in enumerate(order):
        if not out[i]:
            for j in order[rank + 1:]:
                # a fragment holds mostly keypoints the better pose lacks (the other half of one body); two
                # people standing close, or one half hidden behind the other, share most of their keypoints
                if close[i, j] and 3 * shared[i, j] <= seen[j]:
                    out[j] = True
    return out


def similarity(t_kp, t_box, t_vel, t_moving, t_seen, now, keypoints, visible, d_box, gate, max_speed, motion_noise,
               min_common):
    """(T, P) similarity of each track's predicted pose with each detection; 0 outside the gate (the algorithm:
    :mod:`pose_fast.tracking`)."""
    dt = now - t_seen                                                      # (T,) seconds since last seen
    shift = t_vel * dt[:, None]                                            # (T, 2) predicted motion
    p_box = t_box + np.concatenate([shift, shift], axis=1)                 # (T, 4) predicted box
    t_w, t_h = t_box[:, 2] - t_box[:, 0], t_box[:, 3] - t_box[:, 1]
    size = np.maximum(t_h, _MIN_SIZE)                                      # (T,) the person's height
    # the gate first: only pairs whose box centres are close enough are compared
    cx = 0.5 * (p_box[:, None, 0] + p_box[:, None, 2] - d_box[None, :, 0] - d_box[None, :, 2])
    cy = 0.5 * (p_box[:, None, 1] + p_box[:, None, 3] - d_box[None, :, 1] - d_box[None, :, 3])
    reach = (gate + max_speed * dt) * size                                 # (T,)
    ti, di = np.nonzero(cx * cx + cy * cy <= (reach * reach)[:, None])
    sim = np.zeros((len(t_box), len(d_box)))
    if not ti.size:
        return sim
    kp = t_kp[ti]                                                          # (K, 18, 3) one row per pair
    t_vis = kp[:, :, 2] > 0
    vis = visible[di]
    common = t_vis & vis
    n_common = common.sum(1)
    d = kp[:, :, :2] + shift[ti][:, None, :] - keypoints[di, :, :2]        # (K, 18, 2)
    area = np.maximum(t_w * t_h, _MIN_SIZE * _MIN_SIZE)[ti]
    # OKS's tolerance per keypoint (a variance), widened by how far the person may stray in dt
    # (a track without a velocity yet may have moved anywhere up to max_speed)
    noise = np.where(t_moving, motion_noise, max_speed)
    tol = 2.0 * (area[:, None] * _OKS_K2[None, :] + ((noise * dt * size)[ti] ** 2)[:, None])
    e = np.exp(-(d[:, :, 0] ** 2 + d[:, :, 1] ** 2) / tol)
    # averaged over the keypoints seen in either (COCO divides by the ground truth's): a partial detection
    # (a stray leg) must not outscore the whole person it overlaps
    oks = np.where(common, e, 0.0).sum(1) / np.maximum((t_vis | vis).sum(1), 1)
    iou = _iou_pairs(p_box[ti], d_box[di])
    sim[ti, di] = np.where(n_common >= min_common, 0.5 * (oks + iou), iou)
    return sim


def advance(t_kp, t_box, t_vel, t_moving, t_seen, rows, dets, keypoints, visible, d_box, now):
    """Tracks ``rows`` take detections ``dets``, in place: the velocity (pixels per second, the mean of the last
    measured one and this step's), the keypoints (missing ones 0), the box and the time last seen."""
    new = keypoints[dets] * visible[dets][:, :, None]
    old = t_kp[rows]
    common = visible[dets] & (old[:, :, 2] > 0)                            # (M, 18)
    n = common.sum(1)
    dt = now - t_seen[rows]
    ok = (n > 0) & (dt > 0)
    if ok.any():
        shift = ((new[:, :, :2] - old[:, :, :2]) * common[:, :, None]).sum(1)
        step = shift / np.maximum(n * dt, 1e-9)[:, None]                  # pixels per second
        vel, moving = t_vel[rows], t_moving[rows]
        blended = np.where(moving[:, None], 0.5 * vel + 0.5 * step, step)
        t_vel[rows] = np.where(ok[:, None], blended, vel)
        t_moving[rows] = moving | ok
    t_kp[rows] = new
    t_box[rows] = d_box[dets]
    t_seen[rows] = now


def _iou_pairs(a, b):
    """(K,) IoU of boxes a[k] and b[k]; boxes of zero area get a small margin so that single points can overlap."""
    a = a + _IOU_PAD
    b = b + _IOU_PAD
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)
