"""Zones and lines: where a person is, not only that someone is in view.

A **zone** is a polygon, a **line** a segment, both in normalised coordinates (0-1 of the frame's width and
height, so they survive a change of resolution). Each person has one **anchor** point, taken from the keypoints
(:func:`anchor`): the middle of the two hips when both are visible, else the neck, else the mean of the visible
keypoints.

:class:`ZoneTracker` follows the anchors of the tracked people frame by frame and calls ``on_event`` with

- ``zone_enter`` / ``zone_exit`` (``zone=NAME``; an exit also carries ``dwell_s``, the seconds spent inside);
- ``line_cross`` (``zone=NAME``, ``direction="in"`` or ``"out"``). Stand on the line's first point and look at its
  second: a person crossing from your left to your right goes ``in``, from right to left ``out``.

Hysteresis: an anchor must be ``margin`` (a fraction of the frame height, default 0.03) inside a zone to enter it
and as far outside to leave it, and as far beyond a line to have crossed it, so a person jittering on an edge
makes one event, not a burst. A person whose track ends (or who is not seen for ``lost_s`` seconds) leaves the
zones they were in; :meth:`ZoneTracker.close` ends everyone at the end of a run.

:class:`ZonedTracker` puts a :class:`ZoneTracker` next to a :class:`~pose_fast.tracking.Tracker` so that the
pipeline drives both (same ``update``/``close`` calls, same thread); :class:`ZoneOverlay` is the sink that draws
the zones and lines with their live counts (:func:`pose_fast.render.draw_zones`). :func:`zones_from_config` reads
the ``[[zones]]``/``[[lines]]`` tables of a config file, :func:`parse_zone_option`/:func:`parse_line_option`
the ``--zone NAME=x,y x,y x,y`` and ``--line NAME=x,y x,y`` options.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .errors import PoseFastError

__all__ = ["Zone", "Line", "ZoneError", "ZoneTracker", "ZonedTracker", "ZoneOverlay", "anchor",
           "parse_zone_option", "parse_line_option", "zones_from_config", "ZONE_KINDS", "DEFAULT_MARGIN"]

#: The event kinds zones and lines produce.
ZONE_KINDS = ("zone_enter", "zone_exit", "line_cross")
DEFAULT_MARGIN = 0.03
_NECK, _R_HIP, _L_HIP = 1, 8, 11


class ZoneError(PoseFastError, ValueError):
    """A zone or line is malformed; the message names it."""


Point = Tuple[float, float]


def _points(name: str, what: str, raw, minimum: int) -> Tuple[Point, ...]:
    try:
        pts = tuple((float(p[0]), float(p[1])) for p in raw)
        if any(len(p) != 2 for p in raw):
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise ZoneError(f"{what} {name!r}: points must be pairs of numbers x,y") from None
    if len(pts) < minimum:
        raise ZoneError(f"{what} {name!r} has {len(pts)} point{'s' if len(pts) != 1 else ''}: "
                        f"{'a zone needs at least 3' if what == 'zone' else 'a line needs exactly 2'}")
    for x, y in pts:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) or math.isnan(x) or math.isnan(y):
            raise ZoneError(f"{what} {name!r}: point {x:g},{y:g} is outside 0-1 (coordinates are fractions of the "
                            f"frame's width and height)")
    return pts


def _name(name, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 64 or any(c in name for c in "/#+"):
        raise ZoneError(f"{what} name {name!r} must be 1-64 characters without / # +")
    return name.strip()


@dataclass(frozen=True)
class Zone:
    """A polygon in normalised coordinates (at least 3 points, each within 0-1)."""

    name: str
    points: Tuple[Point, ...]

    def __post_init__(self):
        object.__setattr__(self, "name", _name(self.name, "zone"))
        object.__setattr__(self, "points", _points(self.name, "zone", self.points, 3))


@dataclass(frozen=True)
class Line:
    """A segment from ``points[0]`` to ``points[1]`` in normalised coordinates; its orientation defines ``in``."""

    name: str
    points: Tuple[Point, Point]

    def __post_init__(self):
        object.__setattr__(self, "name", _name(self.name, "line"))
        pts = _points(self.name, "line", self.points, 2)
        if len(pts) != 2:
            raise ZoneError(f"line {self.name!r} has {len(pts)} points: a line needs exactly 2")
        if pts[0] == pts[1]:
            raise ZoneError(f"line {self.name!r}: its two points are the same")
        object.__setattr__(self, "points", pts)


# -- parsing ------------------------------------------------------------------------------------------------------
def _split_option(text: str, what: str) -> Tuple[str, List[List[str]]]:
    name, sep, rest = str(text).partition("=")
    if not sep or not name.strip():
        raise ZoneError(f"--{what} {text!r}: expected NAME=x,y x,y{' x,y...' if what == 'zone' else ''}")
    pairs = [p.split(",") for p in rest.replace(";", " ").split()]
    return name.strip(), pairs


def parse_zone_option(text: str) -> Zone:
    """``"door=0.1,0.2 0.5,0.2 0.5,0.9"`` -> :class:`Zone` (raises :class:`ZoneError`, one line)."""
    name, pairs = _split_option(text, "zone")
    return Zone(name, pairs)


def parse_line_option(text: str) -> Line:
    """``"threshold=0.5,0 0.5,1"`` -> :class:`Line` (raises :class:`ZoneError`, one line)."""
    name, pairs = _split_option(text, "line")
    return Line(name, pairs)


def _tables(config: Mapping, key: str, where: str) -> list:
    tables = config.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise ZoneError(f"{key} must be a list of tables ([[{key}]] with name and points)")
    return tables


def _from_tables(config: Mapping, where: str) -> Tuple[List[Zone], List[Line]]:
    try:
        zones = [Zone(t.get("name"), t.get("points", ())) for t in _tables(config, "zones", where)]
        lines = [Line(t.get("name"), t.get("points", ())) for t in _tables(config, "lines", where)]
    except ZoneError as exc:
        raise ZoneError(f"{where}{exc}") from None
    names = [z.name for z in zones] + [ln.name for ln in lines]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ZoneError(f"{where}zone or line name {dupes[0]!r} is used twice: names must be unique per camera")
    return zones, lines


def zones_from_config(config: Mapping) -> Dict[Optional[str], Tuple[List[Zone], List[Line]]]:
    """The zones and lines of a parsed config file (a TOML document as a dict).

    Top-level ``[[zones]]``/``[[lines]]`` tables (``name``, ``points = [[x, y], ...]``) go under the key None (the
    demo's one source); those of a camera (``[[cameras.zones]]``/``[[cameras.lines]]``, in a ``[[cameras]]`` table
    with a ``name``) under that camera's name. Raises :class:`ZoneError` naming the bad zone.
    """
    out: Dict[Optional[str], Tuple[List[Zone], List[Line]]] = {}
    top = _from_tables(config, "")
    if top[0] or top[1]:
        out[None] = top
    cameras = config.get("cameras", [])
    if not isinstance(cameras, list):
        raise ZoneError("cameras must be a list of tables ([[cameras]])")
    for camera in cameras:
        if not isinstance(camera, Mapping):
            raise ZoneError("cameras must be a list of tables ([[cameras]])")
        name = camera.get("name")
        found = _from_tables(camera, f"camera {name!r}: ")
        if found[0] or found[1]:
            out[str(name)] = found
    return out


# -- the anchor ---------------------------------------------------------------------------------------------------
def anchor(kp, threshold: float = 0.0) -> Optional[Point]:
    """A person's anchor, in pixels, from their keypoints ``kp`` (18 x (x, y, score)): mid-hip when both hips are
    visible, else the neck, else the mean of the visible keypoints; None when none is visible."""
    if kp[_R_HIP, 2] > threshold and kp[_L_HIP, 2] > threshold:
        return (0.5 * (float(kp[_R_HIP, 0]) + float(kp[_L_HIP, 0])),
                0.5 * (float(kp[_R_HIP, 1]) + float(kp[_L_HIP, 1])))
    if kp[_NECK, 2] > threshold:
        return float(kp[_NECK, 0]), float(kp[_NECK, 1])
    sx = sy = 0.0
    n = 0
    for k in range(kp.shape[0]):
        if kp[k, 2] > threshold:
            sx += float(kp[k, 0])
            sy += float(kp[k, 1])
            n += 1
    return (sx / n, sy / n) if n else None


# -- geometry in pixels -------------------------------------------------------------------------------------------
def _signed_distance(poly: Sequence[Point], x: float, y: float) -> float:
    """Distance from (x, y) to the polygon's boundary: positive inside, negative outside (even-odd rule)."""
    inside = False
    best = math.inf
    n = len(poly)
    j = n - 1
    for i in range(n):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        dx, dy = xj - xi, yj - yi
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - xi) * dx + (y - yi) * dy) / length2))
        px, py = xi + t * dx - x, yi + t * dy - y
        best = min(best, px * px + py * py)
        j = i
    d = math.sqrt(best)
    return d if inside else -d


class _State:
    """One person against one zone (``side`` 1 inside, -1 outside) or one line (``side`` -1 / 1, 0 unknown): the
    side decided, and a change seen but not yet held for the settle time. ``*_t`` are the frames' timestamps (what
    events are stamped with), ``*_m`` their media times (what durations are measured on), ``*_f`` their indexes."""

    __slots__ = ("side", "pending", "since_t", "since_m", "since_f", "count", "entered_m", "last_t", "last_m",
                 "last_f", "step", "looks")

    def __init__(self):
        self.side = 0
        self.pending = 0
        self.since_t = self.since_m = self.entered_m = self.last_t = self.last_m = 0.0
        self.since_f = self.last_f = self.count = 0
        self.step = 0.0  # media seconds between the last two looks at this person
        self.looks = 0

    def saw(self, frame_index: int, timestamp: float, media: float) -> None:
        """This person was looked at (on this frame)."""
        if self.looks and media > self.last_m:
            self.step = media - self.last_m
        self.looks += 1
        self.last_t, self.last_m, self.last_f = timestamp, media, frame_index

    def frames_needed(self, settle_s: float, settle_frames: int) -> int:
        """Frames a change must be seen on: ``settle_frames``, or fewer when the looks at this person come further
        apart than ``settle_s / settle_frames`` (as many as ``settle_s`` holds, at least one)."""
        if settle_s <= 0 or self.step <= 0:
            return settle_frames
        return max(1, min(settle_frames, round(settle_s / self.step)))

    def observe(self, raw: int, frame_index: int, timestamp: float, media: float, settle_s: float,
                settle_frames: int) -> bool:
        """``raw``: the side seen now (0: within the margin, no evidence). True when the side changes now (the
        change is stamped with ``since_t``/``since_f``, when it was first seen)."""
        self.saw(frame_index, timestamp, media)
        if raw == 0:
            return False
        if raw == self.side:
            self.pending = 0
            return False
        if self.pending != raw:
            self.pending, self.since_t, self.since_m, self.since_f, self.count = raw, timestamp, media, frame_index, 0
        self.count += 1
        if self.count >= self.frames_needed(settle_s, settle_frames) and media - self.since_m >= settle_s:
            self.side, self.pending = raw, 0
            return True
        return False


class ZoneTracker:
    """Zone and line events from tracked people.

    Parameters
    ----------
    zones, lines : sequences of :class:`Zone` / :class:`Line`
    on_event : callable, optional
        ``on_event(kind, track_id, frame_index, timestamp, people_count, zone=NAME, direction=None, dwell_s=None)``
        in the thread that calls :meth:`update` (the pipeline's deliver thread); it must not block.
    frame_size : (width, height)
        Pixels of the frames whose keypoints :meth:`update` gets (:meth:`set_frame_size` changes it).
    margin : float
        Hysteresis band, a fraction of the frame height: to enter a zone the anchor must be this far inside, to
        leave it this far outside, to cross a line this far beyond it.
    settle_s, settle_frames : float, int
        A change (in, out, the other side of a line) counts once it has held this long and for this many frames
        (default 0.3 s and 3 frames: an anchor that jumps for a moment, as when the hips come into view, changes
        nothing). Frames that come further apart than ``settle_s / settle_frames`` (a slow device, a stride) need
        fewer of them, as many as ``settle_s`` holds (at least one). The event is stamped with the frame where the
        change was first seen. A person who goes out of view (their track ends) with a change seen on that many
        frames has made it: a walker seen once beyond a doorway's line by a device inferring twice a second has
        crossed it.
    lost_s : float
        Seconds a person may go unseen (no anchor, not in the track ids) before they leave their zones.

    Durations (``settle_s``, ``lost_s``, the ``dwell_s`` of a ``zone_exit``) are measured on the frames' media
    time when :meth:`update` gets it, as the tracker's are: a file read faster than real time, or on every Nth
    frame, dwells as long as its people did. Events are stamped with the frames' timestamps.
    """

    def __init__(self, zones: Iterable[Zone] = (), lines: Iterable[Line] = (), on_event: Optional[Callable] = None,
                 frame_size: Tuple[int, int] = (1, 1), margin: float = DEFAULT_MARGIN, settle_s: float = 0.3,
                 settle_frames: int = 3, lost_s: float = 1.0):
        self.zones = list(zones)
        self.lines = list(lines)
        self.on_event = on_event
        self.margin = float(margin)
        self.settle_s = float(settle_s)
        self.settle_frames = int(settle_frames)
        self.lost_s = float(lost_s)
        #: people inside each zone now, and line crossings so far per (line, direction)
        self.zone_counts: Dict[str, int] = {z.name: 0 for z in self.zones}
        self.line_counts: Dict[str, Dict[str, int]] = {ln.name: {"in": 0, "out": 0} for ln in self.lines}
        self._zone_state: List[Dict[int, _State]] = [{} for _ in self.zones]
        self._line_state: List[Dict[int, _State]] = [{} for _ in self.lines]
        self._seen: Dict[int, float] = {}
        self.frame_size = (0, 0)
        self.set_frame_size(*frame_size)

    def __bool__(self) -> bool:
        return bool(self.zones or self.lines)

    def set_frame_size(self, width: int, height: int) -> None:
        """Convert the zones to pixels of ``width`` x ``height`` frames (done once per size)."""
        width, height = int(width), int(height)
        if (width, height) == self.frame_size:
            return
        self.frame_size = (width, height)
        self._polys = [tuple((x * width, y * height) for x, y in z.points) for z in self.zones]
        import numpy as np

        self._poly_px = [np.round(np.array(p, np.float64)).astype(np.int32).reshape(-1, 1, 2) for p in self._polys]
        self._segs = []
        for ln in self.lines:
            (ax, ay), (bx, by) = ((x * width, y * height) for x, y in ln.points)
            length = math.hypot(bx - ax, by - ay) or 1.0
            self._segs.append((ax, ay, bx - ax, by - ay, length))
        self._margin_px = self.margin * height

    def update(self, track_ids, keypoints, frame_index: int, timestamp: float, people_count: Optional[int] = None,
               media_time: Optional[float] = None):
        """Feed one frame: ``track_ids`` (P,) (ids <= 0 are not people yet) and ``keypoints`` (P, 18, 3);
        ``media_time``: the frame's position in the video, in seconds (default: ``timestamp``)."""
        if not (self.zones or self.lines):
            return
        media = timestamp if media_time is None else float(media_time)
        m = self._margin_px
        count = len(track_ids) if people_count is None else people_count
        settle_s, settle_frames = self.settle_s, self.settle_frames
        for p in range(len(track_ids)):
            tid = int(track_ids[p])
            if tid <= 0:
                continue
            point = anchor(keypoints[p])
            if point is None:
                continue
            x, y = point
            self._seen[tid] = media
            for z, poly in enumerate(self._polys):
                d = _signed_distance(poly, x, y)
                states = self._zone_state[z]
                state = states.get(tid)
                if state is None:
                    state = states[tid] = _State()
                    state.side = -1  # outside until seen inside
                raw = 1 if d >= m else (-1 if d <= -m else 0)
                was_in = state.side == 1
                if state.observe(raw, frame_index, timestamp, media, settle_s, settle_frames):
                    name = self.zones[z].name
                    if state.side == 1:
                        state.entered_m = state.since_m
                        self.zone_counts[name] += 1
                        self._emit("zone_enter", tid, state.since_f, state.since_t, count, name)
                    elif was_in:
                        self.zone_counts[name] -= 1
                        self._emit("zone_exit", tid, state.since_f, state.since_t, count, name,
                                   dwell_s=max(0.0, state.since_m - state.entered_m))
            for i, (ax, ay, dx, dy, length) in enumerate(self._segs):
                t = ((x - ax) * dx + (y - ay) * dy) / (length * length)
                states = self._line_state[i]
                if t < 0.0 or t > 1.0:  # beyond the segment's ends: walking around it is no crossing
                    states.pop(tid, None)
                    continue
                state = states.get(tid)
                if state is None:
                    state = states[tid] = _State()
                d = (dx * (y - ay) - dy * (x - ax)) / length  # > 0: right of first -> second point
                raw = 1 if d >= m else (-1 if d <= -m else 0)
                before = state.side
                if before == 0 and raw != 0:  # first sighting beyond the margin: the side it starts on
                    state.side = raw
                    state.saw(frame_index, timestamp, media)
                elif state.observe(raw, frame_index, timestamp, media, settle_s, settle_frames):
                    direction = "in" if state.side > 0 else "out"
                    self.line_counts[self.lines[i].name][direction] += 1
                    self._emit("line_cross", tid, state.since_f, state.since_t, count, self.lines[i].name,
                               direction=direction)
        self._expire(media, count)

    def _expire(self, media, count):
        if not self._seen:
            return
        stale = [tid for tid, seen in self._seen.items() if media - seen > self.lost_s]
        for tid in stale:
            del self._seen[tid]
            self._forget(tid, count)

    def _forget(self, tid, count):
        """``tid`` is gone. A change it showed on as many frames as :meth:`_State.frames_needed` asks before it went
        counts (a person who crosses a line and walks out of the picture at once); then it leaves the zones it is
        in, as last seen."""
        settle_s, settle_frames = self.settle_s, self.settle_frames
        for z, states in enumerate(self._zone_state):
            state = states.pop(tid, None)
            if state is None:
                continue
            name = self.zones[z].name
            settled = state.frames_needed(settle_s, settle_frames)
            if state.pending == 1 and state.count >= settled:  # went in, and out of view before it settled
                state.entered_m = state.since_m
                self.zone_counts[name] += 1
                self._emit("zone_enter", tid, state.since_f, state.since_t, count, name)
                state.side = 1
            elif state.pending == -1 and state.count >= settled and state.side == 1:
                # left before going out of view
                state.last_t, state.last_m, state.last_f = state.since_t, state.since_m, state.since_f
            if state.side == 1:
                self.zone_counts[name] -= 1
                self._emit("zone_exit", tid, state.last_f, state.last_t, count, name,
                           dwell_s=max(0.0, state.last_m - state.entered_m))
        for i, states in enumerate(self._line_state):
            state = states.pop(tid, None)
            if state is not None and state.pending and state.side and \
                    state.count >= state.frames_needed(settle_s, settle_frames):
                direction = "in" if state.pending > 0 else "out"
                self.line_counts[self.lines[i].name][direction] += 1
                self._emit("line_cross", tid, state.since_f, state.since_t, count, self.lines[i].name,
                           direction=direction)

    def track_ended(self, track_id: int, count: int = 0) -> None:
        """A track died (its ``exit`` event): it leaves every zone it was in, as last seen."""
        self._seen.pop(int(track_id), None)
        self._forget(int(track_id), count)

    def close(self, frame_index: int, timestamp: float) -> None:
        """The run ends: everyone still in a zone leaves it (stamped when last seen)."""
        for tid in list(self._seen):
            self._forget(tid, 0)
        self._seen.clear()

    def _emit(self, kind, tid, frame_index, timestamp, count, zone, direction=None, dwell_s=None):
        if self.on_event is not None:
            self.on_event(kind, tid, frame_index, timestamp, count, zone=zone, direction=direction,
                          dwell_s=dwell_s)


class ZonedTracker:
    """A :class:`~pose_fast.tracking.Tracker` with a :class:`ZoneTracker` beside it: hand it to the pipeline as
    its ``tracker``. ``update`` returns the tracker's ids after feeding them to the zones; ``close`` closes both.
    The tracker's own ``exit`` events should go through :meth:`on_tracker_event` (see :func:`zoned`)."""

    def __init__(self, tracker, zone_tracker: ZoneTracker):
        self.tracker = tracker
        self.zones = zone_tracker

    def update(self, poses, frame_index: int, timestamp: float, **kwargs):
        ids = self.tracker.update(poses, frame_index, timestamp, **kwargs)  # e.g. media_time, passed on
        self.zones.update(ids, poses.keypoints, frame_index, timestamp, media_time=kwargs.get("media_time"))
        return ids

    def close(self, frame_index: int, timestamp: float) -> None:
        try:
            self.tracker.close(frame_index, timestamp)
        finally:
            self.zones.close(frame_index, timestamp)

    def __getattr__(self, name):  # people_count, active_ids...
        return getattr(self.tracker, name)


class ZoneOverlay:
    """A sink that draws the zones and lines with their live counts on each frame; put it first among the sinks
    (the others then show or encode the frame with the zones on it). Also follows the frame size."""

    def __init__(self, zone_tracker: ZoneTracker):
        self.zone_tracker = zone_tracker

    def write(self, result) -> None:
        frame = result.frame
        zt = self.zone_tracker
        if frame.shape[1] != zt.frame_size[0] or frame.shape[0] != zt.frame_size[1]:
            zt.set_frame_size(frame.shape[1], frame.shape[0])
        from .render import draw_zones

        draw_zones(frame, zt._poly_px, zt._segs, zt.zones, zt.lines, zt.zone_counts, zt.line_counts)

    def close(self) -> None:
        pass
