"""Writing events: :class:`EventStore`, one writer thread committing batches, and :class:`EventRecorder`."""
from __future__ import annotations

import atexit
import contextlib
import logging
import math
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from pathlib import Path
from typing import Callable, Dict, List, Optional

import apsw
import numpy as np

from ..errors import EventStoreError
from ..timestamps import iso_utc
from . import journal
from .schema import BUSY_TIMEOUT_MS, KINDS, _apply_journal, _explain, _insert_events, _open_writer, replay_journal
from .snapshots import DEFAULT_KEEP_FILES, SnapshotFolder

__all__ = ["EventStore", "EventRecorder"]

log = logging.getLogger("pose_fast.events")

#: Longest single wait (seconds) for another program's write lock; the writer retries until its budget is spent.
_ATTEMPT = 1.0


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
    lock_wait : float
        While running: seconds the writer keeps retrying a batch (with backoff) when another program holds the
        database's write lock, before it keeps that batch in the journal beside the database instead (the events
        wait in memory meanwhile; the pipeline never does).
    close_lock_wait : float
        The same budget for :meth:`close`, so that shutdown never hangs on another program's lock: whatever is not
        committed by then goes to the journal.
    snapshot_keep : int
        Events given a ``frame`` get it stored as a JPEG in ``<path>.snapshots/`` (by the writer thread), keeping
        the newest this many files (and at most 1 GiB); 0 stores none
        (:class:`~pose_fast.events.snapshots.SnapshotFolder`).

    The journal (``<path>.journal``, :mod:`~pose_fast.events.journal`) is added to the database exactly once, in
    order, by the next commit that gets the lock: this store's, or the next opening of the database (an
    ``EventStore``, or :func:`~pose_fast.events.create_or_migrate`, i.e. ``pose-fast create-db``).

    Raises
    ------
    EventStoreError
        When the database cannot be opened, created, migrated or written (one line saying what to do).
    """

    def __init__(self, path, *, batch_size: int = 10000, flush_interval: float = 0.05, lock_wait: float = 60.0,
                 close_lock_wait: float = 5.0, snapshot_keep: int = DEFAULT_KEEP_FILES):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(flush_interval, (int, float)) or not 0 < flush_interval <= 60:
            raise ValueError(f"flush_interval must be seconds in (0, 60], got {flush_interval!r}")
        for name, value in (("lock_wait", lock_wait), ("close_lock_wait", close_lock_wait)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 86400:
                raise ValueError(f"{name} must be seconds in [0, 86400], got {value!r}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.lock_wait = float(lock_wait)
        self.close_lock_wait = float(close_lock_wait)
        self.snapshots = SnapshotFolder(self.path, snapshot_keep if str(self.path) != ":memory:" else 0)
        self._conn, self.version_before, _ = _open_writer(self.path)
        self._persons: Dict[tuple, int] = {}  # (run_id, track id) -> person_id, as committed
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._closing = False
        self._close_deadline = math.inf
        self._closed = False
        self._error: Optional[EventStoreError] = None
        self._written = 0
        self._unsaved = 0
        self._kept: Dict[str, int] = {}  # batch id -> events this store put in the journal, not yet known added
        self._locked_for = 0.0  # the longest a batch waited for the lock before going to the journal
        self._use_journal = str(self.path) != ":memory:"
        self._journal_broken = False
        if self._use_journal:
            try:
                self._conn.setbusytimeout(int(_ATTEMPT * 1000))  # not the full timeout: the writer retries anyway
                try:
                    replay_journal(self._conn, self.path)
                finally:
                    self._conn.setbusytimeout(BUSY_TIMEOUT_MS)
            except apsw.BusyError:
                pass  # still locked: this store's first commit adds them (or the next start)
            except apsw.Error as exc:
                self._conn.close()
                raise EventStoreError(_explain(exc, self.path, "add the journal's events to")) from None
            except OSError as exc:
                self._journal_unreadable(exc)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"EventStore({self.path.name})", daemon=True)
        self._thread.start()
        _open_stores.add(self)

    # -- producer side (any thread; never blocks on the disk) --------------------------------------------------
    def add(self, kind: str, track_id: int, frame_index: int, timestamp: float, people_count: int,
            source: str = "", device: str = "", *, run_id: str = "", reason: Optional[str] = None,
            frame: Optional[np.ndarray] = None, zone: Optional[str] = None, direction: Optional[str] = None,
            dwell_s: Optional[float] = None) -> None:
        """Queue one event; returns at once. Raises EventStoreError once the writer has failed or after close().

        ``track_id`` is the tracker's id in the run ``run_id``; the writer gives each (run, track) one database-wide
        ``person_id`` (without a run, the track id is stored as the person id). ``frame``: the annotated frame, a
        copy no one changes any more, stored as the event's snapshot by the writer thread."""
        if self._error is not None:
            raise self._error
        if self._closing:
            raise EventStoreError(f"the events store {self.path} is closed; events can no longer be added")
        if kind not in KINDS:
            raise ValueError(f"kind must be 'enter' or 'exit', got {kind!r}")
        timestamp = float(timestamp)
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite seconds since the epoch, got {timestamp}")
        self._queue.append((kind, int(track_id), timestamp, str(source), int(frame_index), int(people_count),
                            str(device), str(run_id), reason, frame, zone, direction,
                            None if dwell_s is None else float(dwell_s)))
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every event added before this call is committed (or, after ``lock_wait`` seconds of another
        program's lock, kept in the journal); False on timeout."""
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
    def unsaved(self) -> int:
        """Events lost: neither committed nor kept in the journal (a failed disk, a refused database)."""
        return self._unsaved

    @property
    def journaled(self) -> int:
        """Events this store kept in the journal that are not in the database yet (as far as it knows)."""
        return sum(self._kept.values())

    @property
    def error(self) -> Optional[EventStoreError]:
        """The writer's failure, if any (it stopped writing then)."""
        return self._error

    def close(self) -> None:
        """Commit every queued event, stop the writer, close the database. Idempotent.

        When another program holds the database's write lock, this retries for ``close_lock_wait`` seconds, then
        keeps what is left in the journal beside the database (added at the next start) and raises
        EventStoreError saying so. A second Ctrl-C or SIGTERM arriving while this waits is held back until the
        commit is done, then re-raised. Raises EventStoreError if the writer failed (the message says how many
        events were not saved).
        """
        with self._lock:
            if self._closed:
                if self._error is not None:
                    raise self._error
                return
            self._close_deadline = time.monotonic() + self.close_lock_wait
            self._closing = True
            self._wake.set()
            interrupted = None
            while self._thread.is_alive():
                try:
                    self._thread.join(0.1)
                except (KeyboardInterrupt, SystemExit) as exc:  # finish committing first
                    interrupted = exc
            self._drain()  # an add() racing with close() may have queued after the writer's last look
            if self._kept:
                self._settle_kept()
                if self._kept and self._error is None:
                    self._error = EventStoreError(
                        f"cannot write events to {self.path}: the database stayed locked by another program for "
                        f"{self._locked_for:.1f} s; {self.journaled} events were kept in "
                        f"{journal.journal_path(self.path)} and will be added to the database at the next start "
                        f"({self._written} saved before)")
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
        rows = [(k, p, fmt(t), s, f, n, d, run, why, self._snapshot(k, p, t, run, image), zone, way, dwell)
                for (k, p, t, s, f, n, d, run, why, image, zone, way, dwell) in batch]
        conn = self._conn
        started = time.monotonic()
        delay = 0.02
        while True:
            deadline = started + self.lock_wait
            if self._closing:
                deadline = min(deadline, self._close_deadline)
            try:
                # wait for the lock at most until the deadline (0: one try), and never long at a time, so that a
                # close() arriving meanwhile applies its shorter budget
                conn.setbusytimeout(int(max(0.0, min(deadline - time.monotonic(), _ATTEMPT)) * 1000))
                self._commit(rows)
                return
            except apsw.BusyError as exc:
                # another program holds the write lock: keep the events, retry until the budget is spent
                now = time.monotonic()
                if now >= deadline:
                    self._keep(rows, now - started, exc)
                    return
                time.sleep(min(delay, deadline - now))
                delay = min(2 * delay, 0.5)
            except apsw.Error as exc:
                self._fail(exc, rows)
                return

    def _commit(self, rows):
        """One transaction: the journal's events first, if there is a journal (they are older), then ``rows``."""
        conn = self._conn
        with contextlib.ExitStack() as stack:
            batches = None
            if self._use_journal and not self._journal_broken:
                try:
                    batches = stack.enter_context(journal.claim(self.path, KINDS))
                except OSError as exc:
                    self._journal_unreadable(exc)
            seen = set()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if batches:
                    _, seen = _apply_journal(conn, batches)
                persons = _insert_events(conn, rows, self._persons)
                conn.execute("COMMIT")
            except BaseException:
                if not conn.getautocommit():
                    conn.execute("ROLLBACK")
                raise
        # committed (and the journal removed on leaving the block)
        if len(self._persons) > 100000:  # runs long past: looked up in the database again if they ever return
            self._persons.clear()
        self._persons.update(persons)
        self._written += len(rows)
        self.snapshots.warn_once()
        for batch in seen.intersection(self._kept):
            self._written += self._kept.pop(batch)

    def _snapshot(self, kind, track, timestamp, run, image) -> Optional[str]:
        if image is None:
            return None
        stamp = iso_utc(timestamp).replace(":", "").replace("-", "")
        return self.snapshots.save(image, f"{stamp}-{run[:12] or 'run'}-{track}-{kind}.jpg")

    def _keep(self, rows, waited, busy):
        """The lock stayed held for the whole budget: append ``rows`` to the journal instead."""
        if not self._use_journal:
            self._fail(busy, rows)
            return
        try:
            batch = journal.append(self.path, rows)
        except OSError as exc:
            self._fail(busy, rows, f"cannot write events to {self.path}: the database stayed locked by another "
                                   f"program for {waited:.1f} s and the journal {journal.journal_path(self.path)} "
                                   f"cannot be written either ({exc.strerror or exc})")
            return
        self._kept[batch] = len(rows)
        self._locked_for = max(self._locked_for, waited)
        if not self._closing and len(self._kept) == 1:
            log.warning("the events database %s stayed locked by another program for %.0f s; events are kept in "
                        "the journal %s until it is free", self.path, waited, journal.journal_path(self.path))

    def _fail(self, err, rows, msg=None):
        # list() copies the deque in one step under the GIL; a generator over it would see add() appending
        # meanwhile ("deque mutated during iteration") and kill this thread before the error is set
        pending = list(self._queue)
        self._unsaved += len(rows) + sum(1 for item in pending if type(item) is not _Flush)
        if msg is None:
            msg = _explain(err, self.path, "write events to", getattr(self._conn, "system_errno", 0))  # 0: old apsw
        kept = (f", {self.journaled} kept in {journal.journal_path(self.path)} for the next start"
                if self._kept else "")
        self._error = EventStoreError(f"{msg} ({self._unsaved} events not saved{kept}; {self._written} saved before)")

    def _settle_kept(self):
        """Drop from ``_kept`` the batches another process already added from the journal (their markers)."""
        keys = {journal.marker_key(batch): batch for batch in self._kept}
        try:
            self._conn.setbusytimeout(100)
            marks = ",".join("?" * len(keys))
            found = [row[0] for row in self._conn.execute(f"SELECT key FROM event_meta WHERE key IN ({marks})",
                                                          tuple(keys))]
        except apsw.Error:
            return
        for key in found:
            self._written += self._kept.pop(keys[key])

    def _journal_unreadable(self, exc):
        self._journal_broken = True
        log.warning("the events journal %s cannot be read (%s); its events stay there until it can be",
                    journal.journal_path(self.path), exc.strerror or exc)

    def __repr__(self):
        return f"EventStore({str(self.path)!r}, written={self._written}, pending={self.pending})"


class EventRecorder:
    """The events of one run of one camera: binds its name, the device and a new ``run_id`` to a store.

    :meth:`record` is a ``Tracker`` ``on_event`` callable, :meth:`record_zone` a ``ZoneTracker`` one. Given to a
    :class:`~pose_fast.pipeline.Pipeline` as its ``events``, it is also the last sink: :meth:`write` hands the
    events of each frame over with that frame, drawn, as their snapshot (a copy per event, not per frame), and the
    pipeline names the ``reason`` of the exits it forces (:meth:`ending`: the stream was lost, the run ended; these,
    and the zone exits they cause, have no frame). Exits the tracker decides are ``left``.
    """

    #: The ``reason`` of an exit: the person left the view; the stream was lost; the run ended with them in view.
    LEFT, STREAM_LOST, RUN_ENDED = "left", "stream lost", "run ended"

    def __init__(self, store: EventStore, source: str, device: str = "", run_id: Optional[str] = None,
                 snapshots: bool = True, on_error: Optional[Callable[[EventStoreError], None]] = None):
        self.store = store
        self.source = str(source)
        self.device = str(device)
        self.run_id = run_id or uuid.uuid4().hex
        self.snapshots = bool(snapshots) and store.snapshots.enabled
        self.on_error = on_error  # given: a failing store is reported to it instead of raised (a live view goes on)
        self._reason: Optional[str] = None  # set by ending(): the exits are forced, not seen
        self._pending: List[tuple] = []  # this frame's events (store.add's arguments), waiting for its drawn image
        self._sink = False  # a pipeline delivers the frames (attach()): snapshots can be taken

    def record(self, kind: str, track_id: int, frame_index: int, timestamp: float, people_count: int) -> None:
        """``on_event(kind, track_id, frame_index, timestamp, people_count)``: queue the event (never blocks)."""
        reason = (self._reason or self.LEFT) if kind == "exit" else None
        self._queue(kind, track_id, frame_index, timestamp, people_count, dict(reason=reason))

    def attach(self) -> EventRecorder:
        """Called by the pipeline this recorder is the ``events`` of: from now on :meth:`write` sees every frame."""
        self._sink = True
        return self

    def write(self, result) -> None:
        """Pipeline sink (after the overlay): store the events decided on this frame with a copy of it, drawn
        (an enter is stamped with the frame the person was first seen; its snapshot is the frame that made them a
        person)."""
        if self._pending:
            pending, self._pending = self._pending, []  # decided while tracking this very frame
            for args, options in pending:
                self._store(args, dict(options, frame=result.frame.copy()))

    def flush(self) -> None:
        """Store the events still waiting for a frame, without a snapshot."""
        pending, self._pending = self._pending, []
        for args, options in pending:
            self._store(args, options)

    @contextlib.contextmanager
    def ending(self, reason: str):
        """``with recorder.ending(EventRecorder.STREAM_LOST): tracker.close(...)``: the exits get ``reason``."""
        self.flush()
        self._reason = reason
        try:
            yield self
        finally:
            self._reason = None

    def record_zone(self, kind: str, track_id: int, frame_index: int, timestamp: float, people_count: int,
                    zone: Optional[str] = None, direction: Optional[str] = None,
                    dwell_s: Optional[float] = None) -> None:
        """A :class:`~pose_fast.zones.ZoneTracker` ``on_event``: a zone or line event of this run (with its frame,
        as :meth:`record`'s)."""
        self._queue(kind, track_id, frame_index, timestamp, people_count,
                    dict(zone=zone, direction=direction, dwell_s=dwell_s))

    def _queue(self, kind, track_id, frame_index, timestamp, people_count, options: dict) -> None:
        """Hold the event for :meth:`write` to store with this frame, or store it now when it can have none."""
        args = (kind, track_id, frame_index, timestamp, people_count, self.source, self.device)
        options["run_id"] = self.run_id
        if self._sink and self.snapshots and self._reason is None:
            self._pending.append((args, options))  # write() adds it with its frame
        else:
            self._store(args, options)

    def _store(self, args: tuple, options: dict) -> None:
        try:
            self.store.add(*args, **options)
        except EventStoreError as exc:
            if self.on_error is None:
                raise
            self.on_error(exc)

    close = flush
    __call__ = record
