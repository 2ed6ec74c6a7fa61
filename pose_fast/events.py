"""Enter/exit events in SQLite (through apsw): one writer thread, batched transactions, readers that never block.

Writing
-------
>>> with exit_on_sigterm(), EventStore(resolve_db_path(db)) as store:          # doctest: +SKIP
...     recorder = EventRecorder(store, source="camera 0", device="CPU")
...     tracker = Tracker(on_event=recorder.record)
...     try:
...         run_the_pipeline(tracker)
...     finally:
...         tracker.close(last_frame_index, time.time())   # everyone still in view exits

:meth:`EventStore.add` only appends to an in-memory queue, so the pipeline never waits on the disk; the writer thread
commits the queue every ``flush_interval`` seconds (or sooner when ``batch_size`` events are waiting), one
transaction per batch. :meth:`EventStore.close` (also on leaving the ``with`` block, and at interpreter exit for a
store nobody closed) commits every event added before it. Ctrl-C raises ``KeyboardInterrupt`` in the main thread,
which unwinds the ``with`` block; :func:`exit_on_sigterm` makes SIGTERM do the same (``SystemExit(143)``). A process
killed outright (SIGKILL) loses at most the batch not yet committed; the database stays valid. (A power cut may also
undo the last commits before the next WAL checkpoint: that is what ``synchronous=NORMAL`` trades for speed.)

A full disk, a read-only file or folder, or a file that is not a pose_fast database raises :class:`EventStoreError`
with a one-line message; events already committed are never touched by a failed batch.

Database
--------
The default location is :func:`default_db_path` (``$POSE_FAST_DB``, else the per-user data folder). Journal mode WAL,
``synchronous=NORMAL``, a busy timeout, and the schema version in ``PRAGMA user_version``; :func:`create_or_migrate`
brings any older pose_fast database up to :data:`SCHEMA_VERSION` (idempotent, safe with concurrent callers).
Table ``events``: ``id`` (ascending, stable), ``kind`` ("enter"/"exit"), ``person_id`` (tracker id), ``timestamp``
(ISO-8601 UTC, ``2026-11-25T07:00:00.123Z``: sorts as text), ``source``, ``frame_index``, ``people_count``, ``device``.
Events are appended only through :class:`EventStore`, which also keeps the per-(kind, source) totals in
``event_counts`` that the API counts with; deleting events by hand is fine (a trigger fixes the totals).
"""
from __future__ import annotations

import atexit
import bisect
import contextlib
import errno
import math
import os
import signal
import sys
import threading
import time
import weakref
from collections import Counter, deque
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import quote

import apsw

from .errors import EventStoreError, first_line
from .folders import user_data_dir
from .timestamps import iso_utc

__all__ = [
    "EventStore", "EventRecorder", "EventStoreError", "SCHEMA_VERSION", "KINDS", "default_db_path",
    "resolve_db_path", "create_or_migrate", "read_events",
    "exit_on_sigterm", "count_events",
]

KINDS = ("enter", "exit")
BUSY_TIMEOUT_MS = 5000

#: Each entry migrates the schema from version ``i`` to ``i + 1``; ``PRAGMA user_version`` holds the version.
MIGRATIONS = (
    # 0 -> 1: the events table
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('enter', 'exit')),
        person_id INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        source TEXT NOT NULL,
        frame_index INTEGER NOT NULL,
        people_count INTEGER NOT NULL,
        device TEXT NOT NULL
    );
    """,
    # 1 -> 2: indexes for the API's filters (each keeps id order for its equality filter), and per (kind, source)
    # counts for O(1) totals. The writer adds to the counts in the same transaction as the events (cheaper than a
    # trigger per row); a trigger takes deletions off.
    """
    CREATE INDEX events_kind ON events(kind);
    CREATE INDEX events_source ON events(source);
    CREATE INDEX events_source_kind ON events(source, kind);
    CREATE INDEX events_timestamp ON events(timestamp);
    CREATE TABLE event_counts (
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (kind, source)
    ) WITHOUT ROWID;
    INSERT INTO event_counts (kind, source, n) SELECT kind, source, count(*) FROM events GROUP BY kind, source;
    CREATE TABLE event_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO event_meta (key, value) VALUES ('deletions', 0), ('instance', abs(random()));
    CREATE TRIGGER events_uncounted AFTER DELETE ON events BEGIN
        UPDATE event_counts SET n = n - 1 WHERE kind = old.kind AND source = old.source;
        UPDATE event_meta SET value = value + 1 WHERE key = 'deletions';
    END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_INSERT = ("INSERT INTO events (kind, person_id, timestamp, source, frame_index, people_count, device) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
_COUNT = ("INSERT INTO event_counts (kind, source, n) VALUES (?, ?, ?) "
          "ON CONFLICT (kind, source) DO UPDATE SET n = n + excluded.n")
_COLUMNS = ("id", "kind", "person_id", "timestamp", "source", "frame_index", "people_count", "device")


# -- paths ------------------------------------------------------------------------------------------------------
def default_db_path() -> Path:
    """Where events go when no ``--db`` is given: ``$POSE_FAST_DB`` if set, otherwise ``events.sqlite3`` in the
    per-user data folder (:func:`pose_fast.folders.user_data_dir`: ``~/.local/share/pose_fast`` on Linux)."""
    env = os.environ.get("POSE_FAST_DB")
    if env:
        return Path(env).expanduser()
    return user_data_dir("events.sqlite3")


def resolve_db_path(db=None) -> Path:
    """``db`` (a ``--db`` value) when given, else :func:`default_db_path`."""
    return Path(db).expanduser() if db else default_db_path()


# -- errors -----------------------------------------------------------------------------------------------------
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _explain(exc: BaseException, path, doing: str, system_errno: int = 0) -> str:
    """One line for people: what failed and what to do (``system_errno``: the OS error behind an SQLite one)."""
    first = first_line(exc)
    if isinstance(exc, apsw.FullError) or system_errno in _FULL_ERRNOS:  # SQLite calls a failed write() an I/O error
        return (f"cannot {doing} {path}: the disk or database is full; free some space or use "
                f"--db/POSE_FAST_DB to put the database on another disk")
    if isinstance(exc, (apsw.ReadOnlyError, apsw.PermissionsError, apsw.AuthError)):
        return (f"cannot {doing} {path}: the database is read-only ({first}); make the file and its folder "
                f"writable or use --db/POSE_FAST_DB to choose another file")
    if isinstance(exc, apsw.NotADBError):
        return f"cannot {doing} {path}: the file is not an SQLite database; use --db/POSE_FAST_DB to choose another"
    if isinstance(exc, apsw.CantOpenError):
        return (f"cannot {doing} {path}: the file cannot be opened ({first}); check that its folder exists and is "
                f"writable, or use --db/POSE_FAST_DB to choose another file")
    if isinstance(exc, apsw.BusyError):
        return (f"cannot {doing} {path}: the database stayed locked by another program for "
                f"{BUSY_TIMEOUT_MS / 1000:g} s; close it and retry")
    if isinstance(exc, apsw.IOError):
        return (f"cannot {doing} {path}: disk I/O error ({first}); the disk may be full, read-only or failing: free "
                f"some space or use --db/POSE_FAST_DB to put the database on another disk")
    if isinstance(exc, apsw.CorruptError):
        return f"cannot {doing} {path}: the database is corrupt ({first}); move it away and run pose-fast create-db"
    if isinstance(exc, OSError):
        return f"cannot {doing} {path}: {exc.strerror or first}; check the path or use --db/POSE_FAST_DB"
    return f"cannot {doing} {path}: {first}"


# -- schema -----------------------------------------------------------------------------------------------------
def _connect(path: Path, readonly: bool = False) -> apsw.Connection:
    if readonly:
        flags = apsw.SQLITE_OPEN_READONLY
    else:
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    conn = apsw.Connection(str(path), flags=flags)
    conn.setbusytimeout(BUSY_TIMEOUT_MS)
    return conn


def _version(conn) -> int:
    return int(conn.execute("PRAGMA user_version").fetchall()[0][0])


def _migrate(conn, path, writable=True) -> Tuple[int, int]:
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA synchronous=NORMAL")
    before = _version(conn)
    if before > SCHEMA_VERSION:
        raise EventStoreError(f"{path} has schema version {before}, newer than this pose_fast knows "
                              f"({SCHEMA_VERSION}); upgrade pose_fast or use --db/POSE_FAST_DB for another file")
    if before == SCHEMA_VERSION:
        if writable and conn.readonly("main"):
            raise apsw.ReadOnlyError("attempt to write a readonly database")
        return before, before
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = _version(conn)  # re-read under the write lock: another process may have migrated meanwhile
        if before == 0 and conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()[0][0]:
            raise EventStoreError(f"{path} is an SQLite database of another program (schema version 0 with "
                                  f"tables); use --db/POSE_FAST_DB to choose another file")
        for step in range(before, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[step])
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if not conn.getautocommit():
            conn.execute("ROLLBACK")
        raise
    return before, SCHEMA_VERSION


def _open_writer(path, writable=True) -> Tuple[apsw.Connection, int, int]:
    path = Path(path)
    try:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path)
    except (apsw.Error, OSError) as exc:
        raise EventStoreError(_explain(exc, path, "open the events database")) from None
    try:
        before, after = _migrate(conn, path, writable)
    except EventStoreError:
        conn.close()
        raise
    except apsw.Error as exc:
        conn.close()
        raise EventStoreError(_explain(exc, path, "open the events database")) from None
    return conn, before, after


def create_or_migrate(path) -> Tuple[int, int]:
    """Create the database at ``path`` (and its folder) or migrate it to :data:`SCHEMA_VERSION`.

    Returns ``(version_before, version_after)``; ``(0, SCHEMA_VERSION)`` for a new file. Idempotent: an up-to-date
    database is left as it is (even a read-only one). Raises :class:`EventStoreError` (one line) when it cannot.
    """
    conn, before, after = _open_writer(path, writable=False)
    conn.close()
    return before, after


def count_events(path) -> int:
    """Number of stored events (from the per-source counts; O(sources))."""
    conn = _open_reader(path)
    try:
        return int(conn.execute("SELECT coalesce(sum(n), 0) FROM event_counts").fetchall()[0][0])
    finally:
        conn.close()


# -- the writer -------------------------------------------------------------------------------------------------
_open_stores: weakref.WeakSet[EventStore] = weakref.WeakSet()


def _close_open_stores():
    for store in list(_open_stores):
        try:
            store.close()
        except EventStoreError as exc:
            print(f"pose_fast: {exc}", file=sys.stderr)


atexit.register(_close_open_stores)


class _Flush:
    __slots__ = ("done",)

    def __init__(self):
        self.done = threading.Event()


class EventStore:
    """Append-only event log in SQLite with one writer thread.

    Parameters
    ----------
    path : str or Path
        The database file; created (with its folder) and migrated if needed.
    batch_size : int
        Most events per transaction; the writer also wakes early when this many are waiting.
    flush_interval : float
        Seconds between commits while events keep coming (the most a SIGKILL can lose).

    Raises
    ------
    EventStoreError
        When the database cannot be opened, created, migrated or written (one line saying what to do).
    """

    def __init__(self, path, *, batch_size: int = 10000, flush_interval: float = 0.05):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(flush_interval, (int, float)) or not 0 < flush_interval <= 60:
            raise ValueError(f"flush_interval must be seconds in (0, 60], got {flush_interval!r}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self._conn, self.version_before, _ = _open_writer(self.path)
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._error: Optional[EventStoreError] = None
        self._written = 0
        self._unsaved = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"EventStore({self.path.name})", daemon=True)
        self._thread.start()
        _open_stores.add(self)

    # -- producer side (any thread; never blocks on the disk) --------------------------------------------------
    def add(self, kind: str, person_id: int, frame_index: int, timestamp: float, people_count: int,
            source: str = "", device: str = "") -> None:
        """Queue one event; returns at once. Raises EventStoreError once the writer has failed or after close()."""
        if self._error is not None:
            raise self._error
        if self._closing:
            raise EventStoreError(f"the events store {self.path} is closed; events can no longer be added")
        if kind not in KINDS:
            raise ValueError(f"kind must be 'enter' or 'exit', got {kind!r}")
        timestamp = float(timestamp)
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite seconds since the epoch, got {timestamp}")
        self._queue.append((kind, int(person_id), timestamp, str(source), int(frame_index), int(people_count),
                            str(device)))
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every event added before this call is committed; False on timeout."""
        marker = _Flush()
        if self._thread.is_alive():
            self._queue.append(marker)
            self._wake.set()
            if not marker.done.wait(timeout):
                return False
        if self._error is not None:
            raise self._error
        return True

    @property
    def pending(self) -> int:
        """Events queued and not yet committed (approximate while the writer runs)."""
        return len(self._queue)

    @property
    def written(self) -> int:
        """Events committed by this store."""
        return self._written

    @property
    def error(self) -> Optional[EventStoreError]:
        """The writer's failure, if any (it stopped writing then)."""
        return self._error

    def close(self) -> None:
        """Commit every queued event, stop the writer, close the database. Idempotent.

        A second Ctrl-C or SIGTERM arriving while this waits is held back until the commit is done, then re-raised.
        Raises EventStoreError if the writer failed (the message says how many events were not saved).
        """
        with self._lock:
            if self._closed:
                if self._error is not None:
                    raise self._error
                return
            self._closing = True
            self._wake.set()
            interrupted = None
            while self._thread.is_alive():
                try:
                    self._thread.join(0.1)
                except (KeyboardInterrupt, SystemExit) as exc:  # finish committing first
                    interrupted = exc
            self._drain()  # an add() racing with close() may have queued after the writer's last look
            self._conn.close()
            self._closed = True
            _open_stores.discard(self)
        if interrupted is not None:
            raise interrupted
        if self._error is not None:
            raise self._error

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the writer thread ---------------------------------------------------------------------------------------
    def _run(self):
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            closing = self._closing
            self._drain()
            if closing:
                self._drain()
                return

    def _drain(self):
        queue = self._queue
        while queue:
            batch: List[tuple] = []
            marker = None
            try:
                while len(batch) < self.batch_size:
                    item = queue.popleft()
                    if type(item) is _Flush:
                        marker = item
                        break
                    batch.append(item)
            except IndexError:
                pass
            if batch:
                if self._error is None:
                    self._write(batch)
                else:
                    self._unsaved += len(batch)
            if marker is not None:
                marker.done.set()

    def _write(self, batch):
        fmt = iso_utc
        rows = [(k, p, fmt(t), s, f, n, d) for (k, p, t, s, f, n, d) in batch]
        counts = [(k, s, n) for (k, s), n in Counter((row[0], row[3]) for row in batch).items()]
        conn = self._conn
        for attempt in range(100):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, rows)
                    conn.executemany(_COUNT, counts)
                    conn.execute("COMMIT")
                except BaseException:
                    if not conn.getautocommit():
                        conn.execute("ROLLBACK")
                    raise
                self._written += len(rows)
                return
            except apsw.BusyError:
                # another program holds the write lock beyond the busy timeout: keep the events, try again
                if self._closing and attempt >= 2:
                    err = apsw.BusyError("database is locked")
                    break
                time.sleep(0.1)
            except apsw.Error as exc:
                err = exc
                break
        else:
            err = apsw.BusyError("database is locked")
        self._unsaved += len(rows) + sum(1 for item in self._queue if type(item) is not _Flush)
        msg = _explain(err, self.path, "write events to", getattr(conn, "system_errno", 0))  # 0: an apsw without it
        self._error = EventStoreError(f"{msg} ({self._unsaved} events not saved; {self._written} saved before)")

    def __repr__(self):
        return f"EventStore({str(self.path)!r}, written={self._written}, pending={self.pending})"


class EventRecorder:
    """Binds a source name and a device to a store; :meth:`record` is a ``Tracker`` ``on_event`` callable."""

    def __init__(self, store: EventStore, source: str, device: str = ""):
        self.store = store
        self.source = str(source)
        self.device = str(device)

    def record(self, kind: str, track_id: int, frame_index: int, timestamp: float, people_count: int) -> None:
        """``on_event(kind, track_id, frame_index, timestamp, people_count)``: queue the event (never blocks)."""
        self.store.add(kind, track_id, frame_index, timestamp, people_count, self.source, self.device)

    __call__ = record


@contextlib.contextmanager
def exit_on_sigterm():
    """While active (main thread only), SIGTERM raises ``SystemExit(143)`` like Ctrl-C raises KeyboardInterrupt.

    ``with`` blocks and ``finally`` clauses then run, so an :class:`EventStore` commits everything on shutdown. A
    repeated SIGTERM during that shutdown is ignored. The previous handler is restored on leaving. Elsewhere than in
    the main thread this does nothing (Python only delivers signals there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = {"fired": False}

    def handler(signum, frame):
        if state["fired"]:
            return
        state["fired"] = True
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- reading ----------------------------------------------------------------------------------------------------
def _open_reader(path) -> apsw.Connection:
    path = Path(path)
    if not path.is_file():
        raise EventStoreError(f"no events database at {path}; run `pose-fast create-db --db {path}` or start "
                              f"the demo with --db {path}")
    try:
        try:
            conn = _connect(path, readonly=True)
            version = _version(conn)
        except (apsw.ReadOnlyError, apsw.CantOpenError):
            # a WAL database in a folder we cannot write, with no -shm file: nobody can be writing it, so read it
            # as immutable (SQLite's documented way to read such a file)
            conn = apsw.Connection(f"file:{quote(str(path.resolve()))}?immutable=1",
                                   flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
            version = _version(conn)
    except apsw.Error as exc:
        raise EventStoreError(_explain(exc, path, "read the events database")) from None
    if version != SCHEMA_VERSION:
        conn.close()
        if version > SCHEMA_VERSION:
            raise EventStoreError(f"{path} has schema version {version}, newer than this pose_fast knows "
                                  f"({SCHEMA_VERSION}); upgrade pose_fast")
        raise EventStoreError(f"{path} has schema version {version}, expected {SCHEMA_VERSION}; run "
                              f"`pose-fast create-db --db {path}` to create or migrate it")
    return conn


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


def read_events(path, *, kind: Optional[str] = None, source: Optional[str] = None, since: Optional[str] = None,
                until: Optional[str] = None, offset: int = 0, limit: int = 50) -> Tuple[List[Dict], int]:
    """One page of events in id order and the number of events matching the filters, from one snapshot.

    ``since`` (inclusive) and ``until`` (exclusive) are timestamps in the stored form
    (:func:`pose_fast.timestamps.parse_iso_utc`).
    Opens its own read-only connection (readers never block the writer, nor it them). Raises EventStoreError when
    the database is missing, not initialised or unreadable.

    Cost, with events only ever appended: the total comes from the per-(kind, source) counts (O(1)), or with
    since/until from a count that later requests extend with the newer events only; an unfiltered page is an id
    range (O(log n)); a filtered page walks an index from the nearest page seen before (the next page: O(page)).
    """
    where, args = [], []
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    if source is not None:
        where.append("source = ?")
        args.append(source)
    by_time = since is not None or until is not None
    if since is not None:
        where.append("timestamp >= ?")
        args.append(since)
    if until is not None:
        where.append("timestamp < ?")
        args.append(until)
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
            if by_time:
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
