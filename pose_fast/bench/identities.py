"""Do identities hold when the tracker sees only every Nth frame? The tracker's runs on one video's poses at full
rate (the reference) and sub-sampled (:func:`track_run`), compared by IDF1 (:func:`idf1`), distinct people and
enter/exit counts (:func:`compare_runs`); a synthetic camera pan (:func:`pan`); the tracker's cost per result for
a scene of 10 people (:func:`tracker_cost`). :func:`measure_identities` gives the benchmark report's section.

The poses of every frame are decoded once (:func:`decode_video`); the tracker then runs offline on lists of them,
which is what makes trying several strides cheap.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["STRIDES", "COST_PEOPLE", "TARGET_IDF1", "TARGET_TRACKER_MS", "MAX_TRACKING_FRAMES", "PAN_STEP",
           "VideoPoses", "decode_video", "track_run", "idf1", "compare_runs", "pan", "tracker_cost",
           "measure_identities", "identity_targets"]

#: Every Nth frame compared with the full-rate run (issue 15), and the targets at N = 5: IDF1 against the full-rate
#: tracks >= 0.9, the same number of people +-1, enter and exit counts within 10 %; tracker < 0.2 ms per result
#: for 10 people.
STRIDES = (2, 3, 5)
TARGET_IDF1 = 0.9
TARGET_TRACKER_MS = 0.2
COST_PEOPLE = 10
#: Frames of the bench video decoded for the identities section (from its start).
MAX_TRACKING_FRAMES = 600
#: The synthetic pan: every result's poses shifted sideways by this share of the frame width, one more step each.
PAN_STEP = 0.05


class VideoPoses:
    """The people (``pose_fast.poses.Poses``) found in every frame of a video, with the video's facts."""

    def __init__(self, name: str, poses: list, fps: float, size: Tuple[int, int]):
        self.name, self.poses, self.fps, self.size = name, poses, float(fps), tuple(size)

    def __len__(self) -> int:
        return len(self.poses)


def decode_video(path, engine_for: Callable[[int, int], object], person_filter=None,
                 limit: Optional[int] = None) -> VideoPoses:
    """Every frame of ``path`` (up to ``limit``) through ``engine_for(width, height)``'s ``infer``, the decoder and
    the person filter, as the pipeline does before its tracker."""
    from pathlib import Path

    from ..decoding import decode
    from ..frames import open_source
    from ..people import PersonFilter

    person_filter = person_filter or PersonFilter()
    with open_source(str(path)) as source:
        engine = engine_for(source.width, source.height)
        buf = np.empty(source.shape, np.uint8)
        out = []
        while limit is None or len(out) < limit:
            frame = source.read(buf)
            if frame is None:
                break
            people, _ = person_filter.split(decode(*engine.infer(frame), frame_size=source.size))
            out.append(people)
        return VideoPoses(Path(str(path)).name, out, source.fps or 25.0, source.size)


def track_run(video: VideoPoses, stride: int = 1, shift: float = 0.0, make_tracker=None) -> dict:
    """The tracker over every ``stride``-th frame of ``video`` (timestamps kept: frame i at i / fps), the poses of
    the k-th result shifted right by ``k * shift`` pixels (a pan). Returns ``{"frames": [...], "ids": [...],
    "keypoints": [...], "events": [...]}`` (one entry per result; events as the tracker emitted them)."""
    from ..poses import Poses
    from ..tracking import Tracker

    events: list = []
    tracker = (make_tracker or Tracker)(on_event=lambda *event: events.append(event))
    frames, ids, kps = [], [], []
    t0 = 1_764_000_000.0
    for k, index in enumerate(range(0, len(video), stride)):
        poses = video.poses[index]
        keypoints = poses.keypoints.copy()
        if shift:
            keypoints[:, :, 0] = np.where(keypoints[:, :, 2] > 0, keypoints[:, :, 0] + k * shift, 0.0)
        t = index / video.fps
        ids.append(np.asarray(tracker.update(Poses(keypoints, poses.scores), index, t0 + t, media_time=t)))
        frames.append(index)
        kps.append(keypoints)
    last = frames[-1] if frames else 0
    tracker.close(last, t0 + last / video.fps)
    return {"frames": frames, "ids": ids, "keypoints": kps, "events": events}


def _pairs(ref_kp: np.ndarray, hyp_kp: np.ndarray, shift: float = 0.0) -> List[Tuple[int, int]]:
    """Detections of one frame in two runs that are the same pose: nearest by mean keypoint distance (after
    undoing ``shift``), under a tenth of the pose's height."""
    from scipy.optimize import linear_sum_assignment

    if not len(ref_kp) or not len(hyp_kp):
        return []
    hyp = hyp_kp.copy()
    hyp[:, :, 0] -= shift
    both = (ref_kp[:, None, :, 2] > 0) & (hyp[None, :, :, 2] > 0)
    dist = np.sqrt(((ref_kp[:, None, :, :2] - hyp[None, :, :, :2]) ** 2).sum(-1))
    mean = np.where(both, dist, 0.0).sum(-1) / np.maximum(both.sum(-1), 1)
    mean[both.sum(-1) == 0] = np.inf
    vis = ref_kp[:, :, 2] > 0
    ys = np.where(vis, ref_kp[:, :, 1], np.nan)
    height = np.maximum(np.nanmax(ys, 1) - np.nanmin(ys, 1), 16.0) if vis.any() else np.full(len(ref_kp), 16.0)
    cost = np.where(np.isfinite(mean), mean, 1e9)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if mean[r, c] < 0.1 * height[r]]


def idf1(reference: dict, run: dict, shift: float = 0.0) -> Dict[str, float]:
    """IDF1 of ``run``'s ids against ``reference``'s, on the frames both saw (Ristani et al. 2016): the ids are
    paired one to one so as to agree on the most detections (IDTP); IDF1 = 2 IDTP / (reference detections with an
    id + run detections with an id). Detections are paired between the runs by keypoint proximity
    (:func:`_pairs`); ``shift`` is the run's pan per result, undone for the pairing."""
    from scipy.optimize import linear_sum_assignment

    ref_at = dict(zip(reference["frames"], zip(reference["ids"], reference["keypoints"])))
    agree: Dict[Tuple[int, int], int] = {}
    n_ref = n_run = 0
    for k, (frame, ids, kps) in enumerate(zip(run["frames"], run["ids"], run["keypoints"])):
        if frame not in ref_at:
            continue
        ref_ids, ref_kps = ref_at[frame]
        n_ref += int((ref_ids > 0).sum())
        n_run += int((ids > 0).sum())
        for r, h in _pairs(ref_kps, kps, k * shift):
            if ref_ids[r] > 0 and ids[h] > 0:
                key = (int(ref_ids[r]), int(ids[h]))
                agree[key] = agree.get(key, 0) + 1
    if not n_ref and not n_run:
        return {"idf1": 1.0, "idtp": 0, "reference_detections": 0, "detections": 0}
    refs = sorted({a for a, _ in agree})
    hyps = sorted({b for _, b in agree})
    idtp = 0
    if agree:
        weight = np.zeros((len(refs), len(hyps)))
        for (a, b), n in agree.items():
            weight[refs.index(a), hyps.index(b)] = n
        rows, cols = linear_sum_assignment(weight, maximize=True)
        idtp = int(weight[rows, cols].sum())
    return {"idf1": 2.0 * idtp / (n_ref + n_run), "idtp": idtp, "reference_detections": n_ref, "detections": n_run}


def _people(run: dict) -> int:
    return len({int(i) for ids in run["ids"] for i in ids if i > 0})


def _count(run: dict, kind: str) -> int:
    return sum(1 for event in run["events"] if event[0] == kind)


def compare_runs(reference: dict, run: dict, shift: float = 0.0) -> dict:
    """IDF1 against the reference, distinct people, enters and exits of both."""
    return {**idf1(reference, run, shift), "people": _people(run), "reference_people": _people(reference),
            "enters": _count(run, "enter"), "exits": _count(run, "exit"),
            "reference_enters": _count(reference, "enter"), "reference_exits": _count(reference, "exit")}


def pan(video: VideoPoses, stride: int, make_tracker=None) -> dict:
    """The ``stride`` run with every result shifted PAN_STEP × width farther right than the one before, against
    the same run without the pan."""
    shift = PAN_STEP * video.size[0]
    still = track_run(video, stride, make_tracker=make_tracker)
    panned = track_run(video, stride, shift=shift, make_tracker=make_tracker)
    return {"stride": stride, "shift_px": shift, **compare_runs(still, panned, shift)}


def walking_scene(people: int, results: int) -> list:
    """A synthetic scene for the tracker's cost: ``people`` whole skeletons side by side, walking right 3 px per
    result and jittering (2 px), one :class:`~pose_fast.poses.Poses` per result (the same on every call)."""
    from ..poses import Poses

    rng = np.random.default_rng(0)
    template = rng.uniform(-0.2, 0.2, size=(18, 2)) * (1.0, 2.5)
    base = np.zeros((people, 18, 3))
    base[:, :, :2] = template[None] * 200.0 + np.stack([60.0 + 110.0 * np.arange(people),
                                                        np.full(people, 300.0)], 1)[:, None, :]
    base[:, :, 2] = 0.8
    scores = np.full(people, 200.0, np.float32)
    frames = []
    for i in range(results):
        kp = base.copy()
        kp[:, :, 0] += 3.0 * i
        kp[:, :, :2] += rng.normal(0, 2.0, size=(people, 18, 2))
        frames.append(Poses(kp.astype(np.float32), scores))
    return frames


def tracker_cost(people: int = COST_PEOPLE, results: int = 400, make_tracker=None, kernels=None) -> dict:
    """Milliseconds per :meth:`~pose_fast.tracking.Tracker.update` for ``people`` walking people in view
    (:func:`walking_scene`), after a warm-up; ``kernels``: the tracker's kernel module (default
    :data:`pose_fast.tracking.KERNELS`; ``pose_fast._track_ref`` for the NumPy fallback's cost)."""
    from ..tracking import Tracker

    tracker = (make_tracker or Tracker)()
    if kernels is not None:
        tracker._kernels = kernels
    frames = walking_scene(people, results)
    warm = results // 4
    times = []
    for i, poses in enumerate(frames):
        start = time.perf_counter()
        tracker.update(poses, i, i / 10.0)
        if i >= warm:
            times.append((time.perf_counter() - start) * 1000.0)
    return {"people": people, "results": len(times), "ms_p50": float(np.median(times)),
            "ms_mean": float(np.mean(times)), "people_tracked": tracker.people_count,
            "kernels": getattr(tracker, "_kernels", None) and tracker._kernels.NAME}


def measure_identities(videos: Sequence[VideoPoses], strides: Sequence[int] = STRIDES) -> dict:
    """The report's ``tracking`` section: per video and stride, the comparison with the full-rate run and the
    pan's; the tracker's cost per result for COST_PEOPLE people, with its kernels and with the NumPy fallback's (one
    after the other, in this run)."""
    from .. import _track_ref

    rows = []
    for video in videos:
        reference = track_run(video)
        for stride in strides:
            run = track_run(video, stride)
            rows.append({"video": video.name, "frames": len(video), "fps": video.fps, "stride": stride,
                         **compare_runs(reference, run), "pan": pan(video, stride)})
    return {"rows": rows, "cost": tracker_cost(), "cost_numpy": tracker_cost(kernels=_track_ref),
            "strides": list(strides)}


def identity_targets(tracking: Optional[dict]) -> List[dict]:
    """The (name, value, threshold, op, unit, note) of the two tracker targets, from a ``measure_identities`` result
    (None: not measured): the lowest IDF1 at stride 5 over the videos, and the cost per result for 10 people."""
    rows = [row for row in (tracking or {}).get("rows", []) if row["stride"] == 5]
    cost = (tracking or {}).get("cost")
    note = "" if tracking else "not measured"
    return [
        {"name": "tracker IDF1 on every 5th frame against the full-rate tracks (lowest over the videos)",
         "value": min(row["idf1"] for row in rows) if rows else None, "threshold": TARGET_IDF1, "op": ">=",
         "unit": "share", "note": note if not rows else ""},
        {"name": f"tracker update, {COST_PEOPLE} people in view (p50 ms)", "value": cost["ms_p50"] if cost else None,
         "threshold": TARGET_TRACKER_MS, "op": "<=", "unit": "ms", "note": note},
    ]
