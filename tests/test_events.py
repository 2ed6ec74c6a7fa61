"""EventStore on real SQLite files: schema, migrations, batching, shutdown (close, atexit, SIGTERM, Ctrl-C, SIGKILL),
full and read-only databases, and the tracker -> recorder -> store path (on the real model too)."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import apsw
import numpy as np
import pytest
from support import make_v1_database

from pose_fast.events import (
    SCHEMA_VERSION,
    EventRecorder,
    EventStore,
    EventStoreError,
    create_or_migrate,
    default_db_path,
    journal,
    read_events,
    resolve_db_path,
    schema,
)
from pose_fast.timestamps import iso_utc, parse_iso_utc
from pose_fast.tracking import Tracker

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_764_050_400.25  # 2025-11-25T06:00:00.250Z


def db_rows(path, sql="SELECT frame_index FROM events ORDER BY id"):
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [row[0] if len(row) == 1 else row for row in conn.execute(sql)]
    finally:
        conn.close()


def integrity(path):
    conn = apsw.Connection(str(path))
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()[0][0]
    finally:
        conn.close()


def test_events_round_trip_with_all_fields(tmp_path):
    path = tmp_path / "sub" / "events.sqlite3"  # the folder is created
    with EventStore(path) as store:
        recorder = EventRecorder(store, source="store-aisle.mp4", device="CPU")
        recorder.record("enter", np.int64(3), np.int64(10), T0, np.int32(1))
        recorder("exit", 3, 42, T0 + 4.2, 0)
    rows, count = read_events(path)
    assert count == 2
    run = recorder.run_id
    extra = {"run_id": run, "track_id": 3, "snapshot": None, "zone": None, "direction": None, "dwell_s": None}
    assert rows == [
        {"id": 1, "kind": "enter", "person_id": 1, "timestamp": "2025-11-25T06:00:00.250Z",
         "source": "store-aisle.mp4", "frame_index": 10, "people_count": 1, "device": "CPU", "reason": None,
         **extra},
        {"id": 2, "kind": "exit", "person_id": 1, "timestamp": "2025-11-25T06:00:04.450Z",
         "source": "store-aisle.mp4", "frame_index": 42, "people_count": 0, "device": "CPU", "reason": "left",
         **extra},
    ]


def test_person_ids_are_unique_in_the_database_across_runs_and_stores(tmp_path):
    """Every run's tracker starts again at 1; the database gives each (run, track) its own person id, also when
    a second store (another process) writes to the same file, and when a run's events come in several batches."""
    path = tmp_path / "e.db"
    with EventStore(path) as first, EventStore(path) as second:
        a = EventRecorder(first, "door")
        b = EventRecorder(second, "desk")
        a("enter", 1, 0, T0, 1)
        b("enter", 1, 0, T0, 1)
        first.flush(10)
        second.flush(10)
        a("enter", 2, 5, T0 + 1, 2)
        a("exit", 1, 9, T0 + 2, 1)  # a later batch: the same person as the first enter
        b("exit", 1, 9, T0 + 2, 0)
    with EventStore(path) as third:  # a new run on the same camera after a restart
        c = EventRecorder(third, "door")
        c("enter", 1, 0, T0 + 10, 1)
    rows, _ = read_events(path)
    who = {(r["run_id"], r["track_id"]): r["person_id"] for r in rows}
    assert len(who) == 4 and sorted(who.values()) == [1, 2, 3, 4]
    for r in rows:
        assert r["person_id"] == who[(r["run_id"], r["track_id"])]
    assert {r["source"] for r in rows if r["person_id"] == who[(a.run_id, 1)]} == {"door"}


def test_schema_2_database_migrates_keeping_its_rows_and_ids(tmp_path):
    """A round-1 database (schema 2): every row kept with its id and person id; new people get ids after the
    old ones, so nobody is shown as an old #1."""
    import apsw

    from pose_fast.events.schema import MIGRATIONS

    path = tmp_path / "old.db"
    conn = apsw.Connection(str(path))
    for step in MIGRATIONS[:2]:
        conn.execute(step)
    conn.execute("PRAGMA user_version = 2")
    conn.executemany("INSERT INTO events (kind, person_id, timestamp, source, frame_index, people_count, device) "
                     "VALUES (?, ?, ?, 'camera 0', ?, 1, 'CPU')",
                     [("enter", 1, "2025-01-01T00:00:00.000Z", 0), ("exit", 1, "2025-01-01T00:00:01.000Z", 9),
                      ("enter", 7, "2025-01-01T00:00:02.000Z", 20)])
    conn.execute("INSERT INTO event_counts VALUES ('enter', 'camera 0', 2), ('exit', 'camera 0', 1)")
    conn.close()
    with EventStore(path) as store:
        assert store.version_before == 2
        EventRecorder(store, "door")("enter", 1, 0, T0, 1)
    rows, count = read_events(path)
    assert count == 4
    assert [(r["id"], r["person_id"], r["track_id"], r["run_id"]) for r in rows[:3]] == [
        (1, 1, 1, ""), (2, 1, 1, ""), (3, 7, 7, "")]
    assert rows[3]["person_id"] == 8 and rows[3]["source"] == "door"
    assert read_events(path, kind="enter")[1] == 3


def test_snapshots_are_written_by_the_store_and_capped(tmp_path):
    """A frame given with an event becomes a JPEG beside the database; beyond the cap the oldest go first;
    0 keeps none (and the event is still stored)."""
    import cv2

    path = tmp_path / "e.db"
    frame = np.zeros((48, 64, 3), np.uint8)
    with EventStore(path, snapshot_keep=3) as store:
        for i in range(5):
            frame[:] = 40 * i
            store.add("enter", i, i, T0 + i, 1, "door", run_id="r1", frame=frame.copy())
    rows, _ = read_events(path)
    names = [r["snapshot"] for r in rows]
    assert all(names) and len(set(names)) == 5
    folder = tmp_path / "e.db.snapshots"
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(names[2:])  # the two oldest removed
    image = cv2.imread(str(folder / names[4]))
    assert image.shape == (48, 64, 3) and abs(int(image.mean()) - 160) <= 2
    with EventStore(tmp_path / "none.db", snapshot_keep=0) as store:
        store.add("enter", 1, 0, T0, 1, "door", run_id="r2", frame=frame)
    rows, count = read_events(tmp_path / "none.db")
    assert count == 1 and rows[0]["snapshot"] is None
    assert not (tmp_path / "none.db.snapshots").exists()


def test_pragmas_and_schema_version(tmp_path):
    path = tmp_path / "e.db"
    store = EventStore(path)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchall()[0][0] == 1  # NORMAL
        assert store._conn.execute("PRAGMA busy_timeout").fetchall()[0][0] == schema.BUSY_TIMEOUT_MS
    finally:
        store.close()
    conn = apsw.Connection(str(path))
    assert conn.execute("PRAGMA journal_mode").fetchall()[0][0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchall()[0][0] == SCHEMA_VERSION
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_kind", "events_source", "events_timestamp"} <= indexes
    conn.close()


def test_migration_from_version_1_keeps_events_and_backfills_counts(tmp_path):
    path = tmp_path / "old.db"
    make_v1_database(path, [("enter" if i % 3 else "exit", i, iso_utc(T0 + i), "old", i, 1, "CPU")
                            for i in range(30)])
    assert create_or_migrate(path) == (1, SCHEMA_VERSION)
    assert create_or_migrate(path) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    with EventStore(path) as store:
        store.add("enter", 99, 30, T0 + 30, 1, "new", "GPU")
    assert read_events(path)[1] == 31
    assert read_events(path, kind="exit")[1] == 10
    assert read_events(path, source="old", kind="enter")[1] == 20
    assert [r["person_id"] for r in read_events(path, offset=29, limit=5)[0]] == [29, 99]


def test_concurrent_migrations_are_safe(tmp_path):
    path = tmp_path / "race.db"
    code = f"from pose_fast.events import create_or_migrate; print(create_or_migrate({str(path)!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs.count(f"(0, {SCHEMA_VERSION})") == 1, outs  # exactly one created it
    assert integrity(path) == "ok"


def test_bad_databases_are_one_line_errors(tmp_path):
    newer = tmp_path / "newer.db"
    conn = apsw.Connection(str(newer))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(EventStoreError, match=rf"^{newer} has schema version {SCHEMA_VERSION + 1}, newer than"):
        EventStore(newer)

    foreign = tmp_path / "foreign.db"
    conn = apsw.Connection(str(foreign))
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(EventStoreError, match="is an SQLite database of another program"):
        EventStore(foreign)
    assert db_rows(foreign, "SELECT name FROM sqlite_master") == ["invoices"]  # untouched

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 200)
    with pytest.raises(EventStoreError, match="the file is not an SQLite database") as info:
        EventStore(text)
    assert "\n" not in str(info.value)

    with pytest.raises(EventStoreError, match=r"^no events database at .*missing.db; run `pose-fast create-db"):
        read_events(tmp_path / "missing.db")

    blank = tmp_path / "blank.db"
    apsw.Connection(str(blank)).execute("PRAGMA user_version = 0").fetchall()
    blank.write_bytes(b"")
    with pytest.raises(EventStoreError, match=r"has schema version 0, expected 3; run `pose-fast create-db"):
        read_events(blank)


def test_add_validates_and_closed_store_refuses(tmp_path):
    store = EventStore(tmp_path / "e.db")
    with pytest.raises(ValueError, match="kind must be 'enter' or 'exit', got 'left'"):
        store.add("left", 1, 1, T0, 0)
    with pytest.raises(ValueError, match="timestamp must be finite"):
        store.add("enter", 1, 1, float("nan"), 0)
    store.add("enter", 1, 1, T0, 1)
    assert store.flush(timeout=30)
    assert store.written == 1 and store.pending == 0
    store.close()
    store.close()  # idempotent
    with pytest.raises(EventStoreError, match="is closed; events can no longer be added"):
        store.add("exit", 1, 2, T0, 0)


def test_close_commits_everything_even_before_the_first_batch(tmp_path):
    path = tmp_path / "e.db"
    store = EventStore(path, flush_interval=60, batch_size=1_000_000)
    for i in range(50_000):
        store.add("enter" if i % 2 == 0 else "exit", i // 2, i, T0 + i / 1000, 1, "s", "CPU")
    store.close()
    assert db_rows(path) == list(range(50_000))


def test_batches_are_committed_while_running(tmp_path):
    path = tmp_path / "e.db"
    with EventStore(path, flush_interval=0.01, batch_size=100) as store:
        for i in range(1000):
            store.add("enter", i, i, T0, 1)
        assert store.flush(timeout=30)
        assert len(db_rows(path)) == 1000  # visible to another connection before close
    assert integrity(path) == "ok"


def test_full_database_is_a_clear_error_and_keeps_stored_events(tmp_path):
    """A database that cannot grow (SQLite's max_page_count: the same SQLITE_FULL a full disk gives)."""
    path = tmp_path / "full.db"
    create_or_migrate(path)

    def limit(conn):
        conn.execute("PRAGMA max_page_count = 60")

    apsw.connection_hooks.append(limit)
    try:
        store = EventStore(path, flush_interval=0.01)
    finally:
        apsw.connection_hooks.remove(limit)
    for i in range(300):
        store.add("enter", i, i, T0 + i, 1, "cam", "CPU")
    assert store.flush(timeout=30)
    with pytest.raises(EventStoreError) as info:
        for i in range(300, 100_300):  # add() raises once the writer has failed
            store.add("exit", i, i, T0 + i, 0, "cam", "CPU")
        store.flush(timeout=30)
    message = str(info.value)
    assert "the disk or database is full" in message and "--db" in message and "\n" not in message
    assert "events not saved" in message
    with pytest.raises(EventStoreError, match="the disk or database is full"):
        store.add("enter", 1, 1, T0, 1)
    with pytest.raises(EventStoreError, match="the disk or database is full"):
        store.close()
    assert integrity(path) == "ok"
    frames = db_rows(path)
    assert frames[:300] == list(range(300))  # what was stored before is still there
    assert frames == list(range(len(frames)))  # and nothing out of order or half-written


FILE_SIZE_LIMIT = textwrap.dedent("""
    import resource, signal, sys, time
    from pose_fast.events import EventStore, EventStoreError, create_or_migrate
    path = sys.argv[1]
    create_or_migrate(path)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
    store = EventStore(path, flush_interval=0.01)
    try:
        for i in range(200_000):
            store.add("enter", i, i, time.time(), 1, "cam", "CPU")
            if i % 1000 == 999:
                store.flush()
    except EventStoreError as exc:
        print("ERROR", exc)
    try:
        store.close()
    except EventStoreError as exc:
        print("CLOSE", exc)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as a full disk: Linux")
def test_a_disk_that_refuses_writes_is_a_clear_error_and_keeps_stored_events(tmp_path):
    """The OS refuses to grow the files (RLIMIT_FSIZE: real failed write() calls, as on a full disk)."""
    path = tmp_path / "limited.db"
    result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("ERROR") and lines[1].startswith("CLOSE"), lines
    message = lines[0][len("ERROR "):]
    assert message.startswith(f"cannot write events to {path}: ") and "--db/POSE_FAST_DB" in message
    assert "full" in message
    saved = int(message.rsplit("; ", 1)[1].split()[0])
    assert saved >= 1000
    assert integrity(path) == "ok"
    assert db_rows(path) == list(range(saved))  # every event reported saved is there, in order


def _as_unprivileged(cmd):
    """Run ``cmd`` so that file permissions apply even when the tests run as root (a new user namespace)."""
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("running as root without `unshare`: file permissions cannot be tested")
        cmd = ["unshare", "--user"] + cmd
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("folder_writable", [False, True])
def test_read_only_database_is_a_clear_error_and_still_readable(tmp_path, folder_writable):
    folder = tmp_path / "ro"
    path = folder / "events.db"
    with EventStore(path) as store:
        store.add("enter", 1, 5, T0, 1, "cam", "CPU")
    path.chmod(0o444)
    folder.chmod(0o777 if folder_writable else 0o555)
    try:
        code = textwrap.dedent(f"""
            from pose_fast.events import EventStore, EventStoreError, read_events
            try:
                EventStore({str(path)!r})
            except EventStoreError as exc:
                print("ERROR", exc)
            print("COUNT", read_events({str(path)!r})[1])
        """)
        result = _as_unprivileged([sys.executable, "-c", code])
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ERROR cannot open the events database {path}: the database is read-only"), lines
    assert lines[1] == "COUNT 1"


def test_concurrent_readers_see_consistent_pages_while_the_writer_commits(tmp_path):
    """Several threads page through filtered listings (as the web server's threads do) while batches are committed:
    every page is a slice of the true listing at a count some commit had, so consecutive pages never repeat or
    skip an event. The listings' shared cache of counts and page anchors must stay consistent under the race."""
    import threading

    path = tmp_path / "busy.db"
    batches, per_batch = 40, 60
    total = batches * per_batch
    kinds = ["enter" if (i * 7) % 3 else "exit" for i in range(total)]
    times = [T0 + i * 0.01 for i in range(total)]
    since = iso_utc(times[total // 5])  # times only grow: events from total // 5 on
    start = total // 5
    filters = {  # name: (read_events arguments, does event i match)
        "enter since": ({"kind": "enter", "since": since}, lambda i: kinds[i] == "enter" and i >= start),
        "exit": ({"kind": "exit"}, lambda i: kinds[i] == "exit"),
        "since": ({"since": since}, lambda i: i >= start),
    }
    listing = {name: [i + 1 for i in range(total) if match(i)] for name, (_, match) in filters.items()}
    counts = {name: {sum(1 for i in range(b * per_batch) if match(i)) for b in range(batches + 1)}
              for name, (_, match) in filters.items()}  # the count after each commit
    create_or_migrate(path)
    done = threading.Event()
    problems = []

    def write():
        with EventStore(path, batch_size=per_batch * 2, flush_interval=60) as store:
            for b in range(batches):
                for i in range(b * per_batch, (b + 1) * per_batch):
                    store.add(kinds[i], i, i, times[i], 1, "cam", "CPU")
                store.flush()  # one commit per batch
                time.sleep(0.005)
        done.set()

    def read(seed):
        rng = np.random.default_rng(seed)
        while not problems:
            finished = done.is_set()
            name = list(filters)[rng.integers(len(filters))]
            per_page = int(rng.choice([7, 10, 16]))
            offset = 0
            while not problems:
                rows, count = read_events(path, offset=offset, limit=per_page, **filters[name][0])
                ids = [row["id"] for row in rows]
                want = listing[name][offset:min(offset + per_page, count)]
                if count not in counts[name] or ids != want:
                    problems.append((name, per_page, offset, count, ids, want))
                offset += per_page
                if offset >= count:
                    break
            if finished:
                return

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the races show up in seconds, not hours
    try:
        readers = [threading.Thread(target=read, args=(seed,)) for seed in range(4)]
        writer = threading.Thread(target=write)
        for thread in readers + [writer]:
            thread.start()
        for thread in [writer] + readers:
            thread.join(300)
    finally:
        sys.setswitchinterval(switch)
    assert done.is_set()
    assert not problems, problems[:3]


def test_default_path_is_per_user_and_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv("POSE_FAST_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert default_db_path() == tmp_path / "data" / "pose_fast" / "events.sqlite3"
        monkeypatch.delenv("XDG_DATA_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert default_db_path() == tmp_path / "home" / ".local" / "share" / "pose_fast" / "events.sqlite3"
    monkeypatch.setenv("POSE_FAST_DB", str(tmp_path / "env.db"))
    assert default_db_path() == tmp_path / "env.db"
    assert resolve_db_path(None) == tmp_path / "env.db"
    assert resolve_db_path(str(tmp_path / "flag.db")) == tmp_path / "flag.db"


def test_timestamps_are_iso_utc_with_z():
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(T0) == "2025-11-25T06:00:00.250Z"
    assert iso_utc(T0 + 0.7499) == "2025-11-25T06:00:00.999Z"  # truncated, never rounded up a second
    assert parse_iso_utc("2025-11-25T06:00:00Z") == "2025-11-25T06:00:00.000Z"
    assert parse_iso_utc("2025-11-25T08:00:00.5+02:00") == "2025-11-25T06:00:00.500Z"
    assert parse_iso_utc("2025-11-25") == "2025-11-25T00:00:00.000Z"
    with pytest.raises(ValueError, match="not an ISO-8601 date-time: 'yesterday'"):
        parse_iso_utc("yesterday")


def person_poses(*centre):
    """One scripted standing person at ``centre`` (x, y), or no one."""
    from pose_fast.poses import Poses

    if not centre:
        return Poses.empty()
    kp = np.zeros((1, 18, 3), np.float32)
    kp[0, :, 0] = centre[0] + np.linspace(-30, 30, 18)
    kp[0, :, 1] = centre[1] + np.linspace(-140, 140, 18)
    kp[0, :, 2] = 0.9
    return Poses(kp, np.ones(1, np.float32))


def test_two_stores_in_one_process_write_their_own_times(tmp_path):
    """Two writer threads (two stores) format timestamps at once: each event keeps its own time."""
    import threading

    def fill(path, base):
        with EventStore(path, batch_size=500) as store:
            for i in range(20_000):
                store.add("enter", i, i, base + i * 0.37, 1)

    bases = (T0, T0 + 86_400 * 365)
    threads = [threading.Thread(target=fill, args=(tmp_path / f"{n}.db", b)) for n, b in enumerate(bases)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, base in enumerate(bases):
        stamps = db_rows(tmp_path / f"{n}.db", "SELECT timestamp FROM events ORDER BY id")
        assert stamps == [iso_utc(base + i * 0.37) for i in range(20_000)]


def test_tracker_events_reach_the_store(tmp_path):
    path = tmp_path / "e.db"
    with EventStore(path) as store:
        tracker = Tracker(on_event=EventRecorder(store, "scripted", "CPU").record)
        for i in range(30):
            tracker.update(person_poses(300 + i, 250) if i < 20 else person_poses(), i, T0 + i / 10)
        tracker.close(30, T0 + 3.0)
    rows = db_rows(path, "SELECT kind, person_id, frame_index, people_count, source FROM events ORDER BY id")
    assert rows == [("enter", 1, 0, 1, "scripted"), ("exit", 1, 19, 0, "scripted")]


# -- shutdown: atexit, SIGTERM, Ctrl-C, SIGKILL (real child processes) ---------------------------------------------
PRODUCER = textwrap.dedent("""
    import sys, time
    from pose_fast.events import EventStore, exit_on_sigterm
    path, flush_interval, mode = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    i = 0
    def produce(store, limit=None):
        global i
        while limit is None or i < limit:
            store.add("enter" if i % 2 == 0 else "exit", i // 2, i, time.time(), 1, "child", "CPU")
            i += 1
            if i % 1000 == 0:
                if i == 5000:
                    print("ready", flush=True)
                time.sleep(0.02)
    try:
        if mode == "atexit":     # nobody closes the store: the interpreter's exit does
            store = EventStore(path, flush_interval=flush_interval)
            produce(store, 12345)
            sys.exit(0)
        with exit_on_sigterm(), EventStore(path, flush_interval=flush_interval) as store:
            produce(store)
    finally:
        print("produced", i, flush=True)
""")


def _start_producer(tmp_path, flush_interval, mode="run"):
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    path = tmp_path / "child.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(flush_interval), mode], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, path


def test_unclosed_store_is_committed_at_exit(tmp_path):
    proc, path = _start_producer(tmp_path, 60, mode="atexit")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert db_rows(path) == list(range(12345))


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)],
                         ids=["SIGTERM", "SIGINT"])
def test_signals_commit_every_event_produced(tmp_path, signum, code):
    # a flush interval far longer than the run: without the shutdown path nearly nothing would be stored
    proc, path = _start_producer(tmp_path, 60)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    produced = int(out.split()[-1])
    frames = db_rows(path)
    assert produced >= 5000
    # every event added is stored (the signal may land between add() and the counter: one more, never fewer)
    assert len(frames) in (produced, produced + 1), (len(frames), produced)
    assert frames == list(range(len(frames)))
    assert integrity(path) == "ok"


def test_sigkill_loses_at_most_the_uncommitted_tail(tmp_path):
    proc, path = _start_producer(tmp_path, 0.05)
    assert proc.stdout.readline().strip() == "ready"
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 20_000 and time.monotonic() < deadline:
        time.sleep(0.05)
        committed = len(db_rows(path)) if path.exists() else 0
    assert committed >= 20_000
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert integrity(path) == "ok"
    frames = db_rows(path)
    assert len(frames) >= committed                  # nothing committed is lost
    assert frames == list(range(len(frames)))        # no holes: only the newest, uncommitted events can be missing
    rows, count = read_events(path, offset=len(frames) - 1, limit=5)  # the API reads it
    assert count == len(frames) and rows[0]["frame_index"] == len(frames) - 1
    with EventStore(path) as store:                  # and the writer can continue it
        store.add("enter", 0, len(frames), time.time(), 1)
    assert len(db_rows(path)) == len(frames) + 1


def test_exit_on_sigterm_restores_the_previous_handler():
    # In a fresh interpreter: a real SIGTERM sent to the pytest process, after other tests loaded OpenVINO and
    # friends, was seen to crash it in the signal delivery itself (a native library's alternate signal stack).
    code = """
import os, signal, time
from pose_fast.events import exit_on_sigterm
before = signal.getsignal(signal.SIGTERM)
with exit_on_sigterm():
    assert signal.getsignal(signal.SIGTERM) is not before
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM did not raise")
    except SystemExit as exc:
        assert exc.code == 143, exc.code
assert signal.getsignal(signal.SIGTERM) is before
print("restored")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "restored"


# -- another program holding the write lock: the journal beside the database ---------------------------------------
LOCK_HOLDER = textwrap.dedent("""
    import sys, apsw
    conn = apsw.Connection(sys.argv[1])
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    conn.close()
""")


class WriteLock:
    """Another process holding the database's write lock (``BEGIN IMMEDIATE``) until :meth:`release`."""

    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        if self.proc.returncode is None:
            self.proc.communicate("\n", timeout=30)
            assert self.proc.returncode == 0


@contextlib.contextmanager
def write_lock_held(path):
    lock = WriteLock(path)
    try:
        yield lock
    finally:
        lock.release()


def journal_entries(path):
    data = journal.journal_path(path).read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode("ascii").splitlines()]


def event_rows(frames, source="cam"):
    """Rows as the journal holds them (``journal.FIELDS`` order), for frames ``frames``."""
    return [("enter" if i % 2 == 0 else "exit", i // 2, iso_utc(T0 + i), source, i, 1, "CPU") for i in frames]


def test_a_lock_outlasting_close_keeps_the_events_in_the_journal_and_the_next_start_adds_them_once(tmp_path,
                                                                                                  monkeypatch):
    path = tmp_path / "e.db"
    create_or_migrate(path)
    journal_file = tmp_path / "e.db.journal"
    synced = []  # inodes fsync()ed from Python: the journal's writes
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(journal.os, "fsync", fsync)
    store = EventStore(path, flush_interval=60, close_lock_wait=0.5)  # nothing committed before close()
    for i in range(26):
        store.add("enter" if i % 2 == 0 else "exit", i // 2, i, T0 + i, 1, "cam", "CPU")
    with write_lock_held(path) as lock:
        started = time.monotonic()
        with pytest.raises(EventStoreError) as info:
            store.close()
        assert time.monotonic() - started < 4  # the budget, not the busy timeout many times over
        message = str(info.value)
        assert message == (f"cannot write events to {path}: the database stayed locked by another program for "
                           f"0.5 s; 26 events were kept in {journal_file} and will be added to the database at "
                           f"the next start (0 saved before)")
        assert store.error is info.value and store.journaled == 26
        entries = journal_entries(path)
        assert [{k: v for k, v in e.items() if k != "batch"} for e in entries] == [
            dict(zip(journal.FIELDS, row + ("", None, None, None, None, None))) for row in event_rows(range(26))]
        assert len({e["batch"] for e in entries}) == 1  # one batch, appended at once
        assert journal_file.stat().st_ino in synced and tmp_path.stat().st_ino in synced  # the file and its folder
        assert db_rows(path) == []
        with EventStore(path, close_lock_wait=0.2):  # opening while it is still locked: the journal stays
            pass
        assert len(journal_entries(path)) == 26
        lock.release()
        with EventStore(path):  # the next start adds them, before any new event
            assert db_rows(path) == list(range(26))
            assert not journal_file.exists()
    rows, count = read_events(path, limit=100)
    assert count == 26 and [r["frame_index"] for r in rows] == list(range(26))
    assert [r["id"] for r in rows] == list(range(1, 27))
    assert rows[25] == {"id": 26, "kind": "exit", "person_id": 12, "timestamp": iso_utc(T0 + 25), "source": "cam",
                        "frame_index": 25, "people_count": 1, "device": "CPU", "run_id": "", "track_id": 12,
                        "reason": None, "snapshot": None, "zone": None, "direction": None, "dwell_s": None}
    with EventStore(path):  # a third start adds nothing
        pass
    assert create_or_migrate(path) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert db_rows(path) == list(range(26)) and read_events(path)[1] == 26
    assert integrity(path) == "ok"


def test_a_lock_released_within_the_budget_commits_everything(tmp_path):
    path = tmp_path / "e.db"
    create_or_migrate(path)
    store = EventStore(path, flush_interval=60, close_lock_wait=20)
    for i in range(26):
        store.add("enter", i, i, T0 + i, 1, "cam", "CPU")
    with write_lock_held(path) as lock:
        timer = threading.Timer(1.0, lock.release)
        timer.start()
        started = time.monotonic()
        store.close()  # no error
        took = time.monotonic() - started
        timer.join()
    assert 0.9 <= took < 15
    assert store.error is None and store.written == 26 and store.journaled == 0
    assert not journal.journal_path(path).exists()
    assert db_rows(path) == list(range(26))


def test_a_lock_held_while_running_sends_batches_to_the_journal_until_it_is_released(tmp_path, caplog):
    """Mid-run: after ``lock_wait`` the writer keeps the batch in the journal and goes on; its first commit once
    the lock is free adds the journal first, so the events stay in order."""
    path = tmp_path / "e.db"
    create_or_migrate(path)
    with EventStore(path, flush_interval=0.01, lock_wait=0.3) as store:
        with write_lock_held(path), caplog.at_level(logging.WARNING, logger="pose_fast.events"):
            for i in range(10):
                store.add("enter", i, i, T0 + i, 1, "cam", "CPU")
            assert store.flush(timeout=30)
            assert store.journaled == 10 and store.error is None and store.written == 0
            assert [e["frame_index"] for e in journal_entries(path)] == list(range(10))
        assert "events are kept in the journal" in caplog.text
        for i in range(10, 20):
            store.add("exit", i, i, T0 + i, 0, "cam", "CPU")
        assert store.flush(timeout=30)
        assert db_rows(path) == list(range(20))
        assert store.journaled == 0 and store.written == 20
        assert not journal.journal_path(path).exists()
    assert read_events(path)[1] == 20 and read_events(path, kind="exit")[1] == 10


def test_torn_and_unreadable_journal_lines_are_skipped_and_the_rest_added(tmp_path, caplog):
    path = tmp_path / "e.db"
    create_or_migrate(path)
    journal.append(path, event_rows(range(0, 4)))
    with journal.journal_path(path).open("ab") as f:
        f.write(b"not json at all\n")
        f.write(json.dumps({"batch": "b1", "kind": "left", "person_id": 1}).encode() + b"\n")
    journal.append(path, event_rows(range(4, 7)))
    with journal.journal_path(path).open("ab") as f:
        f.write(b'{"batch": "0123", "kind": "ent')  # a crash in the middle of an append ...
    journal.append(path, event_rows(range(7, 9)))  # ... and a later run appending after it: a new line
    with journal.journal_path(path).open("ab") as f:
        f.write(b'{"batch": "4567", "kind": "exit", "person_id": 9')  # a crash in the middle of the last append
    with caplog.at_level(logging.WARNING, logger="pose_fast.events"):
        with EventStore(path):
            pass
    assert db_rows(path) == list(range(9))
    assert read_events(path)[1] == 9
    assert not journal.journal_path(path).exists()
    warnings = [r.getMessage() for r in caplog.records if "journal" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "skipped 4 line(s): 3 not a valid event (line 5: " in warnings[0], warnings
    assert "the last, line 13, cut short by a crash" in warnings[0], warnings
    assert warnings[0].endswith("adding the other 9 events"), warnings


CRASH_AFTER_COMMIT = textwrap.dedent("""
    import os, sys
    from pose_fast.events import EventStore, journal
    journal._remove = lambda path: os._exit(3)  # dies right after the replay's commit, before the removal
    EventStore(sys.argv[1])
""")


def test_a_crash_between_the_replay_commit_and_the_journal_removal_adds_nothing_twice(tmp_path):
    path = tmp_path / "e.db"
    create_or_migrate(path)
    journal.append(path, event_rows(range(0, 4)))
    journal.append(path, event_rows(range(4, 10)))
    before = journal.journal_path(path).read_bytes()
    result = subprocess.run([sys.executable, "-c", CRASH_AFTER_COMMIT, str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert db_rows(path) == list(range(10))  # committed ...
    assert journal.journal_path(path).read_bytes() == before  # ... and the journal still there
    journal.append(path, event_rows(range(10, 12)))  # a later run kept more in it meanwhile
    with EventStore(path) as store:
        store.add("enter", 99, 12, T0 + 12, 1, "cam", "CPU")
    assert db_rows(path) == list(range(13))  # 0-9 once, then the new batch, then the new event
    assert read_events(path)[1] == 13
    assert not journal.journal_path(path).exists()
    markers = db_rows(path, "SELECT value FROM event_meta WHERE key LIKE 'journal %' ORDER BY value")
    assert markers == [2, 4, 6]  # one row per batch, with its number of events
    assert integrity(path) == "ok"


def test_create_db_adds_the_journal_and_a_refused_database_keeps_it(tmp_path):
    from click.testing import CliRunner

    from pose_fast.cli.db import create_db

    path = tmp_path / "e.db"
    create_or_migrate(path)
    journal.append(path, event_rows(range(5)))
    result = CliRunner().invoke(create_db, ["--db", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"up to date (schema version {SCHEMA_VERSION}), 5 events.")
    assert db_rows(path) == list(range(5)) and not journal.journal_path(path).exists()

    foreign = tmp_path / "foreign.db"
    conn = apsw.Connection(str(foreign))
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    journal.append(foreign, event_rows(range(3)))
    kept = journal.journal_path(foreign).read_bytes()
    with pytest.raises(EventStoreError, match="is an SQLite database of another program"):
        EventStore(foreign)
    assert db_rows(foreign, "SELECT name FROM sqlite_master") == ["invoices"]  # untouched
    assert journal.journal_path(foreign).read_bytes() == kept


# -- the real model over a real video --------------------------------------------------------------------------------
@pytest.mark.slow
def test_people_walking_in_and_out_one_at_a_time_give_enter_exit_pairs(tmp_path, video_path, engine_for):
    """one-by-one-person-detection.mp4, frames 0-700 (three people come in, stand, and leave, one after the
    other), every 20th frame (2 s apart at 10 fps) through the real engine, decoder, tracker and event store."""
    import cv2

    from pose_fast.decoding import decode

    step, last = 20, 700
    cap = cv2.VideoCapture(str(video_path("one-by-one")))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    engine = engine_for(width, height)
    path = tmp_path / "video.db"
    inferences = 0
    with EventStore(path) as store:
        tracker = Tracker(on_event=EventRecorder(store, "one-by-one-person-detection.mp4", "CPU").record)
        index = 0
        while index <= last:
            ok = cap.grab()
            assert ok, f"video ended at frame {index}"
            if index % step == 0:
                ok, frame = cap.retrieve()
                assert ok
                heatmaps, pafs = engine.infer(frame)
                poses = decode(heatmaps, pafs, frame_size=(width, height))
                ids = tracker.update(poses, index, T0 + index / fps)
                assert len(ids) == len(poses)
                inferences += 1
            index += 1
        tracker.close(last, T0 + last / fps)
    cap.release()
    assert inferences == last // step + 1

    rows, count = read_events(path, limit=100)
    assert count == len(rows)
    enters = [r for r in rows if r["kind"] == "enter"]
    exits = {r["person_id"]: r for r in rows if r["kind"] == "exit"}
    assert 2 <= len(enters) <= 4, rows  # three people; a split detection may add one, a merge take one away
    assert len(exits) == len(enters) == count // 2
    for enter in enters:
        exit_ = exits[enter["person_id"]]                       # each enter has its exit ...
        assert exit_["id"] > enter["id"]                        # ... stored after it
        assert exit_["timestamp"] > enter["timestamp"]          # ... and later in time
        assert exit_["frame_index"] - enter["frame_index"] >= 2 * step
        assert enter["source"] == "one-by-one-person-detection.mp4" and enter["device"] == "CPU"
    # one at a time: nobody enters while someone else is in view
    assert max(r["people_count"] for r in rows) == 1, rows
    spans = sorted((e["frame_index"], exits[e["person_id"]]["frame_index"]) for e in enters)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans


def test_a_person_the_decoder_splits_is_one_enter(read_frames, engine_for, native_cpu_precisions):
    """Frames 80-115 of one-by-one-person-detection.mp4, every frame: computing in bf16, the decoder splits the
    person into an arm and the rest in about half of them (f32 hardly ever); the tracker still reports one person.
    The raw decoder output goes to the tracker here, fragments included."""
    from pose_fast.decoding import decode

    frames = read_frames("one-by-one", count=36, start=80)
    height, width = frames[0].shape[:2]
    engine = engine_for(width, height, cpu_precision=native_cpu_precisions[-1])
    kinds, split = [], 0
    tracker = Tracker(on_event=lambda kind, tid, *_: kinds.append((kind, tid)))
    for n, frame in enumerate(frames):
        poses = decode(*engine.infer(frame), frame_size=(width, height))
        split += len(poses) > 1
        ids = tracker.update(poses, 80 + n, T0 + n / 10)
        assert sorted(ids.tolist())[-1:] in ([], [-1], [1]), ids  # nobody but person 1
    tracker.close(80 + len(frames), T0 + len(frames) / 10)
    assert kinds == [("enter", 1), ("exit", 1)]
    if split < 3:  # other OpenVINO versions / decoder backends may not split here: then this proved less
        pytest.skip(f"the decoder split the person in only {split} of {len(frames)} frames here")
