"""Inference only, through our Engine, per precision and performance hint (pytest-benchmark).

* ``latency``: one request, ``engine.infer(frame)`` frame after frame; one benchmark round = one frame.
* ``throughput``: the device's optimal number of requests (``OPTIMAL_NUMBER_OF_INFER_REQUESTS``), ``submit()``
  over a batch of frames and ``wait_all()``; one round = one batch, and ``extra_info["fps"]`` = batch / median.

Precisions whose IR is not on this machine are skipped with a reason that says how to fetch them. The frames are
real (``--video``, default store-aisle); ``--frames`` sets the batch size. With ``--benchmark-disable`` each body
runs once on a few frames, and the tests still check the outputs' shapes and that every submitted frame came back.
"""
from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from pose_fast.model import PRECISIONS


@pytest.mark.parametrize("precision", PRECISIONS)
def test_inference_latency(benchmark, bench_engine, bench_frames, bench_frame_count, bench_smoke, precision):
    """Sync inference of one frame (PERFORMANCE_HINT=LATENCY, one request); ``--frames`` rounds."""
    engine = bench_engine(precision, "latency")
    out_w, out_h = engine.output_size
    heatmaps, pafs = engine.infer(bench_frames[0])  # warm-up; also the shapes the decoder relies on
    assert heatmaps.shape == (19, out_h, out_w) and pafs.shape == (38, out_h, out_w)
    assert np.isfinite(heatmaps).all() and float(heatmaps[:18].max()) > 0.1, "the model found nothing at all"
    frames = itertools.cycle(bench_frames)

    heatmaps, pafs = benchmark.pedantic(lambda: engine.infer(next(frames)), iterations=1,
                                        rounds=1 if bench_smoke else bench_frame_count)
    assert heatmaps.shape == (19, out_h, out_w)
    benchmark.extra_info.update(precision=precision, mode="latency", requests=1,
                                network=f"{engine.network_size[0]}x{engine.network_size[1]}")
    if benchmark.stats is not None:
        benchmark.extra_info["fps"] = round(1.0 / benchmark.stats.stats.median, 2)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_inference_throughput(benchmark, bench_engine, bench_frames, bench_frame_count, bench_smoke, precision):
    """Frames/s with every request busy (PERFORMANCE_HINT=THROUGHPUT, the device's optimal requests)."""
    engine = bench_engine(precision, "throughput")
    requests = engine.num_requests
    assert requests >= 1
    # a batch keeps every request busy several times over, so the ramp-up and drain matter little
    size = max(bench_frame_count, 2 * requests)
    batch = [bench_frames[i % len(bench_frames)] for i in range(size)]
    done = []
    lock = threading.Lock()

    def on_result(heatmaps, pafs, userdata, infer_ms):
        assert heatmaps.shape[0] == 19 and pafs.shape[0] == 38
        with lock:
            done.append(userdata)

    engine.set_callback(on_result)

    def run_batch():
        done.clear()
        for i, frame in enumerate(batch):
            engine.submit(frame, i)
        engine.wait_all()
        return sorted(done)

    returned = benchmark.pedantic(run_batch, rounds=1 if bench_smoke else 5, iterations=1,
                                  warmup_rounds=0 if bench_smoke else 1)
    assert returned == list(range(size)), "every submitted frame comes back once"
    benchmark.extra_info.update(precision=precision, mode="throughput", requests=requests, frames_per_round=size,
                                network=f"{engine.network_size[0]}x{engine.network_size[1]}")
    if benchmark.stats is not None:
        benchmark.extra_info["fps"] = round(size / benchmark.stats.stats.median, 2)
