"""The event store's write rate and the ``GET /detections`` page time, on temporary databases
(:func:`measure_events`)."""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable, Optional

from ..errors import BenchError
from .plan import DETECTIONS_REQUESTS, EVENTS_STEPS, EVENTS_TABLE, EVENTS_WRITTEN, Progress
from .timing import summarize

__all__ = ["measure_events"]


def measure_events(folder: Path, progress: Progress, make_detections_app: Optional[Callable[[Path], object]] = None,
                   written: int = EVENTS_WRITTEN, table: int = EVENTS_TABLE,
                   requests: int = DETECTIONS_REQUESTS) -> dict:
    """Events written per second (add() + the final commit) and GET /detections page-of-50 times.

    ``make_detections_app(path)`` returns the Flask app that serves ``GET /detections`` for the database at ``path``
    (``pose-fast bench`` passes :func:`pose_fast.webapp.detections.create_detections_app`); the page times are that
    app's, through its test client. The caller passes it so that the core never imports the web app; without it
    only the write rate is measured and ``detections`` is None.
    """
    from ..events import EventStore

    t0 = 1_764_050_400.0
    sources = ("camera 0", "store-aisle.mp4", "rtsp://door")

    def fill(store, n):
        add = store.add
        for i in range(n):
            add("enter" if i % 2 == 0 else "exit", i // 2, i, t0 + i * 0.01, i % 7, sources[i % 3], "CPU")

    progress("event store", 0)
    start = time.perf_counter()
    with EventStore(folder / "write.sqlite3") as store:
        fill(store, written)
    write_s = time.perf_counter() - start
    progress("event store", 3)
    report = {"written": written, "write_s": write_s, "events_per_s": written / write_s if write_s > 0 else 0.0,
              "detections": None}
    if make_detections_app is None:
        progress("/detections", EVENTS_STEPS - 3)
        return report
    path = folder / "detections.sqlite3"
    with EventStore(path) as store:
        fill(store, table)
    progress("event store", 3)
    client = make_detections_app(path).test_client()
    first = client.get("/detections?per-page=50")
    if first.status_code != 200:
        raise BenchError(f"GET /detections answered {first.status_code}: {first.get_data(as_text=True)[:200]}")
    pagination = first.get_json()["pagination"]
    rng = random.Random(0)
    times = []
    for _ in range(requests):
        page = rng.randint(1, max(1, pagination["pages"]))
        t1 = time.perf_counter()
        r = client.get(f"/detections?page={page}&per-page=50")
        times.append((time.perf_counter() - t1) * 1000.0)
        if r.status_code != 200:
            raise BenchError(f"GET /detections?page={page} answered {r.status_code}")
    progress("/detections", EVENTS_STEPS - 6)
    report["detections"] = {"rows": int(pagination["count"]), "per_page": 50, "requests": requests,
                            **summarize(times)}
    return report
