"""Event store and /detections benchmarks (pytest-benchmark).

Targets (issue 6): the writer stores >= 100,000 events/s batched; a /detections page of 50 over 1,000,000 events
answers in p50 < 5 ms. Run ``pytest bench/test_bench_events.py``; with ``--benchmark-disable`` (CI) the same code
runs once on small sizes (``bench_smoke``, bench/conftest.py) so it stays quick. The project's pytest options
disable benchmarks by default: measure with ``pytest bench/test_bench_events.py --benchmark-enable -s``.
"""
from __future__ import annotations

import itertools
import random

import pytest

from pose_fast.events import EventStore, read_events
from pose_fast.timestamps import iso_utc
from pose_fast.webapp.detections import create_detections_app

T0 = 1_764_050_400.0
SOURCES = ("camera 0", "store-aisle.mp4", "rtsp://door")


def fill(store, n, start=0):
    add = store.add
    for i in range(start, start + n):
        add("enter" if i % 2 == 0 else "exit", i // 2, i, T0 + i * 0.01, i % 7, SOURCES[i % 3], "CPU")


@pytest.fixture(scope="module")
def big_db(bench_smoke, tmp_path_factory):
    """1,000,000 events (20,000 with --benchmark-disable), written through the EventStore."""
    n = 20_000 if bench_smoke else 1_000_000
    path = tmp_path_factory.mktemp("bench-events") / "events.sqlite3"
    with EventStore(path) as store:
        fill(store, n)
    assert read_events(path, limit=0)[1] == n
    return path, n


def test_writer_events_per_second(benchmark, bench_smoke, tmp_path):
    """Events added and committed per second: add() from the caller, batched transactions in the writer thread."""
    n = 5_000 if bench_smoke else 200_000
    counter = itertools.count()

    def setup():
        path = tmp_path / f"w{next(counter)}.sqlite3"
        return (EventStore(path),), {}

    def write(store):
        fill(store, n)
        store.close()

    benchmark.pedantic(write, setup=setup, rounds=1 if bench_smoke else 3, iterations=1)
    if benchmark.stats is not None:
        rate = n / benchmark.stats.stats.median
        benchmark.extra_info["events_per_s"] = round(rate)
        print(f"\nwriter: {rate:,.0f} events/s (median of {len(benchmark.stats.stats.data)} runs of {n:,})")


def test_add_never_waits_on_the_disk(benchmark, tmp_path):
    """The pipeline's cost per event: one add() while the writer thread commits in the background."""
    store = EventStore(tmp_path / "add.sqlite3")
    frames = itertools.count()
    try:
        benchmark(lambda: store.add("enter", 1, next(frames), T0, 1, "camera 0", "CPU"))
    finally:
        store.close()


@pytest.mark.parametrize("query", ["", "kind=exit&", "source=camera%200&kind=enter&", "since+until"],
                         ids=["all", "kind", "source+kind", "since+until"])
def test_detections_page_of_50(benchmark, big_db, query):
    """GET /detections?page=k&per-page=50 at random pages over the big table (p50 target < 5 ms for "all")."""
    path, n = big_db
    if query == "since+until":  # the middle 40 % of the events' time span
        since, until = (iso_utc(T0 + n * 0.01 * f).replace(":", "%3A") for f in (0.3, 0.7))
        query = f"since={since}&until={until}&"
    client = create_detections_app(path).test_client()
    pages = client.get(f"/detections?{query}per-page=50").get_json()["pagination"]["pages"]
    assert pages >= 1
    rng = random.Random(0)

    def get():
        r = client.get(f"/detections?{query}page={rng.randint(1, pages)}&per-page=50")
        assert r.status_code == 200
        return r

    r = benchmark(get)
    assert len(r.get_json()["results"]) <= 50
    if benchmark.stats is not None:
        benchmark.extra_info["p50_ms"] = round(benchmark.stats.stats.median * 1000, 3)
        print(f"\n/detections {query or 'all'} over {n:,}: p50 {benchmark.stats.stats.median * 1000:.2f} ms")


def test_detections_first_page_while_writing(benchmark, big_db, tmp_path):
    """Page 1 while a writer appends in the background (readers and the writer do not block each other)."""
    path, n = big_db
    store = EventStore(path, flush_interval=0.01)
    client = create_detections_app(path).test_client()
    first = itertools.count(10 * n, 200)

    def get():
        fill(store, 200, next(first))  # 200 more events per request: far more than a camera produces
        r = client.get("/detections?per-page=50")
        assert r.status_code == 200
        return r

    try:
        benchmark(get)
    finally:
        store.close()


def test_writer_into_a_big_database(benchmark, bench_smoke, big_db, tmp_path):
    """The same, appending to the database that already holds the big table (deeper indexes)."""
    path, n_big = big_db
    n = 2_000 if bench_smoke else 100_000
    start = itertools.count(n_big, n)

    def setup():
        return (EventStore(path), next(start)), {}

    def write(store, first):
        fill(store, n, first)
        store.close()

    benchmark.pedantic(write, setup=setup, rounds=1, iterations=1)
    if benchmark.stats is not None:
        rate = n / benchmark.stats.stats.median
        benchmark.extra_info["events_per_s"] = round(rate)
        print(f"\nwriter into {n_big:,} events: {rate:,.0f} events/s")
