"""Integrations benchmarks (issue 14), with a real local broker (Debian's mosquitto).

Targets:

- with MQTT publishing and two zones (and a line) on, pipeline FPS >= 98% of the same run without them: one run,
  the two configurations alternated (A B A B ...) on the same engine, the ratio of their medians;
- the MQTT outbox drains >= 5,000 events/s to a local broker (QoS 1, every PUBACK awaited).

Measure with ``pytest bench/test_bench_integrations.py --benchmark-enable -s``; with ``--benchmark-disable`` (CI)
the same code runs once on a few frames / events. The numbers go into ``extra_info`` (printed with ``-s``).
"""
from __future__ import annotations

import statistics
import time

import apsw
import pytest
from support import MOSQUITTO, Mosquitto

from pose_fast.events import EventRecorder, EventStore
from pose_fast.frames import open_source
from pose_fast.integrations.mqtt import MqttPublisher
from pose_fast.pipeline import Pipeline
from pose_fast.tracking import Tracker
from pose_fast.zones import ZonedTracker, ZoneOverlay, ZoneTracker, parse_line_option, parse_zone_option

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (.ci/test-setup.sh)")

FPS_TARGET = 0.98
DRAIN_TARGET = 5000.0


def _measuring(request) -> bool:
    config = request.config
    return not (config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False))


class _Timed:
    """A sink (or a zone tracker) with the seconds spent in it added to ``spent[0]``."""

    def __init__(self, inner, spent):
        self.inner, self.spent = inner, spent

    def write(self, result):
        start = time.perf_counter()
        self.inner.write(result)
        self.spent[0] += time.perf_counter() - start

    def update(self, *args, **kwargs):
        start = time.perf_counter()
        self.inner.update(*args, **kwargs)
        self.spent[0] += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _run(video, engine, db, frames, broker_url=None, spent=None):
    """(FPS, seconds per frame) of one throughput run of ``frames`` frames (looped video) recording events, with or
    without the integrations (MQTT publisher + people counts, two zones and a line with their overlay); ``spent``
    gathers the seconds the integrations took on the pipeline's deliver thread."""
    store = EventStore(db)
    publisher = None
    try:
        with open_source(str(video)) as source:
            recorder = EventRecorder(store, source=source.spec, device="CPU")
            tracker = Tracker(on_event=recorder.record)
            sinks = []
            if broker_url:
                zones = ZoneTracker([parse_zone_option("left=0,0 0.5,0 0.5,1 0,1"),
                                     parse_zone_option("right=0.5,0 1,0 1,1 0.5,1")],
                                    [parse_line_option("mid=0.5,0 0.5,1")], frame_size=source.size,
                                    on_event=lambda kind, tid, f, t, n, **kw: store.add(
                                        kind, tid, f, t, n, source.spec, "CPU", run_id=recorder.run_id, **kw))
                spent = [0.0] if spent is None else spent
                tracker = ZonedTracker(tracker, _Timed(zones, spent))
                publisher = MqttPublisher(broker_url, db).start()
                sinks = [_Timed(ZoneOverlay(zones), spent), _Timed(publisher.people_sink("bench", zones, tracker),
                                                                   spent)]
            pipe = Pipeline(source, engine, tracker=tracker, sinks=sinks, mode="throughput", limit=frames, loop=True)
            stats = pipe.run()
            return stats["fps"]
    finally:
        store.close()
        if publisher is not None:
            publisher.close()


def test_pipeline_fps_with_mqtt_and_zones(benchmark, request, bench_engine, bench_video, tmp_path):
    measuring = _measuring(request)
    frames, rounds = (150, 9) if measuring else (8, 1)
    engine = bench_engine("FP16-INT8", "throughput")
    spent = [0.0]
    with Mosquitto(tmp_path) as broker:
        url = broker.url + "/bench"
        _run(bench_video, engine, tmp_path / "warm.sqlite3", min(frames, 30))  # compile, caches
        plain, full = [], []

        def pairs():  # alternated, so that a machine busy with something else slows both alike
            for i in range(rounds):
                plain.append(_run(bench_video, engine, tmp_path / f"a{i}.sqlite3", frames))
                full.append(_run(bench_video, engine, tmp_path / f"b{i}.sqlite3", frames, url, spent))

        benchmark.pedantic(pairs, rounds=1, iterations=1)
    ratio = statistics.median(b / a for a, b in zip(plain, full))  # each pair ran back to back
    per_frame_ms = spent[0] / (frames * rounds) * 1000.0
    frame_ms = 1000.0 / statistics.median(full)
    benchmark.extra_info.update({"fps_without": round(statistics.median(plain), 2),
                                 "fps_with": round(statistics.median(full), 2), "ratio": round(ratio, 4),
                                 "integrations_ms_per_frame": round(per_frame_ms, 3), "rounds": rounds,
                                 "frames": frames})
    print(f"\nFPS without integrations {[round(x, 1) for x in plain]}, with MQTT + 2 zones + a line "
          f"{[round(x, 1) for x in full]}: median of the pairs' ratios {ratio:.3f} (target >= {FPS_TARGET}); "
          f"zones, overlay and people counts took {per_frame_ms:.3f} ms per frame on the deliver thread "
          f"({per_frame_ms / frame_ms:.2%} of a frame's {frame_ms:.1f} ms)")
    if measuring:
        assert ratio >= FPS_TARGET


def test_outbox_drain_rate(benchmark, request, tmp_path):
    measuring = _measuring(request)
    n = 50_000 if measuring else 2_000
    db = tmp_path / "events.sqlite3"
    with EventStore(db) as store:
        for i in range(n):
            store.add("enter" if i % 2 == 0 else "exit", i // 2, i, 1_764_050_400.0 + i * 0.01, i % 5,
                      "camera 0", "CPU", run_id="bench")
    with Mosquitto(tmp_path) as broker:
        url = broker.url + "/bench"
        rates = []

        def drain():
            publisher = MqttPublisher(url, db)
            conn = apsw.Connection(str(db))  # as if every event was stored while the broker was away
            conn.execute("INSERT INTO event_meta (key, value) VALUES (?, 0) ON CONFLICT (key) DO UPDATE SET "
                         "value = 0", (publisher.url.key,))
            conn.close()
            start = time.perf_counter()
            publisher.start()
            while publisher.outbox_depth or publisher.published < n:
                time.sleep(0.002)
            elapsed = time.perf_counter() - start
            publisher.close()
            rates.append(n / elapsed)

        benchmark.pedantic(drain, rounds=3 if measuring else 1, iterations=1)
    rate = statistics.median(rates)
    benchmark.extra_info["events_per_s"] = round(rate)
    print(f"\noutbox drain: {rate:,.0f} events/s to a local mosquitto (QoS 1, {n:,} events; runs: "
          f"{', '.join(f'{r:,.0f}' for r in rates)}; target >= {DRAIN_TARGET:,.0f})")
    if measuring:
        assert rate >= DRAIN_TARGET
