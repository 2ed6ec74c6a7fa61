"""Identities over time: match each result's poses to tracks and report enter/exit events, in seconds, not frames.

The tracker sees whatever results the pipeline delivers: every frame of a file, or every 4th to 6th frame of a camera
when the device keeps up with only a few inferences per second. Every parameter is therefore in seconds or in person
heights, and motion is measured in pixels per second over the real time between two results (the ``media_time`` of
each call: a file's own timestamps, a live source's clock).

The algorithm, for each call of :meth:`Tracker.update`:

1. **Predict.** Every track moves by its velocity (pixels per second, a running mean of its last displacements)
   times the time since it was last seen. A new candidate has no velocity yet and stays where it was.
2. **Compare.** Each prediction is compared with each detection by a similarity in [0, 1]: the mean of a keypoint
   similarity and the overlap (IoU) of the boxes. The keypoint similarity is COCO's OKS (per-keypoint sigmas,
   scaled by the person's area) whose tolerance grows with the time since the track was last seen
   (``motion_noise`` person heights per second, ``max_speed`` for a track without a velocity yet), so that a first
   match, or one after a long step, needs no velocity. With fewer than ``min_common_keypoints`` keypoints in
   common, the box overlap alone. A gate rules a pair out when the boxes' centres lie farther apart than
   ``gate + max_speed × elapsed time`` person heights (the track's).
3. **Associate, in the spirit of ByteTrack.** Optimal assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``)
   of the confident detections (``confidence``: sum of keypoint scores over 18 at least ``high_confidence``) to the
   people (born tracks, including those lost for less than ``max_age``: a person re-found keeps the id); then of
   the remaining low-confidence detections to the remaining people; then of what is left to the candidates. A pair
   is kept only at ``min_similarity`` or more. Confident detections still unmatched start new candidates; the
   low-confidence ones get id -1.
4. **Birth and death (norfair's hysteresis, in time).** A candidate becomes a person (new id, an ``enter`` event)
   once followed for ``birth_time`` seconds, matched at least ``min_hits`` times and in most of its results within
   the last ``hit_window`` seconds; one missed more often than matched, or not seen for ``hit_window``, is dropped
   silently. A person dies (an ``exit`` event) when
   not matched for more than ``max_age`` seconds and at least ``min_misses`` results in a row.

Decoder fragments (one body split in two, see ``fragment_distance``) never match and never start a track. With
``smoothing``, matched keypoints are One-Euro filtered in place. Ids increase over the tracker's life, across
:meth:`Tracker.close` and :meth:`Tracker.reset`.

The arithmetic of steps 1, 2 and 4 on the tracks' arrays (the detections' boxes and fragments, the similarity
matrix, the matched tracks' velocity and keypoints) is in :data:`KERNELS`: the compiled ``pose_fast._track``, or
its NumPy reference ``pose_fast._track_ref``; this module keeps the decisions.

Example
-------
>>> tracker = Tracker(on_event=lambda kind, tid, frame, ts, count: print(kind, tid))
>>> ids = tracker.update(poses, frame_index, time.time(), media_time=seconds_into_the_video)  # doctest: +SKIP
>>> tracker.close(last_frame_index, time.time())                                               # doctest: +SKIP
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import _track_ref
from ._track_ref import KEYPOINT_SIGMAS
from .skeleton import NUM_KEYPOINTS

__all__ = ["Tracker", "OneEuroFilter", "EventCallback", "KEYPOINT_SIGMAS", "KERNELS"]

KERNEL_API = 1  # the kernels' interface: pose_fast._track (compiled) or pose_fast._track_ref must say the same


def _compiled_kernels():
    """``pose_fast._track``, compiled at install, when it imports and speaks this interface; else the reference."""
    try:
        from . import _track
    except ImportError:
        return _track_ref
    return _track if getattr(_track, "KERNEL_API", None) == KERNEL_API else _track_ref


#: The module whose ``describe``, ``fragments``, ``similarity`` and ``advance`` trackers made from now on use:
#: :mod:`pose_fast._track` (C, built by ``pip install``) or its reference :mod:`pose_fast._track_ref` (NumPy, 3-4×
#: slower, identical results to rounding) where no compiler was found.
KERNELS = _compiled_kernels()

#: ``on_event(kind, track_id, frame_index, timestamp, people_count)``; kind is ``"enter"`` or ``"exit"``.
EventCallback = Callable[[str, int, int, float, int], None]


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
    """What the tracker knows of one track besides its arrays (keypoints, velocity, time last seen)."""

    __slots__ = ("id", "born", "looks", "misses", "first_frame", "first_time", "first_seen", "last_frame",
                 "last_time", "filter", "filter_vis", "matched_now")

    def __init__(self, frame_index, timestamp, clock, filter_):
        self.id = -1
        self.born = False
        self.looks = [(clock, True)]  # (clock, matched) of each result since the candidate appeared (candidates)
        self.misses = 0               # results in a row without a match
        self.first_frame, self.first_time = frame_index, timestamp
        self.first_seen = clock       # the tracker's clock when first seen
        self.last_frame, self.last_time = frame_index, timestamp
        self.filter = filter_
        self.filter_vis = None
        self.matched_now = True


class Tracker:
    """Stable person ids across results, with hysteresis in time and enter/exit events (algorithm: module docstring).

    Parameters
    ----------
    on_event : callable or None
        ``on_event(kind, track_id, frame_index, timestamp, people_count)``, called in the thread that calls
        :meth:`update`/:meth:`close`. ``kind`` is ``"enter"`` when an id is born and ``"exit"`` when it dies.
        ``people_count`` is the number of people (born tracks) in view after the event. An enter is stamped with
        the frame and ``timestamp`` the person was first seen; an exit with the last frame and ``timestamp`` they
        were seen. Events are emitted in the order they are decided (an exit may carry an earlier time than the
        enter emitted just before it).
    birth_time : float
        Seconds a candidate must be followed before it becomes a person (default 0.2: three frames at 10 fps, two
        results 0.4 s apart at a few inferences per second).
    min_hits : int
        It must also have been matched at least this many times (default 2), and in more than half of its results
        within the last ``hit_window`` seconds. ``min_hits=1, birth_time=0`` makes every confident detection a
        person at once.
    hit_window : float
        Seconds, see ``min_hits`` (default 1.0). A candidate not seen for this long, or missed more often than
        matched, is dropped without an event.
    max_age : float
        Seconds a person may go unseen before the id dies (default 1.0); until then the person can be re-found and
        keeps the id.
    min_misses : int
        A person also needs at least this many results in a row without a match to die (default 2), so that one
        missed result never ends a person, however slow the results come.
    min_similarity : float
        Least similarity in (0, 1] for a detection to continue a track (default 0.2).
    gate, max_speed : float
        A detection is never matched to a track whose predicted box centre lies farther than ``gate + max_speed *
        dt`` track heights from the detection's box centre, ``dt`` being the seconds since the track was last seen
        (defaults 0.5 and 2.0 heights per second).
    motion_noise : float
        Person heights per second by which a person may stray from the predicted path (default 0.5): the keypoint
        similarity's tolerance grows by this much per second since the track was last seen (by ``max_speed`` for a
        candidate seen once, whose velocity is not known yet).
    high_confidence : float
        Detections whose confidence (sum of keypoint scores / 18, in [0, 1]) is at least this are matched first
        and may start tracks (default 0.15); the others only continue tracks (ByteTrack's second stage).
    keypoint_threshold : float
        Keypoints with a score at or below this are treated as missing.
    min_common_keypoints : int
        Keypoints visible in both the track and the detection needed for the keypoint similarity; fewer means the
        box overlap alone.
    fragment_distance : float
        Two poses of one result that place the same keypoint closer than this fraction of the taller one's height,
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

    def __init__(self, on_event: Optional[EventCallback] = None, *, birth_time: float = 0.2, min_hits: int = 2,
                 hit_window: float = 1.0,
                 max_age: float = 1.0, min_misses: int = 2, min_similarity: float = 0.2, gate: float = 0.5,
                 max_speed: float = 2.0, motion_noise: float = 0.5, high_confidence: float = 0.15,
                 keypoint_threshold: float = 0.0, min_common_keypoints: int = 3, fragment_distance: float = 0.05,
                 smoothing: bool = False,
                 min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0):
        if on_event is not None and not callable(on_event):
            raise ValueError(f"on_event must be a callable(kind, track_id, frame_index, timestamp, people_count) "
                             f"or None, got {on_event!r}")
        self.on_event = on_event
        self.birth_time = _check_float("birth_time", birth_time, 0.0, low_open=False)
        self.min_hits = _check_int("min_hits", min_hits, 1)
        self.hit_window = _check_float("hit_window", hit_window, 0.0)
        self.max_age = _check_float("max_age", max_age, 0.0)
        self.min_misses = _check_int("min_misses", min_misses, 1)
        self.min_similarity = _check_float("min_similarity", min_similarity, 0.0, 1.0)
        self.gate = _check_float("gate", gate, 0.0)
        self.max_speed = _check_float("max_speed", max_speed, 0.0, low_open=False)
        self.motion_noise = _check_float("motion_noise", motion_noise, 0.0, low_open=False)
        self.high_confidence = _check_float("high_confidence", high_confidence, 0.0, 1.0, low_open=False)
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
        self._next_id = 1
        self._kernels = KERNELS
        self.reset()

    # -- public state -----------------------------------------------------------------------------------------
    @property
    def people_count(self) -> int:
        """People (born tracks) currently in view, including those missed for less than ``max_age``."""
        return sum(1 for t in self._tracks if t.born)

    @property
    def active_ids(self) -> List[int]:
        """Ids of the born tracks, in birth order."""
        return sorted(t.id for t in self._tracks if t.born)

    # -- main entry points --------------------------------------------------------------------------------------
    def update(self, poses, frame_index: int, timestamp: float, media_time: Optional[float] = None) -> np.ndarray:
        """Match this result's poses to tracks.

        Parameters
        ----------
        poses : pose_fast.poses.Poses
            The people found in the frame (``keypoints`` of shape (P, 18, 3)).
        frame_index : int
            Index of the frame in its source; must increase from call to call (gaps are fine).
        timestamp : float
            Seconds since the epoch (``time.time()``) of the frame: what the events are stamped with.
        media_time : float, optional
            Seconds on the source's own time line (a file's position, a live source's monotonic clock), which
            every time parameter and the motion are measured in; ``timestamp`` when not given. Only its increases
            count, so a clock stepped back (NTP) ages nobody and is not an error.

        Returns
        -------
        ndarray, shape (P,), int64
            The track id of each pose, or -1 while its track is not yet born (and for fragments).
        """
        keypoints = self._check_call(poses, frame_index, timestamp)
        media = timestamp if media_time is None else _check_float("media_time", media_time, -math.inf)
        if self._last_media is not None:
            self._clock += max(0.0, media - self._last_media)  # a clock stepped back ages nobody
        self._last_frame, self._last_time, self._last_media = int(frame_index), float(timestamp), media
        now = self._clock
        n_det = keypoints.shape[0]
        tracks = self._tracks
        for track in tracks:
            track.matched_now = False

        kernels = self._kernels
        visible, d_box, confidence = kernels.describe(keypoints, self.keypoint_threshold)
        scores = getattr(poses, "scores", None)
        scores = (np.asarray(scores, np.float64) if scores is not None and len(scores) == n_det
                  else np.zeros(n_det))
        fragment = kernels.fragments(keypoints, visible, d_box, scores, self.fragment_distance)
        high = (confidence >= self.high_confidence) & ~fragment
        match = np.full(n_det, -1, dtype=np.intp)  # detection -> index into self._tracks
        if tracks and n_det:
            sim = kernels.similarity(self._kp, self._box, self._vel, self._moving, self._seen, now, keypoints,
                                     visible, d_box, self.gate, self.max_speed, self.motion_noise,
                                     self.min_common_keypoints)
            born = np.fromiter((t.born for t in tracks), bool, len(tracks))
            free = ~fragment
            taken = np.zeros(len(tracks), bool)
            # people first, confident detections, then low-confidence ones; then the candidates, whatever is left
            self._assign(sim, born, high, match, free, taken)
            if (free & ~high).any():
                self._assign(sim, born, free, match, free, taken)
            if not born.all():
                self._assign(sim, ~born, free, match, free, taken)

        ids = np.full(n_det, -1, dtype=np.int64)
        births = []
        matched = np.flatnonzero(match >= 0)
        if matched.size:
            self._continue(match[matched], matched, keypoints, visible, d_box, now, frame_index, timestamp)
        start = np.flatnonzero((match < 0) & high)
        if start.size:
            self._start(start, keypoints, visible, d_box, now, frame_index, timestamp, match)
        for d in np.flatnonzero(match >= 0).tolist():
            track = self._tracks[match[d]]
            if self.smoothing:
                self._smooth(poses.keypoints, d, track, visible[d], media)
            if not track.born and self._can_be_born(track, now):
                track.born = True
                track.id = self._next_id
                self._next_id += 1
                births.append(track)
            ids[d] = track.id

        deaths, keep = [], []
        for i, track in enumerate(self._tracks):
            unseen = now - self._seen[i]
            if not track.matched_now:
                track.misses += 1
                if not track.born:
                    track.looks.append((now, False))
            if track.born:
                if track.misses >= self.min_misses and unseen > self.max_age:
                    deaths.append(track)
                    continue
            else:
                self._trim(track, now)
                hits = sum(hit for _, hit in track.looks)
                if unseen >= self.hit_window or 2 * hits < len(track.looks):
                    continue  # a candidate that is mostly not there: dropped without an event
            keep.append(i)
        if len(keep) < len(self._tracks):
            self._tracks = [self._tracks[i] for i in keep]
            self._kp, self._box, self._vel, self._moving, self._seen = (
                a[keep] for a in (self._kp, self._box, self._vel, self._moving, self._seen))

        count = self.people_count - len(births) + len(deaths)
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
        born = sorted((t for t in self._tracks if t.born), key=lambda t: t.id)
        last_frame = self._last_frame
        self._clear_tracks()
        count = len(born)
        for track in born:
            count -= 1
            if track.matched_now and track.last_frame == last_frame:
                self._emit("exit", track.id, max(int(frame_index), track.last_frame),
                           max(timestamp, track.last_time), count)
            else:
                self._emit("exit", track.id, track.last_frame, track.last_time, count)

    def reset(self) -> None:
        """Forget every track and the last frame and time, without events (:meth:`close` emits the exits): for a
        new stream, e.g. a camera reopened after a loss, whose frame indices may start again at 0. Ids keep
        increasing."""
        self._clear_tracks()
        self._last_frame = None
        self._last_time = None
        self._last_media = None
        self._clock = 0.0

    # -- internals --------------------------------------------------------------------------------------------
    def _clear_tracks(self):
        self._tracks: List[_Track] = []
        # one row per track: last matched keypoints (raw, missing ones 0), their box, velocity (pixels per
        # second), whether the velocity was ever measured, and the tracker's clock when last seen
        self._kp = np.zeros((0, NUM_KEYPOINTS, 3))
        self._box = np.zeros((0, 4))  # the box of those keypoints
        self._vel = np.zeros((0, 2))
        self._moving = np.zeros(0, bool)
        self._seen = np.zeros(0)

    def _check_call(self, poses, frame_index, timestamp):
        keypoints = getattr(poses, "keypoints", None)
        if not isinstance(keypoints, np.ndarray) or keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_KEYPOINTS, 3):
            raise ValueError(f"poses must be a pose_fast.poses.Poses with keypoints of shape (P, 18, 3), "
                             f"got {type(poses).__name__}")
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
            raise ValueError(f"frame_index must be an integer, got {frame_index!r}")
        _check_float("timestamp", timestamp, -math.inf)
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frame_index must increase from one update to the next: got {frame_index} after "
                             f"{self._last_frame}")
        return np.ascontiguousarray(keypoints, dtype=np.float64)

    def _assign(self, sim, rows, cols, match, free, taken):
        """Optimal assignment of the tracks where ``rows`` and not ``taken`` to the detections where ``cols`` and
        ``free``; pairs under ``min_similarity`` stay unmatched. Updates ``match``, ``free`` and ``taken``."""
        r = np.flatnonzero(rows & ~taken)
        c = np.flatnonzero(cols & free)
        if not r.size or not c.size:
            return
        sub = sim[r[:, None], c]
        ri, ci = linear_sum_assignment(sub, maximize=True)
        good = sub[ri, ci] >= self.min_similarity
        r, c = r[ri[good]], c[ci[good]]
        match[c] = r
        free[c] = False
        taken[r] = True

    def _continue(self, rows, dets, keypoints, visible, d_box, now, frame_index, timestamp):
        """Matched tracks ``rows`` take the detections ``dets``: velocity, keypoints, time last seen."""
        self._kernels.advance(self._kp, self._box, self._vel, self._moving, self._seen, rows, dets, keypoints, visible,
                              d_box, now)
        for i in rows.tolist():
            track = self._tracks[i]
            track.last_frame, track.last_time = int(frame_index), float(timestamp)
            track.misses = 0
            track.matched_now = True
            if not track.born:
                track.looks.append((now, True))

    def _start(self, dets, keypoints, visible, box, now, frame_index, timestamp, match):
        """New candidates from the detections ``dets``."""
        first = len(self._tracks)
        for _ in range(dets.size):
            self._tracks.append(_Track(int(frame_index), float(timestamp), now,
                                       OneEuroFilter(*self._filter_args) if self.smoothing else None))
        match[dets] = np.arange(first, first + dets.size)
        new = keypoints[dets] * visible[dets][:, :, None]
        self._kp = np.concatenate([self._kp, new])
        self._box = np.concatenate([self._box, box[dets]])
        self._vel = np.concatenate([self._vel, np.zeros((dets.size, 2))])
        self._moving = np.concatenate([self._moving, np.zeros(dets.size, bool)])
        self._seen = np.concatenate([self._seen, np.full(dets.size, now)])

    def _trim(self, track, now):
        """Keep a candidate's looks of the last ``hit_window`` seconds, and at least its last ``min_hits``."""
        looks = track.looks
        cut = 0
        while len(looks) - cut > self.min_hits and now - looks[cut][0] > self.hit_window + 1e-9:
            cut += 1
        if cut:
            del looks[:cut]

    def _can_be_born(self, track, now):
        self._trim(track, now)
        hits = [t for t, hit in track.looks if hit]
        return (len(hits) >= self.min_hits and 2 * len(hits) > len(track.looks)
                and now - track.first_seen >= self.birth_time - 1e-6)

    def _smooth(self, out, d, track, vis, t):
        if not out.flags.writeable:
            raise ValueError("smoothing=True writes the smoothed keypoints into poses.keypoints, which is read-only")
        filt = track.filter
        if track.filter_vis is not None:
            # a keypoint that was missing in the previous or this detection starts afresh
            fresh = ~(vis & track.filter_vis)
            filt.reset(np.repeat(fresh[:, None], 2, axis=1))
        track.filter_vis = vis.copy()
        smoothed = filt(out[d, :, :2].astype(np.float64), t)
        out[d, vis, :2] = smoothed[vis]

    def _emit(self, kind, track_id, frame_index, timestamp, count):
        if self.on_event is not None:
            self.on_event(kind, int(track_id), int(frame_index), float(timestamp), int(count))

