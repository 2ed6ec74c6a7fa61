"""The journal beside the events database: where the writer keeps the events it could not commit because another
program held the database's write lock too long (at shutdown, or for minutes while running).

File
----
``<database>.journal`` (``events.sqlite3.journal``; not SQLite's own ``-journal``), JSON Lines, one event per line,
append-only::

    {"batch": "4f0c...", "kind": "enter", "person_id": 3, "timestamp": "2025-11-25T06:00:00.250Z", "source": "cam",
     "frame_index": 10, "people_count": 1, "device": "CPU"}

The columns of table ``events`` (the timestamp as stored) plus ``batch``, a random id (``uuid4().hex``) shared by
the events appended together. Each batch is appended with one ``write`` under the lock below, then ``fsync``\\ ed;
the folder is ``fsync``\\ ed when the file is created. A crash in the middle of an append leaves a last line without
its newline: that line is skipped with a warning (so is any line that is not a valid event), the others are added.
An append after such a crash starts on a new line, so it never mends the torn one into garbage.

Exactly once
------------
The replay (:func:`~pose_fast.events.schema.replay_journal`, or the writer's next commit) adds the journal's events
in one transaction together with one row per batch in table ``event_meta``: key ``journal <batch>``, value the
number of events; batches already there are skipped. The journal is removed only after that commit. A crash between
the commit and the removal therefore leaves a journal whose batches are all recorded: the next replay adds nothing
and removes it. (``event_meta`` has been a key/value table since schema version 2: no schema change. The rows stay,
a few bytes per batch, so a removal a power cut undoes is still harmless.)

Concurrency
-----------
Appending and replaying take an exclusive ``flock`` on the file (POSIX; on Windows there is no lock: one writer per
database there). A replay holds it from reading the file until the file is removed, so an append cannot land in a
file about to be removed; an appender that opened the file before the removal sees that the path no longer names
its file and opens it again.

This module knows the file only; the SQL is in :mod:`~pose_fast.events.schema`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["FIELDS", "journal_path", "marker_key", "append", "claim"]

log = logging.getLogger("pose_fast.events")

#: The columns of one event, in the order of the rows the writer inserts.
FIELDS = ("kind", "person_id", "timestamp", "source", "frame_index", "people_count", "device", "run_id", "reason",
          "snapshot", "zone", "direction", "dwell_s")
_TYPES = (str, int, str, str, int, int, str)  # required; the others (schema 3) may be absent (older journals)
_OPTIONAL = ((str, ""), (str, None), (str, None), (str, None), (str, None), ((int, float), None))

Batch = Tuple[str, List[tuple]]  # (batch id, rows in FIELDS order)
_warned: set = set()  # the unreadable journals already reported


def journal_path(db_path) -> Path:
    """The journal of the database at ``db_path``: ``<db_path>.journal``."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".journal")


def marker_key(batch: str) -> str:
    """The ``event_meta`` key that says a batch of the journal is in the database."""
    return f"journal {batch}"


# -- the file, locked -----------------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # folders cannot be opened (nor need to be synced) there
        return
    fd = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_locked(path: Path, create: bool) -> Optional[int]:
    """A descriptor of the file at ``path`` holding its exclusive lock; None when there is no such file (and not
    ``create``). Retries when the file was removed or replaced while we waited for the lock."""
    flags = os.O_RDWR | (os.O_APPEND | os.O_CREAT if create else 0) | getattr(os, "O_BINARY", 0)
    while True:
        try:
            fd = os.open(str(path), flags, 0o666)
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(str(path))
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # a replay removed it meanwhile: start again with what the path names now


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append(db_path, rows: Sequence[tuple]) -> str:
    """Append ``rows`` (tuples in :data:`FIELDS` order) to the journal of ``db_path`` as one batch, durably
    (``fsync`` of the file, and of the folder when the file is new). Returns the batch id. Raises OSError."""
    path = journal_path(db_path)
    batch = uuid.uuid4().hex
    data = "".join(json.dumps({"batch": batch, **dict(zip(FIELDS, row))}) + "\n" for row in rows).encode("ascii")
    fd = _open_locked(path, create=True)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":  # a torn line from a crash: keep it apart from this batch
                data = b"\n" + data
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0:
        _fsync_dir(path.parent)
    return batch


# -- reading it back ----------------------------------------------------------------------------------------------
def _row(line: bytes, kinds) -> Tuple[str, tuple]:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    batch = obj.get("batch")
    if not isinstance(batch, str) or not batch:
        raise ValueError("no batch id")
    row = []
    for name, kind in zip(FIELDS, _TYPES):
        value = obj.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{name} missing or not {kind.__name__}")
        row.append(value)
    for name, (kind, default) in zip(FIELDS[len(_TYPES):], _OPTIONAL):
        value = obj.get(name, default)
        if value is not default and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ValueError(f"{name} is not {getattr(kind, '__name__', 'a number')}")
        row.append(value)
    if row[0] not in kinds:
        raise ValueError(f"kind {row[0]!r}")
    return batch, tuple(row)


def _parse(path: Path, data: bytes, kinds) -> List[Batch]:
    *lines, tail = data.split(b"\n")
    batches: Dict[str, List[tuple]] = {}
    invalid: List[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            batch, row = _row(line, kinds)
        except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            invalid.append(f"line {number}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        batches.setdefault(batch, []).append(row)
    torn = len(lines) + 1 if tail.strip() else None
    key = (str(path), len(data), tuple(invalid), torn)
    if (invalid or torn) and key not in _warned:  # once, not at every retry of a locked database
        _warned.add(key)
        parts = []
        if invalid:
            parts.append(f"{len(invalid)} not a valid event ({invalid[0]}{', ...' if len(invalid) > 1 else ''})")
        if torn:
            parts.append(f"the last, line {torn}, cut short by a crash while it was written")
        log.warning("the events journal %s: skipped %d line(s): %s; adding the other %d events", path,
                    len(invalid) + bool(torn), "; ".join(parts), sum(len(rows) for rows in batches.values()))
    return list(batches.items())


@contextlib.contextmanager
def claim(db_path, kinds) -> Iterator[Optional[List[Batch]]]:
    """``with claim(db, KINDS) as batches:`` the journal's batches (``[(batch id, rows)]``, in file order), locked
    against appends; None when there is no journal. Commit them inside the block: leaving it normally removes the
    journal (a failure to remove it is only a warning: the batches are recorded, the next replay skips them);
    leaving it by an exception keeps it. Raises OSError when the journal cannot be read."""
    path = journal_path(db_path)
    fd = _open_locked(path, create=False) if path.exists() else None
    if fd is None:
        yield None
        return
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        yield _parse(path, b"".join(chunks), kinds)
        _remove(path)
    finally:
        os.close(fd)  # releases the lock


def _remove(path: Path) -> None:
    try:
        os.unlink(str(path))
        _fsync_dir(path.parent)
    except OSError as exc:
        log.warning("the events journal %s was added to the database but cannot be removed (%s); the next start "
                    "removes it without adding anything twice", path, exc.strerror or exc)
