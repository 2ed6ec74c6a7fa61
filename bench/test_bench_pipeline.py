"""Pipeline benchmarks (pytest-benchmark), against the inference-only numbers of the same engine in the same run.

Targets (issue 5):

- throughput mode on a file, no window: >= 90% of the inference-only throughput (same model, device, requests);
- latency mode: capture-to-overlay p50 no more than 3 ms above the inference latency p50;
- resident memory flat (within 5 MB) over 3,000 frames.

Measure with ``pytest bench/test_bench_pipeline.py --benchmark-enable -s``; with ``--benchmark-disable`` (CI) the
same code runs once on a few frames. Ratios and differences go into ``extra_info`` (and are printed with ``-s``).
The device is ``POSE_FAST_BENCH_DEVICE`` (default CPU).
"""
from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import pytest

from pose_fast.engines.local import Engine
from pose_fast.frames import open_source
from pose_fast.pipeline import Pipeline

DEVICE = os.environ.get("POSE_FAST_BENCH_DEVICE", "CPU")

_ENGINES = []


def _engine(model_xml, **kwargs) -> Engine:
    engine = Engine(model=model_xml, device=DEVICE, **kwargs)
    _ENGINES.append(engine)
    return engine


@pytest.fixture(autouse=True, scope="module")
def _close_engines():
    yield
    while _ENGINES:
        _ENGINES.pop().close()


def full_size(request) -> bool:
    """False when benchmarks are disabled (as pytest-benchmark decides it: --benchmark-enable wins)."""
    config = request.config
    return not (config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _frames(video, count):
    """``count`` decoded frames of ``video`` (looping), each its own buffer, as the inference-only input."""
    frames = []
    with open_source(video) as source:
        while len(frames) < count:
            buf = np.empty(source.shape, np.uint8)
            if source.read(buf) is None:
                source.rewind()
                continue
            frames.append(buf)
    return frames


def _inference_only_fps(engine, frames) -> float:
    """Frames per second of engine.submit alone (no capture, decode, overlay) with all requests in flight."""
    done = threading.Semaphore(0)
    engine.set_callback(lambda heatmaps, pafs, userdata, infer_ms: done.release())
    start = time.perf_counter()
    for frame in frames:
        engine.submit(frame, None)
    for _ in frames:  # every callback has run (wait_all() alone can return while the last one is finishing)
        done.acquire()
    elapsed = time.perf_counter() - start
    engine.wait_all()
    return len(frames) / elapsed


def _report(benchmark, **info):
    benchmark.extra_info.update(info)
    print("\n" + ", ".join(f"{k}={v}" for k, v in info.items()))


def test_throughput_pipeline_vs_inference_only(benchmark, request, model_xml, video_path):
    frames_n = 200 if full_size(request) else 12
    video = video_path("store-aisle")
    frames = _frames(video, frames_n)
    engine = _engine(model_xml, mode="throughput")
    engine.prepare(frames[0].shape[1], frames[0].shape[0])
    _inference_only_fps(engine, frames[: engine.num_requests * 2])  # warm-up
    results = {"pipeline": [], "inference": []}

    def pipeline_once():
        source = open_source(video)
        stats = Pipeline(source, engine, mode="throughput", limit=frames_n, loop=True).run()
        source.close()
        return stats

    def both():
        # inference-only before and after the pipeline run: drift on a shared machine hits both sides
        before = _inference_only_fps(engine, frames)
        stats = pipeline_once()
        after = _inference_only_fps(engine, frames)
        results["inference"].append((before + after) / 2)
        results["pipeline"].append(stats["fps"])
        return stats

    stats = benchmark.pedantic(both, rounds=1, iterations=1)
    infer_fps = float(np.mean(results["inference"]))
    pipe_fps = float(np.mean(results["pipeline"]))
    _report(benchmark, frames=frames_n, requests=stats["in_flight"], inference_only_fps=round(infer_fps, 2),
            pipeline_fps=round(pipe_fps, 2), ratio=round(pipe_fps / infer_fps, 3), target_ratio=0.9,
            decode_p50_ms=round(stats["decode_p50"], 2), render_p50_ms=round(stats["render_p50"], 2))
    assert stats["frames"] == frames_n


def test_latency_capture_to_overlay_vs_inference(benchmark, request, model_xml, video_path):
    """Latency mode on a file (read just in time). Inference-only (async, as the pipeline submits; and sync) and
    the pipeline take turns in short segments, so that load from elsewhere hits all of them alike."""
    segments, per_segment = (5, 20) if full_size(request) else (1, 6)
    video = video_path("store-aisle")
    frames = _frames(video, 67)
    engine = _engine(model_xml, mode="latency")
    engine.prepare(frames[0].shape[1], frames[0].shape[0])
    for frame in frames[:3]:
        engine.infer(frame)  # warm-up
    times = {"sync": [], "async": [], "overlay": [], "pipeline_inference": []}

    def sync_segment(offset):
        for i in range(per_segment):
            start = time.perf_counter()
            engine.infer(frames[(offset + i) % len(frames)])
            times["sync"].append((time.perf_counter() - start) * 1000.0)

    def async_segment(offset):
        """One request at a time through submit() and the callback: the pipeline's inference path, alone."""
        done = threading.Semaphore(0)
        engine.set_callback(lambda heatmaps, pafs, userdata, infer_ms: done.release())
        for i in range(per_segment):
            start = time.perf_counter()
            engine.submit(frames[(offset + i) % len(frames)], None)
            done.acquire()
            times["async"].append((time.perf_counter() - start) * 1000.0)
        engine.wait_all()

    class Timings:
        def write(self, result):
            times["overlay"].append(result.timings["latency"])
            times["pipeline_inference"].append(result.timings["inference"])

    def run():
        stats = None
        for segment in range(segments):
            offset = segment * per_segment
            async_segment(offset)
            sync_segment(offset)
            source = open_source(video)
            for _ in range(offset % 67):
                source.read(np.empty(source.shape, np.uint8))
            stats = Pipeline(source, engine, sinks=[Timings()], mode="latency", limit=per_segment, loop=True).run()
            source.close()
            assert stats["frames"] == per_segment and stats["dropped"] == 0
        return stats

    stats = benchmark.pedantic(run, rounds=1, iterations=1)
    p50 = {name: float(np.median(values)) for name, values in times.items()}
    _report(benchmark, frames=len(times["overlay"]), inference_only_p50_ms=round(p50["async"], 2),
            inference_only_sync_p50_ms=round(p50["sync"], 2),
            capture_to_overlay_p50_ms=round(p50["overlay"], 2),
            capture_to_overlay_p99_ms=round(float(np.percentile(times["overlay"], 99)), 2),
            above_inference_ms=round(p50["overlay"] - p50["async"], 2),
            above_sync_inference_ms=round(p50["overlay"] - p50["sync"], 2),
            pipeline_inference_p50_ms=round(p50["pipeline_inference"], 2),
            above_pipeline_inference_ms=round(p50["overlay"] - p50["pipeline_inference"], 2),
            decode_p50_ms=round(stats["decode_p50"], 2), render_p50_ms=round(stats["render_p50"], 2),
            target_above_ms=3.0)


def test_rss_stays_flat_over_a_long_run(benchmark, request, model_xml, video_path):
    """3,000 frames (looping a short file, throughput mode, no window): resident memory after warm-up stays within
    5 MB. The network input height is 128 to keep the run short: memory is the pipeline's, not the network's."""
    frames_n = 3000 if full_size(request) else 60
    warmup = max(10, frames_n // 10)
    samples = []

    class Probe:
        def write(self, result):
            if result.index >= warmup and result.index % 20 == 0:
                samples.append(_rss_mb())

    engine = _engine(model_xml, mode="throughput", input_height=128)

    def run():
        source = open_source(video_path("store-aisle"))
        gc.collect()
        stats = Pipeline(source, engine, sinks=[Probe()], mode="throughput", limit=frames_n, loop=True).run()
        source.close()
        return stats

    stats = benchmark.pedantic(run, rounds=1, iterations=1)
    growth = samples[-1] - samples[0]
    spread = max(samples) - min(samples)
    _report(benchmark, frames=stats["frames"], rss_start_mb=round(samples[0], 1), rss_end_mb=round(samples[-1], 1),
            rss_growth_mb=round(growth, 2), rss_spread_mb=round(spread, 2), fps=round(stats["fps"], 1),
            target_mb=5.0)
    assert stats["frames"] == frames_n
    if full_size(request):
        assert abs(growth) <= 5.0, f"RSS grew {growth:.1f} MB over {frames_n} frames"
