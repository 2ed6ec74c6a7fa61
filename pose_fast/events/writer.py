"""Writing events: :class:`EventStore`, one writer thread committing batches, and :class:`EventRecorder`."""
from __future__ import annotations

import atexit
import math
import sys
import threading
import time
import weakref
from collections import Counter, deque
from pathlib import Path
from typing import List, Optional

import apsw

from ..errors import EventStoreError
from ..timestamps import iso_utc
from .schema import KINDS, _explain, _open_writer

__all__ = ["EventStore", "EventRecorder"]

_INSERT = ("INSERT INTO events (kind, person_id, timestamp, source, frame_index, people_count, device) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
_COUNT = ("INSERT INTO event_counts (kind, source, n) VALUES (?, ?, ?) "
          "ON CONFLICT (kind, source) DO UPDATE SET n = n + excluded.n")


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
