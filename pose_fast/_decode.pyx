# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython backend of the pose decoder: heatmap NMS and PAF grouping in C, without the GIL.

Every step mirrors :mod:`pose_fast._decode_ref` (the expected answer), with float32 arithmetic done in the same
order so that the results agree to the bit. All work buffers belong to a :class:`Kernel` and are reused across
frames; the only per-frame allocation is the caller's copy of the result.
"""
import numpy as np

from libc.float cimport FLT_MAX
from libc.math cimport fabsf, sqrtf
from libc.string cimport memcpy

from ._decode_ref import DEFAULTS
from .skeleton import LIMBS, NUM_KEYPOINTS, PAF_X_CHANNELS

NAME = "cython"
KERNEL_API = 1  # must equal pose_fast.decoding.KERNEL_API

cdef extern from *:
    """
    /* Bit-for-bit agreement with the NumPy reference needs every float32 product rounded on its own: no fused
       multiply-add, whatever -march or the platform's default (GCC on ARM contracts by default). */
    #if defined(__clang__)
    #pragma STDC FP_CONTRACT OFF
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    """

cdef enum:
    NK = 18  # keypoint types


cdef struct Params:
    float threshold
    float min_paf
    float delta
    float offset
    float inv_steps
    float eps
    Py_ssize_t max_points
    Py_ssize_t ppl
    Py_ssize_t min_good
    Py_ssize_t min_kpts


cdef struct Work:
    Py_ssize_t *peak_idx
    float *peak_score
    float *cand_x
    float *cand_y
    float *cand_s
    Py_ssize_t *first
    Py_ssize_t *pair_idx
    double *pair_score
    Py_ssize_t *order
    Py_ssize_t *tmp
    unsigned char *used_a
    unsigned char *used_b
    float *samples
    Py_ssize_t *pose_ids
    float *pose_score
    Py_ssize_t *pose_count
    unsigned char *pose_alive
    Py_ssize_t *owner
    float *out_kp
    float *out_score


cdef Py_ssize_t _first_nonfinite(const float *a, Py_ssize_t size) noexcept nogil:
    """Index of the first NaN/Inf in a[:size], or -1.

    A NaN or Inf has all exponent bits set, so adding 1 to its exponent carries into the sign bit: OR-ing that over
    the array's bits vectorises (integer SIMD on any CPU), and only an array that has one is searched again.
    """
    cdef Py_ssize_t i
    cdef unsigned int bits, acc = 0
    for i in range(size):
        memcpy(&bits, &a[i], 4)  # the float's bits (a load; no aliasing rules broken)
        acc = acc | ((bits & <unsigned int>0x7f800000) + <unsigned int>0x00800000)
    if not (acc & <unsigned int>0x80000000):
        return -1
    for i in range(size):
        if not (fabsf(a[i]) <= FLT_MAX):
            return i
    return -1


cdef inline Py_ssize_t _rint_index(float v) noexcept nogil:
    """np.rint for a sample position (-0.5 <= v < 2**23): adding 2**23 rounds half to even in float32.

    Unlike rintf this needs no SSE4.1 round instruction, so it inlines on any x86-64 or ARM.
    """
    cdef float big = 8388608.0
    return <Py_ssize_t>((v + big) - big)


cdef inline bint _is_peak(const float *hm, Py_ssize_t height, Py_ssize_t width, Py_ssize_t y, Py_ssize_t x,
                          float v) noexcept nogil:
    cdef Py_ssize_t yy, xx
    cdef const float *row
    if 0 < y < height - 1 and 0 < x < width - 1:
        row = hm + (y - 1) * width + x - 1
        if row[0] > v or row[1] > v or row[2] > v:
            return False
        row = row + width
        if row[0] > v or row[2] > v:
            return False
        row = row + width
        return not (row[0] > v or row[1] > v or row[2] > v)
    for yy in range(y - 1, y + 2):
        if yy < 0 or yy >= height:
            continue
        for xx in range(x - 1, x + 2):
            if 0 <= xx < width and hm[yy * width + xx] > v:
                return False
    return True


cdef Py_ssize_t _peaks(const float *hm, Py_ssize_t height, Py_ssize_t width, float threshold,
                       Py_ssize_t max_points, Py_ssize_t *out_idx, float *out_score) noexcept nogil:
    """Peaks above threshold, best first (ties row-major), at most max_points."""
    cdef Py_ssize_t y, x, j, count = 0
    cdef float v
    cdef const float *row
    cdef int above
    for y in range(height):
        row = hm + y * width
        above = 0
        for x in range(width):  # branch-free, vectorised: most rows have nothing above the threshold
            above = above | (row[x] > threshold)
        if not above:
            continue
        for x in range(width):
            v = row[x]
            if not (v > threshold):
                continue
            if not _is_peak(hm, height, width, y, x, v):
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


cdef float _pairwise_sum(const float *values, Py_ssize_t n) noexcept nogil:
    """NumPy's float32 pairwise summation order (n <= 128)."""
    cdef float res, r0, r1, r2, r3, r4, r5, r6, r7
    cdef Py_ssize_t i
    if n < 8:
        res = 0.0
        for i in range(n):
            res = res + values[i]
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
        r0 = r0 + values[i]
        r1 = r1 + values[i + 1]
        r2 = r2 + values[i + 2]
        r3 = r3 + values[i + 3]
        r4 = r4 + values[i + 4]
        r5 = r5 + values[i + 5]
        r6 = r6 + values[i + 6]
        r7 = r7 + values[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res = res + values[i]
        i += 1
    return res


cdef void _merge_sort_desc(Py_ssize_t *order, Py_ssize_t *tmp, const double *score,
                           Py_ssize_t count) noexcept nogil:
    """Stable sort of order[:count] by score[order[k]] descending."""
    cdef Py_ssize_t *src = order
    cdef Py_ssize_t *dst = tmp
    cdef Py_ssize_t *swap
    cdef Py_ssize_t width = 1, lo, mid, hi, i, j, k
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
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != order:
        for k in range(count):
            order[k] = src[k]


cdef inline float _clip(float v, float hi) noexcept nogil:
    if v < 0:
        return 0
    if v > hi:
        return hi
    return v


cdef Py_ssize_t _candidates(const float *hm, Py_ssize_t height, Py_ssize_t width, const Params *p,
                            Work *w) noexcept nogil:
    """Steps 1-2: peaks of each keypoint type, refined, shifted and clipped. Returns the candidate count."""
    cdef Py_ssize_t k, c, count, px, py, total = 0
    cdef const float *plane
    cdef float x, y, d
    cdef float wmax = <float>(width - 1)
    cdef float hmax = <float>(height - 1)
    for k in range(NK):
        w.first[k] = total
        plane = hm + k * height * width
        count = _peaks(plane, height, width, p.threshold, p.max_points, w.peak_idx, w.peak_score)
        for c in range(count):
            py = w.peak_idx[c] // width
            px = w.peak_idx[c] - py * width
            x = <float>px
            y = <float>py
            if 0 < px < width - 1 and 0 < py < height - 1:
                d = plane[py * width + px + 1] - plane[py * width + px - 1]
                if d > 0:
                    x = x + p.offset
                elif d < 0:
                    x = x - p.offset
                d = plane[(py + 1) * width + px] - plane[(py - 1) * width + px]
                if d > 0:
                    y = y + p.offset
                elif d < 0:
                    y = y - p.offset
            x = _clip(x, wmax) + p.delta
            y = _clip(y, hmax) + p.delta
            w.cand_x[total] = _clip(x, wmax)
            w.cand_y[total] = _clip(y, hmax)
            w.cand_s[total] = w.peak_score[c]
            w.owner[total] = -1
            total += 1
    w.first[NK] = total
    return total


cdef Py_ssize_t _limb_pairs(const float *fx_map, const float *fy_map, Py_ssize_t width, Py_ssize_t a0,
                            Py_ssize_t n, Py_ssize_t b0, Py_ssize_t m, const Params *p, Work *w) noexcept nogil:
    """Step 3: score every candidate pair of one limb; keep the qualifying ones. Returns their count."""
    cdef Py_ssize_t i, j, t, good, bad, qx, qy, q, n_pairs = 0
    cdef Py_ssize_t max_bad = p.ppl - p.min_good
    cdef float ax, ay, bx, by, vx, vy, sx, sy, norm, ux, uy, align, tf
    cdef double score
    for j in range(m):
        bx = w.cand_x[b0 + j]
        by = w.cand_y[b0 + j]
        for i in range(n):
            ax = w.cand_x[a0 + i]
            ay = w.cand_y[a0 + i]
            vx = bx - ax
            vy = by - ay
            sx = vx * p.inv_steps
            sy = vy * p.inv_steps
            norm = sqrtf(vx * vx + vy * vy) + p.eps
            ux = vx / norm
            uy = vy / norm
            good = 0
            bad = 0
            for t in range(p.ppl):
                tf = <float>t
                qx = _rint_index(sx * tf + ax)
                qy = _rint_index(sy * tf + ay)
                q = qy * width + qx
                align = fx_map[q] * ux + fy_map[q] * uy
                if align > p.min_paf:
                    w.samples[t] = align
                    good += 1
                else:
                    w.samples[t] = 0
                    bad += 1
                    if bad > max_bad:
                        break
            if good < p.min_good:
                continue
            score = <double>_pairwise_sum(w.samples, p.ppl) / (<double>good + 1e-6)
            if score > 0:
                w.pair_idx[n_pairs] = j * n + i
                w.pair_score[n_pairs] = score
                n_pairs += 1
    return n_pairs


cdef Py_ssize_t _connect(Py_ssize_t ka, Py_ssize_t kb, Py_ssize_t ida, Py_ssize_t idb, double conn,
                         Py_ssize_t n_rows, Work *w) noexcept nogil:
    """Step 4: apply one connection to the partial poses. Returns the new row count."""
    cdef Py_ssize_t pa = w.owner[ida]
    cdef Py_ssize_t pb = w.owner[idb]
    cdef Py_ssize_t s, q, row, slot, cid, old
    cdef Py_ssize_t *ids_a
    cdef Py_ssize_t *ids_b
    cdef float s32
    if pa < 0 and pb < 0:
        row = n_rows
        ids_a = w.pose_ids + row * NK
        for s in range(NK):
            ids_a[s] = -1
        ids_a[ka] = ida
        ids_a[kb] = idb
        w.owner[ida] = row
        w.owner[idb] = row
        w.pose_count[row] = 2
        w.pose_alive[row] = 1
        s32 = w.cand_s[ida] + w.cand_s[idb]
        w.pose_score[row] = <float>(<double>s32 + conn)
        return n_rows + 1
    if pa >= 0 and pb >= 0:
        if pa == pb:
            w.pose_score[pa] = <float>(<double>w.pose_score[pa] + conn)
            return n_rows
        ids_a = w.pose_ids + pa * NK
        ids_b = w.pose_ids + pb * NK
        for s in range(NK):
            if ids_a[s] >= 0 and ids_b[s] >= 0:
                return n_rows  # not disjoint: the connection is ignored
        for s in range(NK):
            q = ids_b[s]
            if q >= 0:
                ids_a[s] = q
                w.owner[q] = pa
        s32 = w.pose_score[pa] + w.pose_score[pb]
        w.pose_score[pa] = <float>(<double>s32 + conn)
        w.pose_count[pa] += w.pose_count[pb]
        w.pose_alive[pb] = 0
        return n_rows
    if pa >= 0:
        row = pa
        slot = kb
        cid = idb
    else:
        row = pb
        slot = ka
        cid = ida
    old = w.pose_ids[row * NK + slot]
    s32 = w.pose_score[row]
    if old < 0:
        s32 = s32 + w.cand_s[cid]
    else:
        w.owner[old] = -1
    w.pose_ids[row * NK + slot] = cid
    w.owner[cid] = row
    w.pose_score[row] = <float>(<double>s32 + conn)
    w.pose_count[row] += 1
    return n_rows


cdef Py_ssize_t _decode(const float *hm, const float *pafs, Py_ssize_t height, Py_ssize_t width,
                        const Py_ssize_t *limbs, const Py_ssize_t *paf_x, Py_ssize_t n_limbs,
                        double scale_x, double scale_y, const Params *p, Work *w) noexcept nogil:
    cdef Py_ssize_t limb, ka, kb, a0, b0, n, m, n_pairs, c, i, j, k, s, q, row, people, n_rows = 0
    cdef Py_ssize_t plane = height * width
    cdef float *kp
    _candidates(hm, height, width, p, w)
    for limb in range(n_limbs):
        ka = limbs[2 * limb]
        kb = limbs[2 * limb + 1]
        a0 = w.first[ka]
        b0 = w.first[kb]
        n = w.first[ka + 1] - a0
        m = w.first[kb + 1] - b0
        if n == 0 or m == 0:
            continue
        n_pairs = _limb_pairs(pafs + paf_x[limb] * plane, pafs + (paf_x[limb] + 1) * plane, width,
                              a0, n, b0, m, p, w)
        if n_pairs == 0:
            continue
        for c in range(n_pairs):  # larger pair index first among equal scores
            w.order[c] = n_pairs - 1 - c
        _merge_sort_desc(w.order, w.tmp, w.pair_score, n_pairs)
        for i in range(n):
            w.used_a[i] = 0
        for j in range(m):
            w.used_b[j] = 0
        for c in range(n_pairs):
            k = w.order[c]
            j = w.pair_idx[k] // n
            i = w.pair_idx[k] - j * n
            if w.used_a[i] or w.used_b[j]:
                continue
            w.used_a[i] = 1
            w.used_b[j] = 1
            n_rows = _connect(ka, kb, a0 + i, b0 + j, w.pair_score[k], n_rows, w)

    people = 0
    for row in range(n_rows):
        if not w.pose_alive[row] or w.pose_count[row] < p.min_kpts:
            continue
        kp = w.out_kp + people * NK * 3
        for s in range(NK):
            q = w.pose_ids[row * NK + s]
            if q >= 0:
                kp[3 * s] = <float>(<double>w.cand_x[q] * scale_x)
                kp[3 * s + 1] = <float>(<double>w.cand_y[q] * scale_y)
                kp[3 * s + 2] = w.cand_s[q]
            else:
                kp[3 * s] = 0
                kp[3 * s + 1] = 0
                kp[3 * s + 2] = 0
        w.out_score[people] = w.pose_score[row] * <float>max(0, w.pose_count[row] - 1)
        people += 1
    return people


def min_good_samples(Py_ssize_t points_per_limb, double min_success_ratio):
    """Fewest aligned samples g with g / points_per_limb > min_success_ratio (points_per_limb + 1 if none)."""
    cdef Py_ssize_t good
    for good in range(points_per_limb + 1):
        if <double>good / points_per_limb > min_success_ratio:
            return good
    return points_per_limb + 1


cdef class Kernel:
    """Work buffers for one (H, W) and one parameter set, and the compiled kernel that fills them."""

    cdef Params params
    cdef Work work
    cdef readonly Py_ssize_t height, width
    cdef readonly object out_kp, out_score
    cdef object _keep  # the NumPy arrays behind the Work pointers
    cdef Py_ssize_t[::1] _limbs
    cdef Py_ssize_t[::1] _paf_x

    name = NAME

    def __init__(self, Py_ssize_t height, Py_ssize_t width, **params):
        p = dict(DEFAULTS, **params)
        cdef Py_ssize_t mp = int(p["max_points"])
        cdef Py_ssize_t ppl = int(p["points_per_limb"])
        self.height = height
        self.width = width
        self.params.threshold = p["score_threshold"]
        self.params.min_paf = p["min_paf_score"]
        self.params.delta = p["delta"]
        self.params.offset = p["refine_offset"]
        self.params.inv_steps = <float>(1.0 / (ppl - 1))
        self.params.eps = <float>1e-6
        self.params.max_points = mp
        self.params.ppl = ppl
        self.params.min_good = min_good_samples(ppl, float(p["min_success_ratio"]))
        self.params.min_kpts = int(p["min_keypoints"])
        cdef Py_ssize_t cands = NUM_KEYPOINTS * mp
        cdef Py_ssize_t rows = cands // 2 + 1
        self._limbs = np.ascontiguousarray(LIMBS, np.intp).reshape(-1)
        self._paf_x = np.ascontiguousarray(PAF_X_CHANNELS, np.intp)
        keep = {
            "peak_idx": np.zeros(mp, np.intp), "peak_score": np.zeros(mp, np.float32),
            "cand_x": np.zeros(cands, np.float32), "cand_y": np.zeros(cands, np.float32),
            "cand_s": np.zeros(cands, np.float32), "first": np.zeros(NK + 1, np.intp),
            "pair_idx": np.zeros(mp * mp, np.intp), "pair_score": np.zeros(mp * mp, np.float64),
            "order": np.zeros(mp * mp, np.intp), "tmp": np.zeros(mp * mp, np.intp),
            "used_a": np.zeros(mp, np.uint8), "used_b": np.zeros(mp, np.uint8),
            "samples": np.zeros(ppl, np.float32), "pose_ids": np.zeros(rows * NK, np.intp),
            "pose_score": np.zeros(rows, np.float32), "pose_count": np.zeros(rows, np.intp),
            "pose_alive": np.zeros(rows, np.uint8), "owner": np.zeros(cands, np.intp),
            "out_kp": np.zeros((rows, NK, 3), np.float32), "out_score": np.zeros(rows, np.float32),
        }
        self._keep = keep
        self.out_kp = keep["out_kp"]
        self.out_score = keep["out_score"]
        self.work.peak_idx = _ip(keep["peak_idx"])
        self.work.peak_score = _fp(keep["peak_score"])
        self.work.cand_x = _fp(keep["cand_x"])
        self.work.cand_y = _fp(keep["cand_y"])
        self.work.cand_s = _fp(keep["cand_s"])
        self.work.first = _ip(keep["first"])
        self.work.pair_idx = _ip(keep["pair_idx"])
        self.work.pair_score = _dp(keep["pair_score"])
        self.work.order = _ip(keep["order"])
        self.work.tmp = _ip(keep["tmp"])
        self.work.used_a = _bp(keep["used_a"])
        self.work.used_b = _bp(keep["used_b"])
        self.work.samples = _fp(keep["samples"])
        self.work.pose_ids = _ip(keep["pose_ids"])
        self.work.pose_score = _fp(keep["pose_score"])
        self.work.pose_count = _ip(keep["pose_count"])
        self.work.pose_alive = _bp(keep["pose_alive"])
        self.work.owner = _ip(keep["owner"])
        self.work.out_kp = _fp(keep["out_kp"].reshape(-1))
        self.work.out_score = _fp(keep["out_score"])

    def first_nonfinite(self, const float[::1] flat):
        """Flat index of the first NaN/Inf in a 1-D C-contiguous float32 array, or -1."""
        cdef Py_ssize_t found = -1
        if flat.shape[0]:
            with nogil:
                found = _first_nonfinite(&flat[0], flat.shape[0])
        return found

    def run(self, const float[:, :, ::1] heatmaps, const float[:, :, ::1] pafs, double scale_x, double scale_y):
        """Decode C-contiguous float32 tensors; the people are in out_kp[:n], out_score[:n].

        Returns n, or -1 when the heatmaps hold a NaN/Inf, -2 when the PAFs do (nothing is decoded then).
        """
        cdef Py_ssize_t people
        if heatmaps.shape[1] != self.height or heatmaps.shape[2] != self.width:
            raise ValueError(f"kernel built for {self.height}x{self.width} heatmaps, "
                             f"got {heatmaps.shape[1]}x{heatmaps.shape[2]}")
        if heatmaps.shape[0] < NK or pafs.shape[0] < 2 * (len(self._paf_x)) or \
                pafs.shape[1] != self.height or pafs.shape[2] != self.width:
            raise ValueError("heatmaps need 18+ channels and pafs 38 channels of the same size")
        with nogil:
            if _first_nonfinite(&heatmaps[0, 0, 0], heatmaps.shape[0] * self.height * self.width) >= 0:
                people = -1
            elif _first_nonfinite(&pafs[0, 0, 0], pafs.shape[0] * self.height * self.width) >= 0:
                people = -2
            else:
                people = _decode(&heatmaps[0, 0, 0], &pafs[0, 0, 0], self.height, self.width,
                                 &self._limbs[0], &self._paf_x[0], self._paf_x.shape[0],
                                 scale_x, scale_y, &self.params, &self.work)
        return people


cdef float *_fp(float[::1] a):
    return &a[0]


cdef double *_dp(double[::1] a):
    return &a[0]


cdef Py_ssize_t *_ip(Py_ssize_t[::1] a):
    return &a[0]


cdef unsigned char *_bp(unsigned char[::1] a):
    return &a[0]
