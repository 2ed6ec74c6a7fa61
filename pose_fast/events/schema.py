"""The events database itself: its schema and migrations, where it lives, how connections open, how events are
inserted (also from the journal, :func:`replay_journal`), and the one-line messages for what goes wrong
(:class:`~pose_fast.errors.EventStoreError`)."""
from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import quote

import apsw

from ..errors import EventStoreError, first_line
from ..folders import user_data_dir
from . import journal

__all__ = ["SCHEMA_VERSION", "KINDS", "BUSY_TIMEOUT_MS", "MIGRATIONS", "default_db_path", "resolve_db_path",
           "create_or_migrate", "replay_journal"]

#: ``enter``/``exit``: a person (tracker identity) appears in or leaves the camera's view; ``zone_enter``/``zone_exit``
#: and ``line_cross``: the same person and a zone or line of the camera (with ``zone``, ``dwell_s``, ``direction``).
KINDS = ("enter", "exit", "zone_enter", "zone_exit", "line_cross")
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
    # 2 -> 3: events that stay meaningful across runs. ``run_id`` (one per pipeline start) and ``track_id`` (the
    # tracker's id in that run) name who the writer gave the database-wide ``person_id`` to; ``reason`` (why an exit
    # happened), ``snapshot`` (the JPEG beside the database), and the zone events' ``zone``, ``direction`` and
    # ``dwell_s``. SQLite cannot widen a CHECK in place: the table is rebuilt, every old row kept with its id (its
    # run is unknown: ``run_id`` '' and ``track_id`` = its person_id).
    """
    CREATE TABLE events_v3 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('enter', 'exit', 'zone_enter', 'zone_exit', 'line_cross')),
        person_id INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        source TEXT NOT NULL,
        frame_index INTEGER NOT NULL,
        people_count INTEGER NOT NULL,
        device TEXT NOT NULL,
        run_id TEXT NOT NULL DEFAULT '',
        track_id INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        snapshot TEXT,
        zone TEXT,
        direction TEXT,
        dwell_s REAL
    );
    INSERT INTO events_v3 (id, kind, person_id, timestamp, source, frame_index, people_count, device, track_id)
        SELECT id, kind, person_id, timestamp, source, frame_index, people_count, device, person_id FROM events;
    DROP TRIGGER events_uncounted;
    DROP TABLE events;
    ALTER TABLE events_v3 RENAME TO events;
    CREATE INDEX events_kind ON events(kind);
    CREATE INDEX events_source ON events(source);
    CREATE INDEX events_source_kind ON events(source, kind);
    CREATE INDEX events_timestamp ON events(timestamp);
    CREATE INDEX events_run_track ON events(run_id, track_id);
    CREATE INDEX events_zone ON events(zone) WHERE zone IS NOT NULL;
    CREATE TRIGGER events_uncounted AFTER DELETE ON events BEGIN
        UPDATE event_counts SET n = n - 1 WHERE kind = old.kind AND source = old.source;
        UPDATE event_meta SET value = value + 1 WHERE key = 'deletions';
    END;
    INSERT INTO event_meta (key, value) SELECT 'next_person', coalesce(max(person_id), 0) + 1 FROM events;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


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
    """Create the database at ``path`` (and its folder) or migrate it to :data:`SCHEMA_VERSION`, then add the
    events of its journal, if any (:func:`replay_journal`).

    Returns ``(version_before, version_after)``; ``(0, SCHEMA_VERSION)`` for a new file. Idempotent: an up-to-date
    database with no journal is left as it is (even a read-only one). Raises :class:`EventStoreError` (one line)
    when it cannot.
    """
    conn, before, after = _open_writer(path, writable=False)
    try:
        replay_journal(conn, path)
    except apsw.Error as exc:
        raise EventStoreError(_explain(exc, path, "add the journal's events to")) from None
    except OSError as exc:
        raise EventStoreError(_explain(exc, journal.journal_path(path), "read the events journal")) from None
    finally:
        conn.close()
    return before, after


# -- writing events ------------------------------------------------------------------------------------------------
_INSERT = ("INSERT INTO events (kind, person_id, timestamp, source, frame_index, people_count, device, run_id, "
           "track_id, reason, snapshot, zone, direction, dwell_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_COUNT = ("INSERT INTO event_counts (kind, source, n) VALUES (?, ?, ?) "
          "ON CONFLICT (kind, source) DO UPDATE SET n = n + excluded.n")


def _insert_events(conn, rows: List[tuple], known: Optional[Dict[Tuple[str, int], int]] = None
                   ) -> Dict[Tuple[str, int], int]:
    """Insert ``rows`` (tuples in :data:`journal.FIELDS` order, the tracker's id second) and add them to
    ``event_counts``; inside the caller's transaction.

    Each (run_id, track id) gets one database-wide ``person_id``: the one it has (``known``, else a row already
    stored) or the next free one (``event_meta`` 'next_person'). Rows without a run (a journal of pose_fast before
    schema 3) keep their id. Returns the pairs given a person id here, valid once the transaction commits."""
    known = {} if known is None else known
    new: Dict[Tuple[str, int], int] = {}
    next_person = None
    out = []
    for row in rows:
        run, track = row[7], row[1]
        if not run:
            person = track
        else:
            key = (run, track)
            person = known.get(key) or new.get(key)
            if person is None:
                found = conn.execute("SELECT person_id FROM events WHERE run_id = ? AND track_id = ? LIMIT 1",
                                     key).fetchall()
                if found:
                    person = found[0][0]
                else:
                    if next_person is None:
                        next_person = _meta(conn, "next_person", 1)
                    person, next_person = next_person, next_person + 1
                new[key] = person
        out.append((row[0], person, row[2], row[3], row[4], row[5], row[6], run, track) + tuple(row[8:]))
    conn.executemany(_INSERT, out)
    conn.executemany(_COUNT, [(k, s, n) for (k, s), n in Counter((row[0], row[3]) for row in rows).items()])
    if next_person is not None:
        conn.execute("INSERT INTO event_meta (key, value) VALUES ('next_person', ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (next_person,))
    return new


def _meta(conn, key: str, default: int) -> int:
    found = conn.execute("SELECT value FROM event_meta WHERE key = ?", (key,)).fetchall()
    return int(found[0][0]) if found else default


def _apply_journal(conn, batches: Iterable[journal.Batch]) -> Tuple[int, Set[str]]:
    """Inside the caller's write transaction: insert the journal batches not applied before, each with its
    ``event_meta`` marker (see :mod:`~pose_fast.events.journal`). Returns (events inserted, every batch id seen:
    all are in the database once the transaction commits)."""
    added, seen = 0, set()
    for batch, rows in batches:
        seen.add(batch)
        key = journal.marker_key(batch)
        if conn.execute("SELECT 1 FROM event_meta WHERE key = ?", (key,)).fetchall():
            continue  # applied before: a crash came between that commit and the journal's removal
        _insert_events(conn, rows)
        conn.execute("INSERT INTO event_meta (key, value) VALUES (?, ?)", (key, len(rows)))
        added += len(rows)
    return added, seen


def replay_journal(conn, path) -> int:
    """Add the events of the journal beside the database ``path`` (:mod:`~pose_fast.events.journal`) through
    ``conn`` (no transaction open), exactly once: one transaction, the journal removed after its commit. Returns how
    many events were added (0 without a journal). Raises apsw errors (BusyError when the database stays locked:
    the journal is kept) and OSError (a journal that cannot be read)."""
    if str(path) == ":memory:":
        return 0
    with journal.claim(path, KINDS) as batches:
        if not batches:
            return 0  # no journal, or one with no readable line (removed on leaving the block)
        conn.execute("BEGIN IMMEDIATE")
        try:
            added, _ = _apply_journal(conn, batches)
            conn.execute("COMMIT")
        except BaseException:
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise
    return added


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
