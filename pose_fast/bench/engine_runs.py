"""Inference only and the full pipeline on one engine, the two measurements :func:`~pose_fast.bench.run.run_bench`
alternates in rounds: :func:`infer_latency`, :func:`infer_throughput`, :func:`pipeline_run`, and
:func:`merge_pipeline`, which makes one report row of a mode's rounds."""
from __future__ import annotations

import threading
import time

try:
    import resource
except ImportError:  # not on Windows: no context-switch counts there
    resource = None
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import BenchError
from .plan import Progress
from .timing import summarize

__all__ = ["infer_latency", "infer_throughput", "pipeline_run", "merge_pipeline", "context_switches"]


def context_switches() -> Optional[tuple]:
    """(voluntary, involuntary) context switches of this process so far, every thread's, also those that ended
    (``getrusage(RUSAGE_SELF)``); None where the platform does not count them."""
    if resource is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw, usage.ru_nivcsw


def infer_latency(engine, frames: list, count: int, progress: Progress, label: str, first: int = 0,
                  kept: Optional[dict] = None):
    """Sync inference on ``count`` frames from frame number ``first`` on (cycling): per-frame ms and elapsed s.
    With ``kept`` (a dict), copies of the outputs of distinct frames not yet in it are stored there by index."""
    for frame in frames[:2]:  # warm-up: first inferences allocate
        engine.infer(frame)
    times = []
    start = time.perf_counter()
    for i in range(first, first + count):
        index = i % len(frames)
        t0 = time.perf_counter()
        heatmaps, pafs = engine.infer(frames[index])
        times.append((time.perf_counter() - t0) * 1000.0)
        if kept is not None and index not in kept and heatmaps is not None:
            kept[index] = (np.array(heatmaps, np.float32), np.array(pafs, np.float32))
        progress(label, 1)
    return times, time.perf_counter() - start


def infer_throughput(engine, frames: list, count: int, progress: Progress, label: str):
    """Async inference of ``count`` frames with every request busy: per-frame ms (submit → callback), elapsed s."""
    times: List[float] = []
    lock = threading.Lock()

    def done(heatmaps, pafs, userdata, infer_ms):
        with lock:
            times.append(float(infer_ms))

    engine.set_callback(done)
    warm = max(1, int(engine.num_requests))
    for i in range(warm):  # warm-up: every request runs once
        engine.submit(frames[i % len(frames)], None)
    engine.wait_all()
    times.clear()
    start = time.perf_counter()
    for i in range(count):
        engine.submit(frames[i % len(frames)], i)
        progress(label, 1)
    engine.wait_all()
    elapsed = time.perf_counter() - start
    if len(times) != count:
        raise BenchError(f"inference returned {len(times)} results for {count} frames: the engine dropped frames")
    return times, elapsed


class _Collector:
    """A pipeline sink that keeps each frame's stage timings and advances the progress bar."""

    def __init__(self, progress: Progress, label: str):
        self.timings: List[dict] = []
        self.people = 0
        self.progress = progress
        self.label = label

    def write(self, result) -> None:
        self.timings.append(dict(result.timings))
        self.people += int(result.people)
        self.progress(self.label, 1)

    def close(self) -> None:
        pass


def pipeline_run(spec: str, engine, mode: str, count: int, progress: Progress, label: str, db_path: Path):
    """One pipeline run of ``count`` frames: (stats, per-frame timings, people seen)."""
    from ..events import EventRecorder, EventStore
    from ..frames import SourceError, open_source
    from ..pipeline import Pipeline
    from ..tracking import Tracker

    try:
        source = open_source(spec)
    except SourceError as exc:
        raise BenchError(str(exc)) from None
    collector = _Collector(progress, label)
    with source, EventStore(db_path) as store:
        tracker = Tracker(on_event=EventRecorder(store, source=source.spec, device="bench").record)
        pipe = Pipeline(source, engine, tracker=tracker, sinks=[collector], mode=mode, limit=count,
                        loop=not source.live)
        before = context_switches()
        stats = pipe.run()
        after = context_switches()
    if before is not None and after is not None:  # the whole process: the pipeline's threads and OpenVINO's
        stats["context_switches"] = {"voluntary": after[0] - before[0], "involuntary": after[1] - before[1]}
    return stats, collector.timings, collector.people


def merge_pipeline(runs: list) -> dict:
    """Frames, elapsed, fps and stage summaries of several pipeline rounds, from their per-frame timings."""
    from ..pipeline import STAGES

    timings = [t for _, frames, _ in runs for t in frames]
    frames = sum(stats["frames"] for stats, _, _ in runs)
    elapsed = sum(stats["elapsed_s"] for stats, _, _ in runs)
    stages = {stage: summarize([t.get(stage, 0.0) for t in timings]) for stage in STAGES}
    first = runs[0][0]
    switches = None
    if all("context_switches" in stats for stats, _, _ in runs):
        switches = {kind: sum(stats["context_switches"][kind] for stats, _, _ in runs)
                    for kind in ("voluntary", "involuntary")}
        switches.update({f"{kind}_per_frame": switches[kind] / frames if frames else None
                         for kind in ("voluntary", "involuntary")})
    frame0 = [frames_[0].get("latency", 0.0) for _, frames_, _ in runs if frames_]
    return {
        "frames": frames,
        "elapsed_s": elapsed,
        "round_fps": [stats["fps"] for stats, _, _ in runs],
        "fps": frames / elapsed if elapsed > 0 else 0.0,
        "in_flight": first.get("in_flight"),
        "dropped": sum(stats.get("dropped", 0) for stats, _, _ in runs),
        "people_mean": sum(p for _, _, p in runs) / frames if frames else 0.0,
        "stages": stages,
        "samples": {"latency": [round(t.get("latency", 0.0), 3) for t in timings]},
        # capture→shown of each round's first frame (a new Pipeline each round; the first round's is the coldest)
        "frame0_latency_ms": frame0,
        "context_switches": switches,
    }
