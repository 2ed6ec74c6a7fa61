"""Helpers the tests and benchmarks share: waiting for a condition, a real waitress server on a free port.

Importable from any test module as ``from support import ...`` (the root conftest puts ``tests/`` on the path).
"""
from __future__ import annotations

import contextlib
import threading
import time

__all__ = ["wait_for", "running_server", "make_v1_database"]


def wait_for(predicate, timeout: float = 30.0, step: float = 0.05):
    """Poll until ``predicate()`` is true; return its last value (a wait, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


@contextlib.contextmanager
def running_server(app, threads: int = 12, **options):
    """``with running_server(app) as (base_url, port):`` the app on a real waitress server (``pose-fast web``'s
    :func:`make_server`) on a free 127.0.0.1 port; closed, and the app's streams stopped, on leaving."""
    from pose_fast.cli.web import make_server

    server = make_server(app, "127.0.0.1", 0, threads=threads, **options)
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    port = int(server.effective_port)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.close()
        thread.join(5)
        app.extensions["pose_fast_streams"].close()


def make_v1_database(path, rows) -> None:
    """An events database as round 1 wrote it (schema version 1), holding ``rows`` of (kind, person_id, timestamp
    text, source, frame_index, people_count, device)."""
    import apsw

    from pose_fast.events import schema

    conn = apsw.Connection(str(path))
    try:
        conn.execute(schema.MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.executemany("INSERT INTO events (kind, person_id, timestamp, source, frame_index, people_count, "
                         "device) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()
