# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of the tracker: the same four functions as :mod:`pose_fast._track_ref` (the readable reference
and the expected answer, to rounding), as loops in C over the few tracks and detections of one result.

The arrays are those of :class:`pose_fast.tracking.Tracker`: float64 and C-contiguous; boolean masks are read
through uint8 views.
"""
import numpy as np

from libc.math cimport exp

from ._track_ref import KEYPOINT_SIGMAS

NAME = "cython"
KERNEL_API = 1  # must equal pose_fast.tracking.KERNEL_API

cdef enum:
    NK = 18  # keypoint types

cdef double IOU_PAD = 8.0
cdef double MIN_SIZE = 32.0
# COCO's per-keypoint OKS "vars", (2 sigma)^2, in BODY_18 order (pose_fast._track_ref.KEYPOINT_SIGMAS)
cdef double[NK] OKS_K2
for _k in range(NK):
    OKS_K2[_k] = (2.0 * KEYPOINT_SIGMAS[_k]) ** 2


def describe(const double[:, :, ::1] keypoints, double threshold):
    """Visible keypoints (P, 18), their boxes (P, 4; zeros for none) and the confidences (P,)."""
    cdef Py_ssize_t n = keypoints.shape[0], p, k
    visible = np.zeros((n, NK), np.uint8)
    box = np.zeros((n, 4))
    confidence = np.zeros(n)
    cdef unsigned char[:, ::1] vis = visible
    cdef double[:, ::1] b = box
    cdef double[::1] conf = confidence
    cdef double x, y, s, total, x0, y0, x1, y1
    cdef bint any_seen
    with nogil:
        for p in range(n):
            total = 0.0
            any_seen = False
            x0 = y0 = x1 = y1 = 0.0
            for k in range(NK):
                s = keypoints[p, k, 2]
                if s > threshold:
                    vis[p, k] = 1
                    total = total + s
                    x = keypoints[p, k, 0]
                    y = keypoints[p, k, 1]
                    if not any_seen:
                        x0 = x1 = x
                        y0 = y1 = y
                        any_seen = True
                    else:
                        x0 = min(x0, x)
                        x1 = max(x1, x)
                        y0 = min(y0, y)
                        y1 = max(y1, y)
            b[p, 0] = x0
            b[p, 1] = y0
            b[p, 2] = x1
            b[p, 3] = y1
            conf[p] = total / NK
    return visible.view(bool), box, confidence


def fragments(const double[:, :, ::1] keypoints, visible_mask, const double[:, ::1] box, const double[::1] score,
              double distance):
    """(P,) bool: poses that repeat a keypoint of a better pose at (nearly) the same place."""
    cdef Py_ssize_t n = keypoints.shape[0], i, j, k, a, rank
    out = np.zeros(n, bool)
    if n < 2 or distance == 0:
        return out
    cdef unsigned char[::1] frag = out.view(np.uint8)
    cdef const unsigned char[:, ::1] visible = visible_mask.view(np.uint8)
    seen_ = visible_mask.sum(1).astype(np.intp)
    cdef Py_ssize_t[::1] seen = seen_
    # best first: score, then visible keypoints, then input order
    order_ = np.lexsort((np.arange(n), -seen_, -np.asarray(score)))
    cdef Py_ssize_t[::1] order = order_.astype(np.intp)
    cdef double limit, dx, dy, hi, hj
    cdef Py_ssize_t shared
    cdef bint close
    with nogil:
        for rank in range(n):
            i = order[rank]
            if frag[i]:
                continue
            hi = box[i, 3] - box[i, 1]
            for a in range(rank + 1, n):
                j = order[a]
                hj = box[j, 3] - box[j, 1]
                limit = distance * max(hi, hj)
                close = False
                shared = 0
                for k in range(NK):
                    if visible[i, k] and visible[j, k]:
                        shared = shared + 1
                        dx = keypoints[i, k, 0] - keypoints[j, k, 0]
                        dy = keypoints[i, k, 1] - keypoints[j, k, 1]
                        if dx * dx + dy * dy < limit * limit:
                            close = True
                # a fragment holds mostly keypoints the better pose lacks (the other half of one body); two
                # people standing close, or one half hidden behind the other, share most of their keypoints
                if close and 3 * shared <= seen[j]:
                    frag[j] = 1
    return out


def similarity(const double[:, :, ::1] t_kp, const double[:, ::1] t_box, const double[:, ::1] t_vel, t_moving_mask,
               const double[::1] t_seen, double now, const double[:, :, ::1] keypoints, visible_mask,
               const double[:, ::1] d_box, double gate, double max_speed, double motion_noise, Py_ssize_t min_common):
    """(T, P) similarity of each track's predicted pose with each detection; 0 outside the gate."""
    cdef Py_ssize_t n_t = t_kp.shape[0], n_d = keypoints.shape[0], t, p, k
    sim_ = np.zeros((n_t, n_d))
    cdef double[:, ::1] sim = sim_
    cdef const unsigned char[::1] t_moving = t_moving_mask.view(np.uint8)
    cdef const unsigned char[:, ::1] visible = visible_mask.view(np.uint8)
    cdef double dt, sx, sy, bx0, by0, bx1, by1, size, reach, area, noise, stray, cx, cy
    cdef double dx, dy, num, oks, iou, w, h, inter, area_t, area_d
    cdef Py_ssize_t common, either
    cdef bint tv, dv
    with nogil:
        for t in range(n_t):
            dt = now - t_seen[t]
            sx = t_vel[t, 0] * dt
            sy = t_vel[t, 1] * dt
            bx0 = t_box[t, 0] + sx
            by0 = t_box[t, 1] + sy
            bx1 = t_box[t, 2] + sx
            by1 = t_box[t, 3] + sy
            w = t_box[t, 2] - t_box[t, 0]
            h = t_box[t, 3] - t_box[t, 1]
            size = max(h, MIN_SIZE)
            reach = (gate + max_speed * dt) * size
            area = max(w * h, MIN_SIZE * MIN_SIZE)
            noise = motion_noise if t_moving[t] else max_speed
            stray = (noise * dt * size) ** 2
            area_t = (bx1 - bx0 + 2 * IOU_PAD) * (by1 - by0 + 2 * IOU_PAD)
            for p in range(n_d):
                cx = 0.5 * (bx0 + bx1 - d_box[p, 0] - d_box[p, 2])
                cy = 0.5 * (by0 + by1 - d_box[p, 1] - d_box[p, 3])
                if cx * cx + cy * cy > reach * reach:
                    continue
                num = 0.0
                common = 0
                either = 0
                for k in range(NK):
                    tv = t_kp[t, k, 2] > 0
                    dv = visible[p, k]
                    if tv and dv:
                        common = common + 1
                        dx = t_kp[t, k, 0] + sx - keypoints[p, k, 0]
                        dy = t_kp[t, k, 1] + sy - keypoints[p, k, 1]
                        num = num + exp(-(dx * dx + dy * dy) / (2.0 * (area * OKS_K2[k] + stray)))
                    if tv or dv:
                        either = either + 1
                oks = num / max(either, 1)
                w = min(bx1, d_box[p, 2]) - max(bx0, d_box[p, 0])
                h = min(by1, d_box[p, 3]) - max(by0, d_box[p, 1])
                inter = max(w + 2 * IOU_PAD, 0.0) * max(h + 2 * IOU_PAD, 0.0)
                area_d = (d_box[p, 2] - d_box[p, 0] + 2 * IOU_PAD) * (d_box[p, 3] - d_box[p, 1] + 2 * IOU_PAD)
                iou = inter / max(area_t + area_d - inter, 1e-9)
                sim[t, p] = 0.5 * (oks + iou) if common >= min_common else iou
    return sim_


def advance(double[:, :, ::1] t_kp, double[:, ::1] t_box, double[:, ::1] t_vel, t_moving_mask,
            double[::1] t_seen, const Py_ssize_t[::1] rows, const Py_ssize_t[::1] dets,
            const double[:, :, ::1] keypoints, visible_mask, const double[:, ::1] d_box, double now):
    """Tracks ``rows`` take detections ``dets``, in place: velocity, keypoints, box, time last seen."""
    cdef Py_ssize_t m = rows.shape[0], a, r, d, k, c, n
    cdef unsigned char[::1] t_moving = t_moving_mask.view(np.uint8)
    cdef const unsigned char[:, ::1] visible = visible_mask.view(np.uint8)
    cdef double dt, sx, sy, nx, ny
    with nogil:
        for a in range(m):
            r = rows[a]
            d = dets[a]
            n = 0
            sx = sy = 0.0
            for k in range(NK):
                if visible[d, k] and t_kp[r, k, 2] > 0:
                    n = n + 1
                    sx = sx + (keypoints[d, k, 0] - t_kp[r, k, 0])
                    sy = sy + (keypoints[d, k, 1] - t_kp[r, k, 1])
            dt = now - t_seen[r]
            if n > 0 and dt > 0:
                sx = sx / max(n * dt, 1e-9)  # pixels per second
                sy = sy / max(n * dt, 1e-9)
                if t_moving[r]:
                    t_vel[r, 0] = 0.5 * t_vel[r, 0] + 0.5 * sx
                    t_vel[r, 1] = 0.5 * t_vel[r, 1] + 0.5 * sy
                else:
                    t_vel[r, 0] = sx
                    t_vel[r, 1] = sy
                t_moving[r] = 1
            for k in range(NK):
                for c in range(3):
                    t_kp[r, k, c] = keypoints[d, k, c] if visible[d, k] else 0.0
            for c in range(4):
                t_box[r, c] = d_box[d, c]
            t_seen[r] = now
