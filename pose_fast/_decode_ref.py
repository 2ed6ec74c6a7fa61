"""Readable NumPy reference decoder: the expected answer for the compiled backends.

The algorithm is the standard OpenPose grouping, step for step as the OpenVINO pose notebook and Open Model Zoo's
``OpenPoseDecoder`` do it, so that our people are their people keypoint for keypoint:

1. Peaks: a pixel is a candidate when it equals the 3×3 max-pool of its heatmap (zero padding, ties kept) and its
   value is above ``score_threshold``; at most ``max_points`` per keypoint type, best first.
2. Each candidate moves ±``refine_offset`` towards its larger horizontal and vertical neighbour (interior pixels
   only), then by ``delta``, clipped to the heatmap.
3. For every limb, in the order of :data:`pose_fast.skeleton.LIMBS`, every (a, b) candidate pair is scored against
   the limb's PAF at ``points_per_limb`` points along a → b; a pair is a connection when more than
   ``min_success_ratio`` of the samples align better than ``min_paf_score``. Connections are taken greedily, best
   first, each candidate used once per limb.
4. Connections grow, join or merge (when disjoint) partial poses; poses with fewer than ``min_keypoints``
   keypoints are dropped; a pose scores (sum of its keypoint and connection scores) × (keypoints − 1).

Float32 arithmetic is performed exactly as the peer does it (the sample positions are rounded half-to-even from
float32 values, the ten alignments are summed pairwise as NumPy does), so the compiled backends can match this
module bit for bit. Ties are broken deterministically: candidates with equal scores by position (row-major),
connections with equal scores by the larger pair index ``b * n + a`` first.
"""
from __future__ import annotations

import numpy as np

from .skeleton import LIMBS, NUM_KEYPOINTS, PAF_X_CHANNELS

#: Default parameters: those of the peer ``OpenPoseDecoder`` and the notebook.
DEFAULTS = {
    "max_points": 100,          # candidates kept per keypoint type, best first
    "score_threshold": 0.1,     # a heatmap peak must be above this
    "min_paf_score": 0.05,      # a PAF sample aligns when its projection on the limb is above this
    "min_success_ratio": 0.8,   # a limb needs more than this fraction of aligned samples
    "points_per_limb": 10,      # PAF samples along a candidate limb
    "delta": 0.5,               # shift of every keypoint, in heatmap pixels (to the pixel centre)
    "refine_offset": 0.25,      # sub-pixel step towards the larger neighbour
    "min_keypoints": 3,         # people with fewer keypoints are dropped
}


def find_peaks(heatmap: np.ndarray, threshold: float, max_points: int) -> tuple:
    """Local maxima of one (H, W) float32 heatmap: (x, y, score), best first, at most ``max_points``."""
    height, width = heatmap.shape
    padded = np.zeros((height + 2, width + 2), np.float32)
    padded[1:-1, 1:-1] = heatmap
    pooled = np.max([padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)], axis=0)
    ys, xs = np.nonzero((heatmap == pooled) & (heatmap > np.float32(threshold)))
    scores = heatmap[ys, xs]
    order = np.lexsort((ys * width + xs, -scores))[:max_points]  # best first, then row-major
    return xs[order], ys[order], scores[order]


def refine(heatmap: np.ndarray, xs: np.ndarray, ys: np.ndarray, offset: float) -> tuple:
    """Move interior peaks by ±offset towards their larger neighbour (float32 x, y)."""
    height, width = heatmap.shape
    x = xs.astype(np.float32)
    y = ys.astype(np.float32)
    inside = (xs > 0) & (xs < width - 1) & (ys > 0) & (ys < height - 1)
    xi, yi = xs[inside], ys[inside]
    step = np.float32(offset)
    x[inside] += np.sign(heatmap[yi, xi + 1] - heatmap[yi, xi - 1]) * step
    y[inside] += np.sign(heatmap[yi + 1, xi] - heatmap[yi - 1, xi]) * step
    return x, y


def limb_scores(pafs: np.ndarray, channel: int, a: np.ndarray, b: np.ndarray, p: dict) -> tuple:
    """Score every pair (a[i], b[j]) against the limb's PAF.

    Returns (pair index ``j * len(a) + i``, float64 score) of the pairs that qualify, in pair-index order.
    """
    n, m = len(a), len(b)
    count = int(p["points_per_limb"])
    vec = (b[:, None, :] - a[None, :, :]).reshape(-1, 2)            # (m*n, 2) float32, b-major
    start = np.broadcast_to(a[None], (m, n, 2)).reshape(-1, 2)
    steps = vec * np.float32(1.0 / (count - 1))
    grid = np.arange(count, dtype=np.float32)[None, :, None]
    points = np.rint(steps[:, None, :] * grid + start[:, None, :]).astype(np.intp)  # (m*n, count, 2)
    fx = pafs[channel][points[..., 1], points[..., 0]]
    fy = pafs[channel + 1][points[..., 1], points[..., 0]]
    norm = np.sqrt(vec[:, 0] * vec[:, 0] + vec[:, 1] * vec[:, 1]) + np.float32(1e-6)
    ux = (vec[:, 0] / norm)[:, None]
    uy = (vec[:, 1] / norm)[:, None]
    align = fx * ux + fy * uy                                        # (m*n, count) float32
    good = align > np.float32(p["min_paf_score"])
    good_count = good.sum(axis=1)
    total = np.where(good, align, np.float32(0)).sum(axis=1)          # float32, NumPy's pairwise order
    score = total.astype(np.float64) / (good_count + 1e-6)
    ok = (score > 0) & (good_count / count > p["min_success_ratio"])
    pairs = np.nonzero(ok)[0]
    return pairs, score[pairs]


def greedy_connections(pairs: np.ndarray, scores: np.ndarray, n: int) -> list:
    """Best-first one-to-one selection: list of (i_a, j_b, score)."""
    order = np.lexsort((-pairs, -scores))  # score descending, then larger pair index first
    used_a, used_b, chosen = set(), set(), []
    for k in order:
        j, i = divmod(int(pairs[k]), n)
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            chosen.append((i, j, float(scores[k])))
    return chosen


class _Pose:
    """A partial pose: the candidate id of each keypoint (-1 if missing), a float32 score and a count."""

    __slots__ = ("ids", "score", "count")

    def __init__(self):
        self.ids = [-1] * NUM_KEYPOINTS
        self.score = np.float32(0)
        self.count = 0

    def add_score(self, value) -> None:
        # The peer keeps scores in a float32 array: every sum is rounded back to float32.
        self.score = np.float32(float(self.score) + float(value))


def group(cand_scores: np.ndarray, connections_by_limb: list) -> list:
    """Grow poses from the per-limb connections (global candidate ids), in limb order."""
    poses = []

    def owner(kpt_type, cand_id):
        for pose in poses:
            if pose.ids[kpt_type] == cand_id:
                return pose
        return None

    for (ka, kb), connections in connections_by_limb:
        for ida, idb, score in connections:
            pa, pb = owner(ka, ida), owner(kb, idb)
            if pa is None and pb is None:
                pose = _Pose()
                pose.ids[ka], pose.ids[kb] = ida, idb
                pose.count = 2
                pose.score = np.float32(cand_scores[ida] + cand_scores[idb])
                pose.add_score(score)
                poses.append(pose)
            elif pa is not None and pb is not None:
                if pa is pb:
                    pa.add_score(score)
                elif all(x < 0 or y < 0 for x, y in zip(pa.ids, pb.ids)):  # disjoint: merge b into a
                    pa.ids = [x if x >= 0 else y for x, y in zip(pa.ids, pb.ids)]
                    pa.score = np.float32(pa.score + pb.score)
                    pa.count += pb.count
                    pa.add_score(score)
                    poses.remove(pb)
            else:
                pose, kind, cid = (pa, kb, idb) if pa is not None else (pb, ka, ida)
                if pose.ids[kind] < 0:
                    pose.score = np.float32(pose.score + cand_scores[cid])
                pose.ids[kind] = cid  # the peer overwrites (and counts) even an existing keypoint
                pose.add_score(score)
                pose.count += 1
    return poses


def decode_ref(heatmaps: np.ndarray, pafs: np.ndarray, scale_x: float, scale_y: float, **params) -> tuple:
    """Decode (>=18, H, W) heatmaps and (38, H, W) PAFs, both float32.

    Returns (keypoints (P, 18, 3) float32 in output pixels = heatmap pixels × scale, scores (P,) float32).
    """
    p = dict(DEFAULTS, **params)
    height, width = heatmaps.shape[1:]
    xs_all, ys_all, s_all, first = [], [], [], [0]
    for k in range(NUM_KEYPOINTS):
        xs, ys, scores = find_peaks(heatmaps[k], p["score_threshold"], p["max_points"])
        x, y = refine(heatmaps[k], xs, ys, p["refine_offset"])
        delta = np.float32(p["delta"])
        x = np.clip(np.clip(x, 0, width - 1) + delta, 0, width - 1).astype(np.float32)
        y = np.clip(np.clip(y, 0, height - 1) + delta, 0, height - 1).astype(np.float32)
        xs_all.append(x)
        ys_all.append(y)
        s_all.append(scores.astype(np.float32))
        first.append(first[-1] + len(x))
    cand_x, cand_y, cand_s = np.concatenate(xs_all), np.concatenate(ys_all), np.concatenate(s_all)

    connections_by_limb = []
    for (ka, kb), channel in zip(LIMBS.tolist(), PAF_X_CHANNELS.tolist()):
        n, m = first[ka + 1] - first[ka], first[kb + 1] - first[kb]
        if n == 0 or m == 0:
            continue
        a = np.stack([cand_x[first[ka]:first[ka + 1]], cand_y[first[ka]:first[ka + 1]]], axis=1)
        b = np.stack([cand_x[first[kb]:first[kb + 1]], cand_y[first[kb]:first[kb + 1]]], axis=1)
        pairs, scores = limb_scores(pafs, channel, a, b, p)
        chosen = greedy_connections(pairs, scores, n)
        connections_by_limb.append(((ka, kb), [(first[ka] + i, first[kb] + j, s) for i, j, s in chosen]))

    poses = [pose for pose in group(cand_s, connections_by_limb) if pose.count >= p["min_keypoints"]]
    keypoints = np.zeros((len(poses), NUM_KEYPOINTS, 3), np.float32)
    scores = np.zeros(len(poses), np.float32)
    for i, pose in enumerate(poses):
        for k, cid in enumerate(pose.ids):
            if cid >= 0:
                keypoints[i, k] = (float(cand_x[cid]) * scale_x, float(cand_y[cid]) * scale_y, cand_s[cid])
        scores[i] = pose.score * np.float32(max(0, pose.count - 1))
    return keypoints, scores


NAME = "numpy"
KERNEL_API = 1  # must equal pose_fast.decoding.KERNEL_API


class Kernel:
    """The reference behind the same interface as the compiled kernels (it allocates; it is the slow path)."""

    name = NAME

    def __init__(self, height: int, width: int, **params):
        self.params = dict(DEFAULTS, **params)
        self.height, self.width = height, width
        rows = NUM_KEYPOINTS * int(self.params["max_points"]) // 2 + 1
        self.out_kp = np.zeros((rows, NUM_KEYPOINTS, 3), np.float32)
        self.out_score = np.zeros(rows, np.float32)

    @staticmethod
    def first_nonfinite(flat: np.ndarray) -> int:
        bad = np.flatnonzero(~np.isfinite(flat))
        return int(bad[0]) if len(bad) else -1

    def run(self, heatmaps: np.ndarray, pafs: np.ndarray, scale_x: float, scale_y: float) -> int:
        """The people are in out_kp[:n], out_score[:n]; returns n, or -1 / -2 for NaN/Inf in heatmaps / pafs."""
        if not np.isfinite(heatmaps).all():
            return -1
        if not np.isfinite(pafs).all():
            return -2
        keypoints, scores = decode_ref(heatmaps, pafs, scale_x, scale_y, **self.params)
        self.out_kp[:len(scores)] = keypoints
        self.out_score[:len(scores)] = scores
        return len(scores)
