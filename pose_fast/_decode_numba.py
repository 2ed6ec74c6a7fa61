"""numba backend of the pose decoder: the same kernel as ``_decode.pyx``, compiled with ``@njit(cache=True)``.

Every step mirrors :mod:`pose_fast._decode_ref` (the expected answer), with float32 arithmetic done in the same
order so that the results agree to the bit. Work buffers are owned by :class:`Kernel` and reused across frames.

numba caches compiled code beside this file (``__pycache__``). When the package directory is read-only (a system
install, a container image), and the user has not chosen ``NUMBA_CACHE_DIR``, the cache goes to a writable per-user
directory instead; :func:`configure_cache` does that before numba is imported.
"""
from __future__ import annotations

import os
import sys
import tempfile
import uuid
from typing import Optional

import numpy as np

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _is_writable(path: str) -> bool:
    """True when a file can really be created in ``path`` (created if missing); works for root and read-only mounts."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".pose_fast-write-test-{uuid.uuid4().hex}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
        return True
    except OSError:
        return False


def user_cache_dir() -> str:
    """Per-user directory for numba's cache: ``numba/`` in the per-user cache (``~/.cache/pose_fast/numba``)."""
    from .folders import user_cache_dir as cache

    return str(cache("numba"))


def configure_cache(package_dir: str = PACKAGE_DIR, environ=None) -> Optional[str]:
    """Point ``NUMBA_CACHE_DIR`` at a writable per-user directory when ``package_dir`` is read-only.

    Does nothing when the user already set ``NUMBA_CACHE_DIR`` or when numba can write beside the sources.
    Returns the directory chosen, or None.
    """
    environ = os.environ if environ is None else environ
    if environ.get("NUMBA_CACHE_DIR"):
        return None
    if _is_writable(os.path.join(package_dir, "__pycache__")):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    for candidate in (user_cache_dir(), os.path.join(tempfile.gettempdir(), f"pose_fast-numba-{uid}")):
        if _is_writable(candidate):
            environ["NUMBA_CACHE_DIR"] = candidate
            if environ is os.environ and "numba" in sys.modules:  # numba already read its config: update it too
                sys.modules["numba"].config.CACHE_DIR = candidate
            return candidate
    return None


CACHE_DIR = configure_cache()

from numba import njit  # noqa: E402 - numba must see NUMBA_CACHE_DIR before it is imported

from ._decode_ref import DEFAULTS  # noqa: E402
from .skeleton import LIMBS, NUM_KEYPOINTS, PAF_X_CHANNELS  # noqa: E402

NAME = "numba"
KERNEL_API = 1  # must equal pose_fast.decoding.KERNEL_API


@njit(cache=True, nogil=True)
def _first_nonfinite(values):
    """Index of the first NaN/Inf in 1-D float32 ``values``, or -1.

    ``v - v`` is 0 for a finite v and NaN otherwise; OR-ing that test over the array vectorises, and only an array
    that has one is searched again.
    """
    bad = False
    for i in range(values.size):
        v = values[i]
        bad |= (v - v) != 0
    if not bad:
        return -1
    for i in range(values.size):
        if not np.isfinite(values[i]):
            return i
    return -1


def first_nonfinite(flat: np.ndarray) -> int:
    """Flat index of the first NaN/Inf in a 1-D C-contiguous float32 array, or -1."""
    return int(_first_nonfinite(flat))


@njit(cache=True, nogil=True)
def _peaks(hm, threshold, max_points, out_idx, out_score):
    """Peaks of one (H, W) heatmap above threshold, best first (ties row-major), at most max_points."""
    height, width = hm.shape
    count = 0
    for y in range(height):
        above = False
        for x in range(width):  # branch-free, vectorised: most rows have nothing above the threshold
            above |= hm[y, x] > threshold
        if not above:
            continue
        for x in range(width):
            v = hm[y, x]
            if not (v > threshold):
                continue
            peak = True
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= height:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if xx < 0 or xx >= width:
                        continue
                    if hm[yy, xx] > v:
                        peak = False
            if not peak:
                continue
            if count == max_points:
                if not (v > out_score[count - 1]):
                    continue
                j = count - 1
            else:
                j = count
                count += 1
            while j > 0 and out_score[j - 1] < v:
                out_score[j] = out_score[j - 1]
                out_idx[j] = out_idx[j - 1]
                j -= 1
            out_score[j] = v
            out_idx[j] = y * width + x
    return count


@njit(cache=True, nogil=True)
def _pairwise_sum(values, n):
    """NumPy's float32 pairwise summation order (n <= 128)."""
    if n < 8:
        res = np.float32(0.0)
        for i in range(n):
            res += values[i]
        return res
    r0 = values[0]
    r1 = values[1]
    r2 = values[2]
    r3 = values[3]
    r4 = values[4]
    r5 = values[5]
    r6 = values[6]
    r7 = values[7]
    i = 8
    while i < n - (n % 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += values[i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _merge_sort_desc(order, tmp, score, count):
    """Stable sort of order[:count] by score[order[k]] descending."""
    src = order
    dst = tmp
    width = 1
    while width < count:
        lo = 0
        while lo < count:
            mid = min(lo + width, count)
            hi = min(lo + 2 * width, count)
            i = lo
            j = mid
            k = lo
            while i < mid and j < hi:
                if score[src[j]] > score[src[i]]:
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
            lo += 2 * width
        src, dst = dst, src
        width *= 2
    if src is not order:
        for k in range(count):
            order[k] = src[k]


@njit(cache=True, nogil=True)
def decode_kernel(hm, pafs, limbs, paf_x, fparams, iparams, scale_x, scale_y,
                  peak_idx, peak_score, cand_x, cand_y, cand_s, first,
                  pair_idx, pair_score, order, tmp, used_a, used_b, samples,
                  pose_ids, pose_score, pose_count, pose_alive, owner, out_kp, out_score):
    """Decode C-contiguous float32 heatmaps (>=18, H, W) and PAFs (38, H, W) into out_kp/out_score.

    Returns the number of people written, or -1 when the heatmaps hold a NaN/Inf, -2 when the PAFs do.
    """
    if _first_nonfinite(hm.reshape(-1)) >= 0:
        return -1
    if _first_nonfinite(pafs.reshape(-1)) >= 0:
        return -2
    threshold = fparams[0]
    min_paf = fparams[1]
    delta = fparams[2]
    offset = fparams[3]
    inv_steps = fparams[4]
    eps = fparams[5]
    max_points = iparams[0]
    ppl = iparams[1]
    min_good = iparams[2]
    min_kpts = iparams[3]
    height = hm.shape[1]
    width = hm.shape[2]
    zero = np.float32(0.0)
    wmax = np.float32(width - 1)
    hmax = np.float32(height - 1)

    # 1-2. candidates per keypoint type: peaks, refined, shifted, clipped
    total = 0
    for k in range(NUM_KEYPOINTS):
        first[k] = total
        count = _peaks(hm[k], threshold, max_points, peak_idx, peak_score)
        for c in range(count):
            py = peak_idx[c] // width
            px = peak_idx[c] - py * width
            x = np.float32(px)
            y = np.float32(py)
            if px > 0 and px < width - 1 and py > 0 and py < height - 1:
                d = hm[k, py, px + 1] - hm[k, py, px - 1]
                if d > 0:
                    x += offset
                elif d < 0:
                    x -= offset
                d = hm[k, py + 1, px] - hm[k, py - 1, px]
                if d > 0:
                    y += offset
                elif d < 0:
                    y -= offset
            x = min(max(x, zero), wmax) + delta
            y = min(max(y, zero), hmax) + delta
            cand_x[total] = min(max(x, zero), wmax)
            cand_y[total] = min(max(y, zero), hmax)
            cand_s[total] = peak_score[c]
            owner[total] = -1
            total += 1
    first[NUM_KEYPOINTS] = total

    # 3-4. connections per limb, grown into poses
    n_rows = 0
    for limb in range(limbs.shape[0]):
        ka = limbs[limb, 0]
        kb = limbs[limb, 1]
        a0 = first[ka]
        b0 = first[kb]
        n = first[ka + 1] - a0
        m = first[kb + 1] - b0
        if n == 0 or m == 0:
            continue
        fx_map = pafs[paf_x[limb]]
        fy_map = pafs[paf_x[limb] + 1]
        n_pairs = 0
        for j in range(m):
            bx = cand_x[b0 + j]
            by = cand_y[b0 + j]
            for i in range(n):
                ax = cand_x[a0 + i]
                ay = cand_y[a0 + i]
                vx = bx - ax
                vy = by - ay
                sx = vx * inv_steps
                sy = vy * inv_steps
                norm = np.sqrt(vx * vx + vy * vy) + eps
                ux = vx / norm
                uy = vy / norm
                good = 0
                bad = 0
                for t in range(ppl):
                    tf = np.float32(t)
                    qx = int(np.rint(sx * tf + ax))
                    qy = int(np.rint(sy * tf + ay))
                    align = fx_map[qy, qx] * ux + fy_map[qy, qx] * uy
                    if align > min_paf:
                        samples[t] = align
                        good += 1
                    else:
                        samples[t] = zero
                        bad += 1
                        if bad > ppl - min_good:
                            break
                if good < min_good:
                    continue
                score = np.float64(_pairwise_sum(samples, ppl)) / (np.float64(good) + 1e-6)
                if score > 0:
                    pair_idx[n_pairs] = j * n + i
                    pair_score[n_pairs] = score
                    n_pairs += 1
        if n_pairs == 0:
            continue
        for c in range(n_pairs):  # larger pair index first among equal scores
            order[c] = n_pairs - 1 - c
        _merge_sort_desc(order, tmp, pair_score, n_pairs)
        for i in range(n):
            used_a[i] = 0
        for j in range(m):
            used_b[j] = 0
        for c in range(n_pairs):
            p = order[c]
            j = pair_idx[p] // n
            i = pair_idx[p] - j * n
            if used_a[i] or used_b[j]:
                continue
            used_a[i] = 1
            used_b[j] = 1
            conn = pair_score[p]
            ida = a0 + i
            idb = b0 + j
            pa = owner[ida]
            pb = owner[idb]
            if pa < 0 and pb < 0:
                row = n_rows
                n_rows += 1
                for s in range(NUM_KEYPOINTS):
                    pose_ids[row, s] = -1
                pose_ids[row, ka] = ida
                pose_ids[row, kb] = idb
                owner[ida] = row
                owner[idb] = row
                pose_count[row] = 2
                pose_alive[row] = 1
                pose_score[row] = np.float32(np.float64(cand_s[ida] + cand_s[idb]) + conn)
            elif pa >= 0 and pb >= 0:
                if pa == pb:
                    pose_score[pa] = np.float32(np.float64(pose_score[pa]) + conn)
                    continue
                disjoint = True
                for s in range(NUM_KEYPOINTS):
                    if pose_ids[pa, s] >= 0 and pose_ids[pb, s] >= 0:
                        disjoint = False
                        break
                if not disjoint:
                    continue
                for s in range(NUM_KEYPOINTS):
                    q = pose_ids[pb, s]
                    if q >= 0:
                        pose_ids[pa, s] = q
                        owner[q] = pa
                pose_score[pa] = np.float32(np.float64(pose_score[pa] + pose_score[pb]) + conn)
                pose_count[pa] += pose_count[pb]
                pose_alive[pb] = 0
            else:
                if pa >= 0:
                    row = pa
                    slot = kb
                    cid = idb
                else:
                    row = pb
                    slot = ka
                    cid = ida
                old = pose_ids[row, slot]
                s32 = pose_score[row]
                if old < 0:
                    s32 = s32 + cand_s[cid]
                else:
                    owner[old] = -1
                pose_ids[row, slot] = cid
                owner[cid] = row
                pose_score[row] = np.float32(np.float64(s32) + conn)
                pose_count[row] += 1

    # output, in creation order
    people = 0
    for row in range(n_rows):
        if not pose_alive[row] or pose_count[row] < min_kpts:
            continue
        for s in range(NUM_KEYPOINTS):
            q = pose_ids[row, s]
            if q >= 0:
                out_kp[people, s, 0] = np.float32(np.float64(cand_x[q]) * scale_x)
                out_kp[people, s, 1] = np.float32(np.float64(cand_y[q]) * scale_y)
                out_kp[people, s, 2] = cand_s[q]
            else:
                out_kp[people, s, 0] = zero
                out_kp[people, s, 1] = zero
                out_kp[people, s, 2] = zero
        out_score[people] = pose_score[row] * np.float32(max(0, pose_count[row] - 1))
        people += 1
    return people


def min_good_samples(points_per_limb: int, min_success_ratio: float) -> int:
    """Fewest aligned samples g with g / points_per_limb > min_success_ratio (points_per_limb + 1 if none)."""
    for good in range(points_per_limb + 1):
        if good / points_per_limb > min_success_ratio:
            return good
    return points_per_limb + 1


class Kernel:
    """Work buffers for one (H, W) and one parameter set, and the compiled kernel that fills them."""

    name = NAME

    def __init__(self, height: int, width: int, **params):
        p = dict(DEFAULTS, **params)
        self.height, self.width = height, width
        mp, ppl = int(p["max_points"]), int(p["points_per_limb"])
        self.fparams = np.array([p["score_threshold"], p["min_paf_score"], p["delta"], p["refine_offset"],
                                 1.0 / (ppl - 1), 1e-6], np.float32)
        min_good = min_good_samples(ppl, float(p["min_success_ratio"]))
        self.iparams = np.array([mp, ppl, min_good, int(p["min_keypoints"])], np.int64)
        cands = NUM_KEYPOINTS * mp
        rows = cands // 2 + 1
        self.limbs = np.ascontiguousarray(LIMBS, np.int64)
        self.paf_x = np.ascontiguousarray(PAF_X_CHANNELS, np.int64)
        self.peak_idx = np.zeros(mp, np.int64)
        self.peak_score = np.zeros(mp, np.float32)
        self.cand_x = np.zeros(cands, np.float32)
        self.cand_y = np.zeros(cands, np.float32)
        self.cand_s = np.zeros(cands, np.float32)
        self.first = np.zeros(NUM_KEYPOINTS + 1, np.int64)
        self.pair_idx = np.zeros(mp * mp, np.int64)
        self.pair_score = np.zeros(mp * mp, np.float64)
        self.order = np.zeros(mp * mp, np.int64)
        self.tmp = np.zeros(mp * mp, np.int64)
        self.used_a = np.zeros(mp, np.uint8)
        self.used_b = np.zeros(mp, np.uint8)
        self.samples = np.zeros(ppl, np.float32)
        self.pose_ids = np.zeros((rows, NUM_KEYPOINTS), np.int64)
        self.pose_score = np.zeros(rows, np.float32)
        self.pose_count = np.zeros(rows, np.int64)
        self.pose_alive = np.zeros(rows, np.uint8)
        self.owner = np.zeros(cands, np.int64)
        self.out_kp = np.zeros((rows, NUM_KEYPOINTS, 3), np.float32)
        self.out_score = np.zeros(rows, np.float32)

    @staticmethod
    def first_nonfinite(flat: np.ndarray) -> int:
        return first_nonfinite(flat)

    def run(self, heatmaps: np.ndarray, pafs: np.ndarray, scale_x: float, scale_y: float) -> int:
        """Decode C-contiguous float32 tensors; the people are in out_kp[:n], out_score[:n].

        Returns n, or -1 when the heatmaps hold a NaN/Inf, -2 when the PAFs do (nothing is decoded then).
        """
        return decode_kernel(heatmaps, pafs, self.limbs, self.paf_x, self.fparams, self.iparams,
                             float(scale_x), float(scale_y), self.peak_idx, self.peak_score, self.cand_x,
                             self.cand_y, self.cand_s, self.first, self.pair_idx, self.pair_score, self.order,
                             self.tmp, self.used_a, self.used_b, self.samples, self.pose_ids, self.pose_score,
                             self.pose_count, self.pose_alive, self.owner, self.out_kp, self.out_score)
