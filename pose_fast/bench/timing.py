"""Timings into numbers, for every measurement: summaries of milliseconds (:func:`summarize`), timed calls and their
report rows (:func:`time_calls`, :func:`timing_row`), and :func:`collect_garbage`, which frees closed engines in the
main thread between measurements."""
from __future__ import annotations

import gc
import time
from typing import List, Sequence

import numpy as np

__all__ = ["summarize", "time_calls", "timing_row", "collect_garbage"]


def summarize(samples_ms: Sequence[float]) -> dict:
    """``{n, mean, p50, p90, p99, min, max}`` of timings in milliseconds (zeros when there are none)."""
    data = np.asarray(samples_ms, np.float64)
    if data.size == 0:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "min": 0.0, "max": 0.0}
    p50, p90, p99 = np.percentile(data, (50, 90, 99))
    return {"n": int(data.size), "mean": float(data.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "min": float(data.min()), "max": float(data.max())}


def time_calls(call, inputs: list, count: int) -> List[float]:
    """``count`` calls of ``call(*inputs[i % len(inputs)])``: ms per call."""
    times = []
    for i in range(count):
        args = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        call(*args)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def timing_row(name: str, kind: str, times: List[float], people: int, default: bool = False) -> dict:
    """A decoder's row of the report: its name and kind, the summary of ``times`` (ms), the people it found and the
    samples."""
    return {"name": name, "kind": kind, "default": default, **summarize(times), "people": people,
            "samples": [round(t, 4) for t in times]}


def collect_garbage() -> None:
    """Collect reference cycles now, in this thread. A closed engine's AsyncInferQueue that is only freed by a
    garbage collection happening to run in an OpenVINO callback thread aborts the process (OpenVINO 2026.4:
    "terminate called ... Resource deadlock avoided")."""
    gc.collect()
