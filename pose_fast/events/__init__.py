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

Another program holding the database's write lock makes the writer retry with backoff (``lock_wait``, 60 s, while
running; ``close_lock_wait``, 5 s, in :meth:`EventStore.close`). What is still not committed then goes to the
journal beside the database (``<db>.journal``, JSON Lines, fsynced: :mod:`~pose_fast.events.journal`), and
``close()`` raises an :class:`EventStoreError` saying the events were kept there. The next commit that gets the lock
(this store's, the next ``EventStore`` opened on the file, or :func:`create_or_migrate`) adds the journal's events
exactly once, in order, before its own, then removes the journal. Readers ignore the journal.

Database
--------
The default location is :func:`default_db_path` (``$POSE_FAST_DB``, else the per-user data folder). Journal mode WAL,
``synchronous=NORMAL``, a busy timeout, and the schema version in ``PRAGMA user_version``; :func:`create_or_migrate`
brings any older pose_fast database up to :data:`SCHEMA_VERSION` (idempotent, safe with concurrent callers).
Table ``events``: ``id`` (ascending, stable), ``kind`` ("enter"/"exit"), ``person_id`` (tracker id), ``timestamp``
(ISO-8601 UTC, ``2026-11-25T07:00:00.123Z``: sorts as text), ``source``, ``frame_index``, ``people_count``, ``device``.
Events are appended only through :class:`EventStore`, which also keeps the per-(kind, source) totals in
``event_counts`` that the API counts with; deleting events by hand is fine (a trigger fixes the totals).

Modules
-------
:mod:`~pose_fast.events.schema` (the schema, its migrations, connections, paths and error messages),
:mod:`~pose_fast.events.writer` (:class:`EventStore`, :class:`EventRecorder`), :mod:`~pose_fast.events.reader`
(:func:`read_events`, :func:`count_events`), :mod:`~pose_fast.events.journal` (the journal file: format, locking,
appending, reading back) and :mod:`~pose_fast.events.signals` (:func:`exit_on_sigterm`). Writer and reader import
the schema module; the schema module imports neither, only the journal module, which imports no other.
"""
from __future__ import annotations

from ..errors import EventStoreError
from .reader import count_events, read_event, read_events
from .schema import KINDS, SCHEMA_VERSION, create_or_migrate, default_db_path, resolve_db_path
from .signals import exit_on_sigterm
from .snapshots import SnapshotFolder, snapshot_folder
from .writer import EventRecorder, EventStore

__all__ = [
    "EventStore", "EventRecorder", "read_event", "SnapshotFolder", "snapshot_folder", "EventStoreError",
    "SCHEMA_VERSION", "KINDS", "default_db_path",
    "resolve_db_path", "create_or_migrate", "read_events",
    "exit_on_sigterm", "count_events",
]
