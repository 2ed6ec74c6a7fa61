"""Identities over time: match each frame's poses to tracks, with hysteresis, and report enter/exit events.

The tracker follows norfair's idea: a new identity is *born* only after it was seen in several recent frames, and it
*dies* only after it was missed for a while. One missed detection therefore neither ends a person nor starts a new
one, and a flickering false detection never becomes a person.

Matching uses an OKS-style keypoint similarity (COCO's object keypoint similarity, computed between a track's
predicted keypoints and a detection) and falls back to the overlap of the boxes when the two share too few visible
keypoints. Tracks move with a constant-velocity prediction, so people who cross keep their identities.

Example
-------
>>> tracker = Tracker(on_event=lambda kind, tid, frame, ts, count: print(kind, tid))
>>> ids = tracker.update(poses, frame_index, time.time())   # doctest: +SKIP
>>> tracker.close(last_frame_index, time.time())             # doctest: +SKIP
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional

import numpy as np

from .skeleton import NUM_KEYPOINTS

__all__ = ["Tracker", "OneEuroFilter", "EventCallback", "KEYPOINT_SIGMAS"]

#: ``on_event(kind, track_id, frame_index, timestamp, people_count)``; kind is ``"enter"`` or ``"exit"``.
EventCallback = Callable[[str, int, int, float, int], None]

#: COCO's per-keypoint OKS sigmas in BODY_18 order; the neck (no COCO counterpart) takes the shoulders' value.
KEYPOINT_SIGMAS = np.array(
    [0.026, 0.079, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089,
     0.025, 0.025, 0.035, 0.035], dtype=np.float64)
_OKS_K2 = (2.0 * KEYPOINT_SIGMAS) ** 2  # COCO's "vars"


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be an integer {bound}, got {value}")
    return int(value)


def _check_float(name, value, low, high=None, low_open=True, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    bad = (not math.isfinite(value) or (value <= low if low_open else value < low)
           or (high is not None and (value >= high if high_open else value > high)))
    if bad:
        left = "(" if low_open else "["
        right = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
        raise ValueError(f"{name} must be a finite number in {left}{low}, {right}, got {value}")
    return value


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) over an array of values, e.g. a person's (18, 2) keypoints.

    Parameters
    ----------
    min_cutoff : float
        Cut-off frequency (Hz) at rest; lower means steadier and laggier.
    beta : float
        Speed coefficient; higher means less lag when moving fast.
    d_cutoff : float
        Cut-off frequency (Hz) for the derivative.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0):
        self.min_cutoff = _check_float("min_cutoff", min_cutoff, 0.0)
        self.beta = _check_float("beta", beta, 0.0, low_open=False)
        self.d_cutoff = _check_float("d_cutoff", d_cutoff, 0.0)
        self._x = None
        self._dx = None
        self._t = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def reset(self, mask=None):
        """Forget the history (of the entries where ``mask`` is true, or all of it)."""
        if mask is None or self._x is None:
            self._x = self._dx = self._t = None
        else:
            self._dx[mask] = 0.0
            self._x[mask] = np.nan

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter ``x`` observed at time ``t`` (seconds); returns the filtered values (a new array)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if not dt > 0:
            dt = 1.0 / 30.0
        self._t = t
        fresh = np.isnan(self._x)
        prev = np.where(fresh, x, self._x)
        dx = (x - prev) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))
        self._x = a * x + (1.0 - a) * prev
        return self._x.copy()


class _Track:
    __slots__ = ("id", "keypoints", "velocity", "box_size", "history", "misses", "first_frame", "first_time",
                 "last_frame", "last_time", "last_clock", "born", "filter", "filter_vis", "matched_now")

    def __init__(self, keypoints, frame_index, timestamp, clock, filter_):
        self.id = -1
        self.keypoints = keypoints.astype(np.float64)  # (18, 3) last matched detection (raw)
        self.velocity = np.zeros(2)                    # pixels per source frame
        self.history = [True]                          # matched or not, one entry per update (most recent last)
        self.misses = 0
        self.first_frame, self.first_time = frame_index, timestamp
        self.last_frame, self.last_time = frame_index, timestamp
        self.last_clock = clock  # the tracker's monotonic clock when last seen (ages tracks)
        self.born = False
        self.filter = filter_
        self.filter_vis = None
        self.matched_now = True

    def predict(self, frame_index):
        kp = self.keypoints.copy()
        kp[:, :2] += self.velocity * (frame_index - self.last_frame)
        return kp


class Tracker:
    """Stable person ids across frames, with hysteresis and enter/exit events.

    Parameters
    ----------
    on_event : callable or None
        ``on_event(kind, track_id, frame_index, timestamp, people_count)``, called in the thread that calls
        :meth:`update`/:meth:`close`. ``kind`` is ``"enter"`` when an id is born and ``"exit"`` when it dies.
        ``people_count`` is the number of people (born tracks) in view after the event. An enter is stamped with
        the frame and time the person was first seen; an exit with the last frame and time they were seen.
        Events are emitted in the order they are decided (an exit may carry an earlier time than the enter
        emitted just before it).
    min_hits : int
        A new person is born once matched in ``min_hits`` of the last ``hit_window`` updates (default 3 of 5).
        ``min_hits=1`` makes every detection a person at once.
    hit_window : int
        See ``min_hits``; a candidate that can no longer reach ``min_hits`` is dropped silently.
    max_age : float
        Seconds a born person may go unseen before the id dies (default 1.0), measured with the ``timestamp``
        passed to :meth:`update`.
    min_misses : int
        An id also needs at least this many consecutive missed updates to die (default 2), so that a single missed
        frame never ends a person, whatever the frame rate.
    min_similarity : float
        Least similarity in (0, 1] (OKS, or box IoU for the fallback) for a detection to continue a track.
    keypoint_threshold : float
        Keypoints with a score at or below this are treated as missing.
    min_common_keypoints : int
        Keypoints visible in both the track and the detection needed for OKS; fewer means box matching.
    fragment_distance : float
        Two poses of one frame that place the same keypoint closer than this fraction of the taller one's height,
        and otherwise show mostly different keypoints (at most a third of the weaker one's are in both), are taken
        as one person split in two by the decoder: the lower-scoring one is a fragment, gets id -1 and never starts
        a track (default 0.05; 0 turns this off).
    smoothing : bool
        When true, :meth:`update` replaces the x, y of each matched pose's visible keypoints with One-Euro
        filtered values, in place (``poses.keypoints`` must be writeable).
    min_cutoff, beta, d_cutoff : float
        One-Euro filter parameters (see :class:`OneEuroFilter`), used when ``smoothing`` is true.

    Raises
    ------
    ValueError
        With a one-line message naming the bad parameter and the value given.
    """

    def __init__(self, on_event: Optional[EventCallback] = None, *, min_hits: int = 3, hit_window: int = 5,
                 max_age: float = 1.0, min_misses: int = 2, min_similarity: float = 0.2,
                 keypoint_threshold: float = 0.0, min_common_keypoints: int = 3, fragment_distance: float = 0.05,
                 smoothing: bool = False,
                 min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0):
        if on_event is not None and not callable(on_event):
            raise ValueError(f"on_event must be a callable(kind, track_id, frame_index, timestamp, people_count) "
                             f"or None, got {on_event!r}")
        self.on_event = on_event
        self.min_hits = _check_int("min_hits", min_hits, 1)
        self.hit_window = _check_int("hit_window", hit_window, 1)
        if self.hit_window < self.min_hits:
            raise ValueError(f"hit_window must be >= min_hits ({self.min_hits}), got {self.hit_window}")
        self.max_age = _check_float("max_age", max_age, 0.0)
        self.min_misses = _check_int("min_misses", min_misses, 1)
        self.min_similarity = _check_float("min_similarity", min_similarity, 0.0, 1.0)
        self.keypoint_threshold = _check_float("keypoint_threshold", keypoint_threshold, 0.0, 1.0,
                                               low_open=False, high_open=True)
        self.min_common_keypoints = _check_int("min_common_keypoints", min_common_keypoints, 1, NUM_KEYPOINTS)
        self.fragment_distance = _check_float("fragment_distance", fragment_distance, 0.0, 1.0, low_open=False)
        if not isinstance(smoothing, (bool, np.bool_)):
            raise ValueError(f"smoothing must be True or False, got {smoothing!r}")
        self.smoothing = bool(smoothing)
        # validate the filter parameters even when smoothing is off, so a typo shows at once
        OneEuroFilter(min_cutoff, beta, d_cutoff)
        self._filter_args = (min_cutoff, beta, d_cutoff)
        self._tracks: List[_Track] = []
        self._next_id = 1
        self._last_frame = None
        self._last_time = None
        self._clock = 0.0

    # -- public state -----------------------------------------------------------------------------------------
    @property
    def people_count(self) -> int:
        """People (born tracks) currently in view, including those missed for less than ``max_age``."""
        return sum(1 for t in self._tracks if t.born)

    @property
    def active_ids(self) -> List[int]:
        """Ids of the born tracks, in birth order."""
        return [t.id for t in self._tracks if t.born]

    # -- main entry points --------------------------------------------------------------------------------------
    def update(self, poses, frame_index: int, timestamp: float) -> np.ndarray:
        """Match this frame's poses to tracks.

        Parameters
        ----------
        poses : pose_fast.poses.Poses
            The people found in the frame (``keypoints`` of shape (P, 18, 3)).
        frame_index : int
            Index of the frame in its source; must increase from call to call (gaps are fine).
        timestamp : float
            Seconds since the epoch (``time.time()``) of the frame. Ages are measured from the increases of the
            timestamps, so a wall clock stepped back (NTP) ages nobody and is not an error.

        Returns
        -------
        ndarray, shape (P,), int64
            The track id of each pose, or -1 while its track is not yet born.
        """
        keypoints = self._check_call(poses, frame_index, timestamp)
        if self._last_time is not None:
            self._clock += max(0.0, timestamp - self._last_time)  # a wall-clock step back ages nobody
        self._last_frame, self._last_time = int(frame_index), float(timestamp)
        n_det = keypoints.shape[0]
        for track in self._tracks:
            track.matched_now = False

        visible = keypoints[:, :, 2] > self.keypoint_threshold
        fragment = self._fragments(keypoints, visible, getattr(poses, "scores", None))
        match = np.full(n_det, -1, dtype=np.intp)  # detection -> index into self._tracks
        if self._tracks and n_det:
            sim = self._similarity(keypoints, visible, frame_index)
            sim[:, fragment] = -1.0  # never matched
            taken = np.zeros(n_det, dtype=bool)
            # born tracks choose first, so that a flickering candidate never steals a person's detection
            for born in (True, False):
                rows = [i for i, t in enumerate(self._tracks) if t.born == born]
                if rows:
                    self._greedy(sim, rows, taken, match)

        ids = np.full(n_det, -1, dtype=np.int64)
        births = []
        for d in range(n_det):
            if fragment[d]:
                continue
            if match[d] >= 0:
                track = self._tracks[match[d]]
                self._continue(track, keypoints[d], visible[d], frame_index, timestamp)
            else:
                track = _Track(np.where(visible[d][:, None], keypoints[d], 0.0), frame_index, timestamp,
                               self._clock, OneEuroFilter(*self._filter_args) if self.smoothing else None)
                self._tracks.append(track)
                match[d] = len(self._tracks) - 1
            if self.smoothing:
                self._smooth(poses.keypoints, d, track, visible[d], timestamp)
            if not track.born and sum(track.history[-self.hit_window:]) >= self.min_hits:
                track.born = True
                track.id = self._next_id
                self._next_id += 1
                births.append(track)
            ids[d] = track.id

        deaths = []
        keep = []
        for track in self._tracks:
            if not track.matched_now:
                track.history.append(False)
                track.misses += 1
            del track.history[:-self.hit_window]
            if track.born:
                if (track.misses >= self.min_misses and self._clock - track.last_clock > self.max_age):
                    deaths.append(track)
                    continue
            elif track.misses > self.hit_window - self.min_hits:
                continue  # a candidate that can no longer be born: dropped without an event
            keep.append(track)
        self._tracks = keep

        count = self.people_count - len(births)
        count += len(deaths)
        for track in deaths:
            count -= 1
            self._emit("exit", track.id, track.last_frame, track.last_time, count)
        for track in births:
            count += 1
            self._emit("enter", track.id, track.first_frame, track.first_time, count)
        return ids

    def close(self, frame_index: int, timestamp: float) -> None:
        """End the stream: every person still in view exits.

        A person matched in the latest update exits at ``frame_index``/``timestamp`` (the end of the observation);
        one already missed for a while exits at the frame and time last seen. Idempotent; the tracker can be used
        again afterwards (new people get new ids).
        """
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
            raise ValueError(f"frame_index must be an integer, got {frame_index!r}")
        timestamp = _check_float("timestamp", timestamp, -math.inf)
        born = [t for t in self._tracks if t.born]
        self._tracks = []
        count = len(born)
        for track in born:
            count -= 1
            if track.matched_now and track.last_frame == self._last_frame:
                self._emit("exit", track.id, max(int(frame_index), track.last_frame),
                           max(timestamp, track.last_time), count)
            else:
                self._emit("exit", track.id, track.last_frame, track.last_time, count)

    # -- internals --------------------------------------------------------------------------------------------
    def _check_call(self, poses, frame_index, timestamp):
        keypoints = getattr(poses, "keypoints", None)
        if not isinstance(keypoints, np.ndarray) or keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_KEYPOINTS, 3):
            raise ValueError(f"poses must be a pose_fast.poses.Poses with keypoints of shape (P, 18, 3), "
                             f"got {type(poses).__name__}")
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
            raise ValueError(f"frame_index must be an integer, got {frame_index!r}")
        timestamp = _check_float("timestamp", timestamp, -math.inf)
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frame_index must increase from one update to the next: got {frame_index} after "
                             f"{self._last_frame}")
        return keypoints.astype(np.float64, copy=False)

    def _fragments(self, keypoints, visible, scores):
        """(P,) bool: poses that repeat a keypoint of a better pose at (nearly) the same place."""
        n = keypoints.shape[0]
        out = np.zeros(n, dtype=bool)
        if n < 2 or self.fragment_distance == 0:
            return out
        box = _boxes(keypoints[:, :, :2], visible)
        height = box[:, 3] - box[:, 1]
        dist = np.sqrt(((keypoints[:, None, :, :2] - keypoints[None, :, :, :2]) ** 2).sum(-1))  # (P, P, 18)
        common = visible[:, None, :] & visible[None, :, :]
        limit = self.fragment_distance * np.maximum(height[:, None], height[None, :])
        close = (common & (dist < limit[:, :, None])).any(-1)
        np.fill_diagonal(close, False)
        if not close.any():
            return out
        score = np.asarray(scores, np.float64) if scores is not None and len(scores) == n else np.zeros(n)
        shared = common.sum(-1)
        seen = visible.sum(1)
        # best first: score, then visible keypoints, then input order
        order = sorted(range(n), key=lambda i: (-score[i], -int(seen[i]), i))
        for rank, i in enumerate(order):
            if not out[i]:
                for j in order[rank + 1:]:
                    # a fragment holds mostly keypoints the better pose lacks (the other half of one body); two
                    # people standing close, or one half hidden behind the other, share most of their keypoints
                    if close[i, j] and 3 * shared[i, j] <= seen[j]:
                        out[j] = True
        return out

    def _similarity(self, keypoints, visible, frame_index):
        """(T, P) similarity between each track's predicted pose and each detection."""
        pred = np.stack([t.predict(frame_index) for t in self._tracks])        # (T, 18, 3)
        t_vis = pred[:, :, 2] > 0                                              # (T, 18)
        t_box = _boxes(pred[:, :, :2], t_vis)                                  # (T, 4)
        d_box = _boxes(keypoints[:, :, :2], visible)                           # (P, 4)
        area = np.maximum((t_box[:, 2] - t_box[:, 0]) * (t_box[:, 3] - t_box[:, 1]), 32.0 * 32.0)  # (T,)
        d2 = ((pred[:, None, :, :2] - keypoints[None, :, :, :2]) ** 2).sum(-1)  # (T, P, 18)
        e = d2 / (2.0 * area[:, None, None] * _OKS_K2[None, None, :])
        common = t_vis[:, None, :] & visible[None, :, :]                       # (T, P, 18)
        n_common = common.sum(-1)
        # averaged over the keypoints seen in either (COCO divides by the ground truth's): a partial detection
        # (a stray leg) must not outscore the whole person it overlaps
        n_either = (t_vis[:, None, :] | visible[None, :, :]).sum(-1)
        oks = np.where(common, np.exp(-e), 0.0).sum(-1) / np.maximum(n_either, 1)
        iou = _iou(t_box, d_box)
        sim = np.where(n_common >= self.min_common_keypoints, oks, iou)
        return sim

    def _greedy(self, sim, rows, taken, match):
        sub = sim[rows]
        order = np.argsort(-sub, axis=None, kind="stable")
        used_rows = set()
        for flat in order:
            r, d = divmod(int(flat), sub.shape[1])
            if sub[r, d] < self.min_similarity:
                break
            if r in used_rows or taken[d]:
                continue
            used_rows.add(r)
            taken[d] = True
            match[d] = rows[r]

    def _continue(self, track, kp, vis, frame_index, timestamp):
        new = np.where(vis[:, None], kp, 0.0)
        common = vis & (track.keypoints[:, 2] > 0)
        frames = frame_index - track.last_frame
        if common.any() and frames > 0:
            step = (new[common, :2] - track.keypoints[common, :2]).mean(0) / frames
            track.velocity = 0.5 * track.velocity + 0.5 * step
        track.keypoints = new
        track.last_frame, track.last_time, track.last_clock = int(frame_index), float(timestamp), self._clock
        track.history.append(True)
        track.misses = 0
        track.matched_now = True

    def _smooth(self, out, d, track, vis, timestamp):
        if not out.flags.writeable:
            raise ValueError("smoothing=True writes the smoothed keypoints into poses.keypoints, which is read-only")
        filt = track.filter
        if track.filter_vis is not None:
            # a keypoint that was missing in the previous or this detection starts afresh
            fresh = ~(vis & track.filter_vis)
            filt.reset(np.repeat(fresh[:, None], 2, axis=1))
        track.filter_vis = vis.copy()
        smoothed = filt(out[d, :, :2].astype(np.float64), timestamp)
        out[d, vis, :2] = smoothed[vis]

    def _emit(self, kind, track_id, frame_index, timestamp, count):
        if self.on_event is not None:
            self.on_event(kind, int(track_id), int(frame_index), float(timestamp), int(count))


def _boxes(xy, vis):
    """(N, 4) boxes (x0, y0, x1, y1) of the visible points; zeros for none."""
    big = np.where(vis[..., None], xy, np.inf)
    small = np.where(vis[..., None], xy, -np.inf)
    lo = big.min(1)
    hi = small.max(1)
    box = np.concatenate([lo, hi], axis=1)
    box[~vis.any(1)] = 0.0
    return box


def _iou(a, b):
    """(A, B) IoU of two box sets; boxes of zero area get a small margin so that single points can overlap."""
    pad = 8.0
    a = a + np.array([-pad, -pad, pad, pad])
    b = b + np.array([-pad, -pad, pad, pad])
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
