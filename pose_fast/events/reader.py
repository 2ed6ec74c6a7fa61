"""Reading events: :func:`read_events` pages from one read-only snapshot, with a per-process cache of what earlier
requests learnt (counts, and the ids at known positions); :func:`count_events`."""
from __future__ import annotations

import bisect
import threading
from typing import Dict, List, Optional, Tuple

import apsw

from ..errors import EventStoreError
from .schema import _explain, _open_reader

__all__ = ["read_events", "read_event", "count_events"]

_COLUMNS = ("id", "kind", "person_id", "timestamp", "source", "frame_index", "people_count", "device", "run_id",
            "track_id", "reason", "snapshot", "zone", "direction", "dwell_s")


def count_events(path) -> int:
    """Number of stored events (from the per-source counts; O(sources))."""
    conn = _open_reader(path)
    try:
        return int(conn.execute("SELECT coalesce(sum(n), 0) FROM event_counts").fetchall()[0][0])
    finally:
        conn.close()


class _Listing:
    """What earlier requests learnt about one filtered listing of one database file, valid while no event is deleted
    (ids only grow). Shared by the server's threads: change it only under ``_listings_lock``.

    ``counted``: ``(max_id, count)``, the matching events up to ``max_id`` (time filters: later counts only scan
    newer events); one tuple, replaced whole, so a reader never sees the id of one count with the total of another.
    ``offsets``/``ids``: anchors, the id at a position of the listing, so that the next page (or any page after a
    known one) walks from the nearest anchor instead of from the start.
    """

    __slots__ = ("generation", "counted", "offsets", "ids")

    def __init__(self, generation):
        self.generation = generation
        self.counted: Optional[Tuple[int, int]] = None
        self.offsets: List[int] = []
        self.ids: List[int] = []


_listings: Dict[tuple, _Listing] = {}
_listings_lock = threading.Lock()  # guards _listings and every _Listing in it (held briefly, never across a query)
_LISTINGS = 256       # listings remembered per process
_ANCHORS = 4096       # anchors per listing
_SMALL_RESULT = 20000  # a time-filtered result this small is paged through its timestamp index, larger in id order


def _listing(path, cond, args, generation) -> _Listing:
    key = (str(path), cond, tuple(args))
    with _listings_lock:
        entry = _listings.get(key)
        if entry is None or entry.generation != generation:
            if len(_listings) >= _LISTINGS:
                _listings.clear()
            entry = _listings[key] = _Listing(generation)
        return entry


def _count_where(conn, entry, cond, args, max_id) -> int:
    """count(*) of a filtered listing; only events newer than the last count are scanned."""
    counted = entry.counted  # one read of one tuple: a consistent pair
    if counted is not None and counted[0] <= max_id:
        if counted[0] == max_id:
            return counted[1]
        new = conn.execute(f"SELECT count(*) FROM events WHERE id > ? AND {cond}", [counted[0]] + args)
        count = counted[1] + int(new.fetchall()[0][0])
    else:
        count = int(conn.execute(f"SELECT count(*) FROM events WHERE {cond}", args).fetchall()[0][0])
    with _listings_lock:
        if entry.counted is None or entry.counted[0] < max_id:  # a reader of an older snapshot keeps the newer
            entry.counted = (max_id, count)
    return count


def _first_id_at(conn, entry, walk, args, offset):
    """The id at position ``offset`` of the listing, walking from the nearest known anchor."""
    with _listings_lock:
        i = bisect.bisect_right(entry.offsets, offset) - 1
        anchor = (entry.offsets[i], entry.ids[i]) if i >= 0 else None
    if anchor is not None:
        row = conn.execute(f"SELECT id FROM events WHERE {walk} AND id >= ? ORDER BY id LIMIT 1 OFFSET ?",
                           args + [anchor[1], offset - anchor[0]]).fetchall()
    else:
        row = conn.execute(f"SELECT id FROM events WHERE {walk} ORDER BY id LIMIT 1 OFFSET ?",
                           args + [offset]).fetchall()
    if not row:
        return None
    first = row[0][0]
    if anchor is None or anchor[0] != offset:
        with _listings_lock:
            if len(entry.offsets) >= _ANCHORS:
                del entry.offsets[1::2], entry.ids[1::2]  # thin out, keep the spread
            j = bisect.bisect_left(entry.offsets, offset)
            if j == len(entry.offsets) or entry.offsets[j] != offset:  # another thread may have added it meanwhile
                entry.offsets.insert(j, offset)
                entry.ids.insert(j, first)
    return first


def read_event(path, event_id: int) -> Optional[Dict]:
    """The event with this id, or None. Raises EventStoreError like :func:`read_events`."""
    conn = _open_reader(path)
    try:
        rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM events WHERE id = ?", (int(event_id),)).fetchall()
    except apsw.Error as exc:
        raise EventStoreError(_explain(exc, path, "read the events database")) from None
    finally:
        conn.close()
    return dict(zip(_COLUMNS, rows[0])) if rows else None


def read_events(path, *, kind: Optional[str] = None, source: Optional[str] = None, since: Optional[str] = None,
                until: Optional[str] = None, zone: Optional[str] = None, offset: int = 0,
                limit: int = 50) -> Tuple[List[Dict], int]:
    """One page of events in id order and the number of events matching the filters, from one snapshot.

    ``zone``: only the events of that zone or line (``zone_enter``, ``zone_exit``, ``line_cross``); counted like
    since/until (the per-(kind, source) totals know no zones).

    ``since`` (inclusive) and ``until`` (exclusive) are timestamps in the stored form
    (:func:`pose_fast.timestamps.parse_iso_utc`).
    Opens its own read-only connection (readers never block the writer, nor it them). Raises EventStoreError when
    the database is missing, not initialised or unreadable.

    Cost, with events only ever appended: the total comes from the per-(kind, source) counts (O(1)), or with
    since/until from a count that later requests extend with the newer events only; an unfiltered page is an id
    range (O(log n)); a filtered page walks an index from the nearest page seen before (the next page: O(page)).
    """
    filters = [(sql, value) for sql, value in (("kind = ?", kind), ("source = ?", source),
                                               ("timestamp >= ?", since), ("timestamp < ?", until),
                                               ("zone = ?", zone))
               if value is not None]
    where, args = [sql for sql, _ in filters], [value for _, value in filters]
    by_time = since is not None or until is not None
    scanned = by_time or zone is not None  # counted from the events, not from event_counts
    cols = ", ".join(_COLUMNS)
    cond = " AND ".join(where) or "1"
    conn = _open_reader(path)
    try:
        conn.execute("BEGIN")  # one snapshot for the count and the page
        try:
            # what earlier requests learnt holds for this very file (instance) until an event is deleted
            meta = dict(conn.execute("SELECT key, value FROM event_meta").fetchall())
            generation = (meta["instance"], meta["deletions"])
            # two queries: SQLite answers min() and max() from the b-tree's ends only when each is asked alone
            lo = conn.execute("SELECT min(id) FROM events").fetchall()[0][0]
            hi = conn.execute("SELECT max(id) FROM events").fetchall()[0][0] or 0
            entry = _listing(path, cond, args, generation)
            if scanned:
                count = _count_where(conn, entry, cond, args, hi)
            else:
                sql = "SELECT coalesce(sum(n), 0) FROM event_counts" + (f" WHERE {cond}" if where else "")
                count = int(conn.execute(sql, args).fetchall()[0][0])
            rows: list = []
            if offset < count and limit > 0:
                if not where and hi - lo + 1 == count:  # no holes: the page is an id range (O(log n))
                    first = lo + offset
                    walk = cond
                else:
                    walk = cond
                    if by_time and count > _SMALL_RESULT:
                        # many matches: walk in id order (stops at the page) rather than sort them all by id
                        walk = cond.replace("timestamp", "+timestamp")
                    first = _first_id_at(conn, entry, walk, args, offset)
                if first is not None:
                    rows = conn.execute(f"SELECT {cols} FROM events WHERE {walk} AND id >= ? ORDER BY id LIMIT ?",
                                        args + [first, limit]).fetchall()
        finally:
            conn.execute("COMMIT")
    except apsw.Error as exc:
        raise EventStoreError(_explain(exc, path, "read the events database")) from None
    finally:
        conn.close()
    return [dict(zip(_COLUMNS, row)) for row in rows], count
