"""Measure pose_fast end to end and write a report: the engine behind ``pose-fast bench``.

One process measures, in this order (each figure on the same frames of one video):

1. inference only, through :class:`pose_fast.engine.Engine`, per precision and hint: ``latency`` (one request,
   ``infer()`` frame after frame) and ``throughput`` (the device's optimal number of requests, ``submit()`` over
   a batch, frames/s over the batch);
2. the decoder on real model outputs, per available backend (``cython``, ``numba``, ``numpy``) and the peer
   ``OpenPoseDecoder`` of openvino-model-api when it imports (:func:`peer_decoder`);
3. the full pipeline (capture → inference → decode → tracker with an event recorder → overlay) in latency and
   throughput mode, with per-frame stage timings;
4. the event store's write rate and the ``/detections`` page time on a temporary database.

Inference only and the pipeline are measured in alternating rounds (A B A B A B A B, per mode) so that a
change of load on a shared machine hits both alike.

:func:`run_bench` returns the report as a dict (the content of ``report.json``); :func:`write_report` writes
``report.json``, ``report.md`` and the PNG plots. Helpers shared with ``bench/``: :func:`find_model`,
:func:`fetch_hint`, :func:`peer_decoder`, :func:`heatmap_nms`, :func:`summarize`.
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .model import MODEL_NAME, PRECISIONS, ModelError, resolve_model

__all__ = [
    "DEFAULT_FRAMES", "DEFAULT_VIDEO", "MODES", "PRECISIONS", "TARGET_DECODE_SHARE", "TARGET_PIPELINE_RATIO",
    "BenchError", "fetch_hint", "find_model", "heatmap_nms", "machine_info", "peer_decoder", "plan_units",
    "render_markdown", "run_bench", "summarize", "write_plots", "write_report",
]

MODES = ("latency", "throughput")
#: Frames per measurement (inference only and pipeline, each mode) in a default run.
DEFAULT_FRAMES = 200
#: The video used when none is given: shoppers in an aisle, 2-5 people per frame (looked up in POSE_FAST_VIDEO_DIR
#: and ``../shared/videos`` beside the working directory).
DEFAULT_VIDEO = "store-aisle-detection.mp4"
#: Distinct frames kept in memory for inference only and decoding (longer runs cycle through them).
MAX_DISTINCT_FRAMES = 64
#: Targets (issue 8): pipeline FPS >= 90 % of inference-only FPS in throughput mode; decode (Cython) <= 2 % of the
#: inference time.
TARGET_PIPELINE_RATIO = 0.90
TARGET_DECODE_SHARE = 0.02
#: Event store: events written for the write rate, rows in the table /detections pages through, pages requested.
EVENTS_WRITTEN = 50_000
EVENTS_TABLE = 200_000
DETECTIONS_REQUESTS = 200
SCHEMA = 1

Progress = Callable[[str, int], None]  # progress(label of the current step, units just finished)


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (no model, bad video, ...); the message is one line saying what to do."""


# -- helpers shared with bench/ --------------------------------------------------------------------------------------
def fetch_hint(precision: str) -> str:
    """How to get the IR of ``precision`` when it is missing (one clause, for skip reasons and the report)."""
    return (f"fetch it with `pose-fast fetch-model --precision {precision}` (into the user cache), or put "
            f"{MODEL_NAME}/{precision}/{MODEL_NAME}.xml and .bin under POSE_FAST_MODEL_DIR")


def find_model(precision: str, model_dir=None) -> Optional[Path]:
    """The local ``.xml`` of ``precision`` (in ``model_dir``, then ``POSE_FAST_MODEL_DIR``, then the user cache),
    or None. Never downloads."""
    if model_dir is not None:
        xml = Path(model_dir) / MODEL_NAME / precision / f"{MODEL_NAME}.xml"
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
    try:
        return resolve_model(None, precision, download=False)
    except ModelError:
        return None


_peer_lock = threading.Lock()
_peer_state: Dict[str, object] = {}


def peer_decoder() -> Tuple[Optional[Callable], str]:
    """The peer decoder, ``(decode, "")``, or ``(None, reason)`` when openvino-model-api does not import.

    ``decode(heatmaps, pafs, frame_size=None) -> (poses (P,17,3), scores (P,))`` takes (19,H,W) or (1,19,H,W)
    heatmaps and (38,H,W) or (1,38,H,W) PAFs and runs Open Model Zoo's ``OpenPoseDecoder`` (openvino-model-api
    0.2.5) behind the OpenVINO pose notebook's 3×3 max-pool NMS (:func:`heatmap_nms`), so it does the same work as
    our backends: raw heatmaps in, people out. Keypoints are scaled to ``frame_size`` (width, height) when given,
    else they stay in heatmap pixels. (``pip install --no-deps openvino-model-api==0.2.5 scipy``.)

    openvino-model-api 0.2.5 imports ``openvino.runtime``, which OpenVINO 2025+ no longer has: the alias
    ``openvino.runtime -> openvino`` is installed only for that import and removed again afterwards, so the rest
    of the process sees OpenVINO unchanged.
    """
    with _peer_lock:
        if "result" not in _peer_state:
            _peer_state["result"] = _load_peer()
        return _peer_state["result"]  # type: ignore[return-value]


def _load_peer():
    import warnings

    try:
        import openvino
    except ImportError as exc:  # pragma: no cover - pose_fast needs OpenVINO anyway
        return None, f"OpenVINO does not import ({exc})"
    added = []
    try:
        try:
            import openvino.runtime  # noqa: F401 - OpenVINO < 2025 still has it
        except ImportError:
            sys.modules["openvino.runtime"] = openvino
            added.append("openvino.runtime")
        before = set(sys.modules)
        try:
            with warnings.catch_warnings():  # it imports numpy.core.umath, deprecated in NumPy 2
                warnings.simplefilter("ignore", DeprecationWarning)
                from model_api.models.open_pose import OpenPoseDecoder
        except Exception as exc:  # noqa: BLE001 - any import failure means "no peer"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return None, (f"openvino-model-api does not import ({first}): install it with `pip install --no-deps "
                          f"openvino-model-api==0.2.5 scipy` to compare against the peer decoder")
        added.extend(name for name in set(sys.modules) - before if name.startswith("openvino.runtime."))
    finally:
        for name in added:
            sys.modules.pop(name, None)
    peer = OpenPoseDecoder()

    def decode(heatmaps: np.ndarray, pafs: np.ndarray, frame_size=None):
        heatmaps = np.asarray(heatmaps, np.float32).reshape((1, -1) + heatmaps.shape[-2:])
        pafs = np.asarray(pafs, np.float32).reshape((1, -1) + pafs.shape[-2:])
        poses, scores = peer(heatmaps, heatmap_nms(heatmaps), pafs)
        if frame_size is not None:
            height, width = heatmaps.shape[-2:]
            poses[:, :, :2] *= (frame_size[0] / width, frame_size[1] / height)
        return poses, scores

    decode.__doc__ = "OpenPoseDecoder (openvino-model-api) behind the OpenVINO pose notebook's 3x3 max-pool NMS"
    return decode, ""


def heatmap_nms(heatmaps: np.ndarray) -> np.ndarray:
    """``heatmaps * (heatmaps == maxpool3(heatmaps))`` for (C, H, W) or (1, C, H, W) float32 maps: the NMS the
    peer decoder expects, computed as the OpenVINO pose notebook's ``pool2d`` does it (3×3, zero padding, stride
    1, a strided window view and ``max`` per channel), so the peer is timed as people run it."""
    from numpy.lib.stride_tricks import as_strided

    heatmaps = np.asarray(heatmaps, np.float32)
    maps = heatmaps.reshape((-1,) + heatmaps.shape[-2:])
    pooled = np.empty_like(maps)
    for c in range(maps.shape[0]):
        padded = np.pad(maps[c], 1, mode="constant")
        shape = (padded.shape[0] - 2, padded.shape[1] - 2, 3, 3)
        windows = as_strided(padded, shape=shape, strides=padded.strides * 2)
        pooled[c] = windows.reshape(-1, 3, 3).max(axis=(1, 2)).reshape(shape[:2])
    return heatmaps * (heatmaps == pooled.reshape(heatmaps.shape))


def summarize(samples_ms: Sequence[float]) -> dict:
    """``{n, mean, p50, p90, p99, min, max}`` of timings in milliseconds (zeros when there are none)."""
    data = np.asarray(samples_ms, np.float64)
    if data.size == 0:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "min": 0.0, "max": 0.0}
    p50, p90, p99 = np.percentile(data, (50, 90, 99))
    return {"n": int(data.size), "mean": float(data.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "min": float(data.min()), "max": float(data.max())}


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _physical_cores() -> Optional[int]:
    try:
        pairs = set()
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            phys = core = None
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        pairs.add((phys, core))
                    phys = core = None
            if core is not None:
                pairs.add((phys, core))
        return len(pairs) or None
    except OSError:
        return None


def machine_info(device: str = "CPU", core=None) -> dict:
    """What the numbers were measured on: CPU model and cores, OS, Python, OpenVINO, the device's full name."""
    from . import _ov

    logical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": logical,
        "usable_cpus": usable,
        "physical_cores": _physical_cores(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "openvino": _ov.VERSION.split("-")[0],
        "openvino_build": _ov.VERSION,
        "device_name": None,
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        info["load_average"] = None
    if core is not None:
        try:
            name = device.split(":")[-1].split(",")[0].split("(")[0]
            info["device_name"] = str(core.get_property(name, "FULL_DEVICE_NAME"))
        except Exception:  # noqa: BLE001 - AUTO and friends have no single name
            info["device_name"] = None
    return info


def default_video() -> Optional[Path]:
    """The default bench video if it can be found (POSE_FAST_VIDEO_DIR, then ../shared/videos, shared/videos)."""
    candidates = []
    env = os.environ.get("POSE_FAST_VIDEO_DIR")
    if env:
        candidates.append(Path(env) / DEFAULT_VIDEO)
    here = Path.cwd()
    candidates += [here.parent / "shared" / "videos" / DEFAULT_VIDEO, here / "shared" / "videos" / DEFAULT_VIDEO]
    for path in candidates:
        if path.is_file():
            relative = os.path.relpath(path)
            return Path(relative) if len(relative) < len(str(path)) else path
    return None


def plan_units(frames: int, precisions: int, events: bool = True) -> int:
    """Progress-bar length of a run: frames per measurement × 4 per precision, decoding, events."""
    return frames * 4 * max(1, precisions) + decode_units(frames) + (EVENTS_STEPS if events else 0)


def decode_units(frames: int) -> int:
    """Decoding takes a second or two: one unit per backend and the peer, whatever the frame count."""
    return DECODE_STEPS


DECODE_STEPS = 5


EVENTS_STEPS = 10


# -- measurements ----------------------------------------------------------------------------------------------------
def _read_frames(spec: str, count: int) -> Tuple[list, object]:
    """Up to ``count`` distinct frames of the source (at most MAX_DISTINCT_FRAMES) and the opened source's facts."""
    from .frames import SourceError, open_source

    try:
        source = open_source(spec)
    except SourceError as exc:
        raise BenchError(str(exc)) from None
    try:
        frames = []
        want = max(1, min(count, MAX_DISTINCT_FRAMES))
        while len(frames) < want:
            buf = np.empty(source.shape, np.uint8)
            frame = source.read(buf)
            if frame is None:
                break
            frames.append(np.ascontiguousarray(frame))
        facts = {"spec": str(spec), "width": source.width, "height": source.height, "fps": source.fps,
                 "frame_count": source.frame_count, "live": source.live, "kind": source.kind}
    finally:
        source.close()
    if not frames:
        raise BenchError(f"could not read a frame from {spec}: give a video file with at least one frame")
    return frames, facts


def _infer_latency(engine, frames: list, count: int, progress: Progress, label: str, first: int = 0,
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


def _infer_throughput(engine, frames: list, count: int, progress: Progress, label: str):
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


def _pipeline_run(spec: str, engine, mode: str, count: int, progress: Progress, label: str, db_path: Path):
    """One pipeline run of ``count`` frames: (stats, per-frame timings, people seen)."""
    from .events import EventRecorder, EventStore
    from .frames import SourceError, open_source
    from .pipeline import Pipeline
    from .tracking import Tracker

    try:
        source = open_source(spec)
    except SourceError as exc:
        raise BenchError(str(exc)) from None
    collector = _Collector(progress, label)
    with source, EventStore(db_path) as store:
        tracker = Tracker(on_event=EventRecorder(store, source=source.spec, device="bench").record)
        pipe = Pipeline(source, engine, tracker=tracker, sinks=[collector], mode=mode, limit=count,
                        loop=not source.live)
        stats = pipe.run()
    return stats, collector.timings, collector.people


def _merge_pipeline(runs: list) -> dict:
    """Frames, elapsed, fps and stage summaries of several pipeline rounds, from their per-frame timings."""
    from .pipeline import STAGES

    timings = [t for _, frames, _ in runs for t in frames]
    frames = sum(stats["frames"] for stats, _, _ in runs)
    elapsed = sum(stats["elapsed_s"] for stats, _, _ in runs)
    stages = {stage: summarize([t.get(stage, 0.0) for t in timings]) for stage in STAGES}
    first = runs[0][0]
    return {
        "frames": frames,
        "elapsed_s": elapsed,
        "fps": frames / elapsed if elapsed > 0 else 0.0,
        "in_flight": first.get("in_flight"),
        "dropped": sum(stats.get("dropped", 0) for stats, _, _ in runs),
        "people_mean": sum(p for _, _, p in runs) / frames if frames else 0.0,
        "stages": stages,
        "samples": {"latency": [round(t.get("latency", 0.0), 3) for t in timings]},
    }


def _measure_decoders(outputs: list, frame_size: tuple, count: int, progress: Progress) -> dict:
    """Every backend (and the peer) decodes the same outputs ``count`` times in all; per-call ms and poses."""
    from .decode import BACKEND, BACKENDS, Decoder, available_backends

    found = available_backends()
    rows, skipped = [], []
    for name in BACKENDS:
        if name not in found:
            skipped.append({"name": name, "reason": f"the {name} backend does not import on this machine"})
            progress(f"decode {name}", 1)
            continue
        progress(f"decode {name}", 0)
        decoder = Decoder(backend=name)
        decoder(*outputs[0], frame_size=frame_size)  # warm-up (numba compiles, buffers are allocated)
        people = sum(len(decoder(h, p, frame_size=frame_size)) for h, p in outputs)
        times = []
        for i in range(count):
            heatmaps, pafs = outputs[i % len(outputs)]
            t0 = time.perf_counter()
            decoder(heatmaps, pafs, frame_size=frame_size)
            times.append((time.perf_counter() - t0) * 1000.0)
        progress(f"decode {name}", 1)
        rows.append({"name": name, "kind": "pose_fast", "default": name == BACKEND, **summarize(times),
                     "people": people, "samples": [round(t, 4) for t in times]})
    peer, reason = peer_decoder()
    if peer is None:
        skipped.append({"name": "peer", "reason": reason})
        progress("decode peer", 1)
    else:
        progress("decode peer", 0)
        peer(*outputs[0], frame_size)
        people = sum(len(peer(h, p, frame_size)[1]) for h, p in outputs)
        times = []
        for i in range(count):
            heatmaps, pafs = outputs[i % len(outputs)]
            t0 = time.perf_counter()
            peer(heatmaps, pafs, frame_size)
            times.append((time.perf_counter() - t0) * 1000.0)
        progress("decode peer", 1)
        rows.append({"name": "peer", "kind": "openvino-model-api OpenPoseDecoder + the notebook's 3x3 NMS",
                     "default": False, **summarize(times), "people": people,
                     "samples": [round(t, 4) for t in times]})
    progress("decode", DECODE_STEPS - len(BACKENDS) - 1)  # the plan's units: one per backend and the peer
    return {"frames": len(outputs), "calls_per_backend": count, "frame_size": list(frame_size),
            "heatmap_size": [int(outputs[0][0].shape[2]), int(outputs[0][0].shape[1])],
            "backends": rows, "skipped": skipped}


def _measure_events(folder: Path, progress: Progress, written: int = EVENTS_WRITTEN, table: int = EVENTS_TABLE,
                    requests: int = DETECTIONS_REQUESTS) -> dict:
    """Events written per second (add() + the final commit) and GET /detections page-of-50 times."""
    from webapp.detections import create_detections_app

    from .events import EventStore

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
    path = folder / "detections.sqlite3"
    with EventStore(path) as store:
        fill(store, table)
    progress("event store", 3)
    client = create_detections_app(path).test_client()
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
    return {"written": written, "write_s": write_s, "events_per_s": written / write_s if write_s > 0 else 0.0,
            "detections": {"rows": int(pagination["count"]), "per_page": 50, "requests": requests,
                           **summarize(times)}}


# -- the run ---------------------------------------------------------------------------------------------------------
def _noop(label: str, units: int) -> None:
    pass


def run_bench(video: str, device: str = "CPU", precisions: Sequence[str] = PRECISIONS, frames: int = DEFAULT_FRAMES,
              server: Optional[str] = None, model_dir=None, progress: Optional[Progress] = None,
              events: bool = True, rounds: int = 4) -> dict:
    """Measure everything and return the report (see the module docstring). Raises BenchError, EngineError."""
    from . import _ov
    from .engine import open_engine

    if frames < 1:
        raise BenchError(f"--frames must be at least 1, got {frames}")
    progress = progress or _noop
    started = time.perf_counter()
    date = _utc_now()
    distinct, video_facts = _read_frames(video, frames)
    frame_size = (video_facts["width"], video_facts["height"])

    skipped, todo = [], []
    if server:
        todo.append(("server", None))
    else:
        for precision in dict.fromkeys(precisions):
            xml = find_model(precision, model_dir)
            if xml is None:
                skipped.append({"precision": precision, "reason": f"{precision} IR not found: {fetch_hint(precision)}"})
            else:
                todo.append((precision, xml))
        if not todo:
            raise BenchError(f"no model for {', '.join(precisions)} on this machine: {fetch_hint(precisions[0])}")

    core = None if server else _ov.Core()
    machine = machine_info(device, core)
    rounds = max(1, min(rounds, frames))
    splits = [frames // rounds + (1 if i < frames % rounds else 0) for i in range(rounds)]
    inference, pipeline = [], []
    kept: Dict[int, tuple] = {}
    device_used = device
    with tempfile.TemporaryDirectory(prefix="pose-fast-bench-") as tmp:
        tmp_path = Path(tmp)
        for precision, xml in todo:
            for mode in MODES:
                kwargs = {"mode": mode, "device": device}
                if xml is not None:
                    kwargs.update(model=xml, precision=precision, core=core)
                label = f"{precision} {mode}"
                with open_engine(server=server, **kwargs) as engine:
                    engine.prepare(*frame_size)
                    device_used = getattr(engine, "device", device)
                    inf_times, inf_elapsed, runs = [], 0.0, []
                    for i, n in enumerate(splits):
                        if mode == "latency":
                            times, elapsed = _infer_latency(
                                engine, distinct, n, progress, f"inference {label}", first=sum(splits[:i]),
                                kept=kept if precision == todo[0][0] else None)
                        else:
                            times, elapsed = _infer_throughput(engine, distinct, n, progress, f"inference {label}")
                        inf_times += times
                        inf_elapsed += elapsed
                        runs.append(_pipeline_run(video, engine, mode, n, progress, f"pipeline {label}",
                                                  tmp_path / f"events-{precision}-{mode}-{i}.sqlite3"))
                    net = getattr(engine, "network_size", None)
                    inference.append({
                        "precision": precision, "mode": mode, "requests": int(engine.num_requests),
                        "network_size": list(net) if net else None, "frames": len(inf_times),
                        "elapsed_s": inf_elapsed, "fps": len(inf_times) / inf_elapsed if inf_elapsed > 0 else 0.0,
                        "latency_ms": summarize(inf_times), "samples": [round(t, 3) for t in inf_times],
                    })
                    pipeline.append({"precision": precision, "mode": mode, **_merge_pipeline(runs)})
                # free the closed engine here, in the main thread (see _collect)
                del engine
                _collect()
        outputs = [kept[i] for i in sorted(kept)]
        if not outputs:
            raise BenchError("the engine returned no outputs to decode (a remote server dropped every frame?)")
        decode = _measure_decoders(outputs, frame_size, max(frames, len(outputs)), progress)
        events_report = _measure_events(tmp_path, progress) if events else None
    try:
        machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        machine["load_average_end"] = None
    report = {
        "schema": SCHEMA,
        "date": date,
        "duration_s": None,
        "machine": machine,
        "openvino": machine["openvino"],
        "device": device_used,
        "server": server,
        "precisions": [p for p, _ in todo],
        "primary_precision": todo[0][0],
        "skipped": skipped,
        "video": {**video_facts, "name": Path(str(video)).name, "distinct_frames": len(distinct)},
        "settings": {"frames": frames, "rounds": rounds, "events_written": EVENTS_WRITTEN if events else 0,
                     "events_table": EVENTS_TABLE if events else 0, "device_requested": device,
                     "precisions_requested": list(dict.fromkeys(precisions))},
        "inference": inference,
        "pipeline": pipeline,
        "decode": decode,
        "events": events_report,
    }
    report["ratios"], report["targets"] = compute_ratios(report)
    report["duration_s"] = round(time.perf_counter() - started, 1)
    return report


def _collect() -> None:
    """Collect reference cycles now, in this thread. A closed engine's AsyncInferQueue that is only freed by a
    garbage collection happening to run in an OpenVINO callback thread aborts the process (OpenVINO 2026.4:
    "terminate called ... Resource deadlock avoided")."""
    gc.collect()


def _find(rows: list, **match) -> Optional[dict]:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def compute_ratios(report: dict) -> Tuple[dict, list]:
    """The report's ratios and target checks, from its raw numbers (also used by the tests to re-check them)."""
    ratios = {"pipeline_over_inference": {}, "decode_over_inference": {}, "backend_over_cython": {},
              "pipeline_decode_over_inference": {}}
    targets = []
    for pipe in report["pipeline"]:
        inf = _find(report["inference"], precision=pipe["precision"], mode=pipe["mode"])
        key = f"{pipe['precision']} {pipe['mode']}"
        if inf and inf["fps"] > 0:
            ratios["pipeline_over_inference"][key] = pipe["fps"] / inf["fps"]
        stages = pipe["stages"]
        if stages["inference"]["p50"] > 0:
            ratios["pipeline_decode_over_inference"][key] = stages["decode"]["p50"] / stages["inference"]["p50"]
        if pipe["mode"] == "throughput" and key in ratios["pipeline_over_inference"]:
            value = ratios["pipeline_over_inference"][key]
            targets.append({"name": f"pipeline FPS / inference-only FPS ({key})", "value": value,
                            "threshold": TARGET_PIPELINE_RATIO, "op": ">=", "passed": value >= TARGET_PIPELINE_RATIO})
    primary = _find(report["inference"], precision=report["primary_precision"], mode="latency")
    infer_ms = primary["latency_ms"]["p50"] if primary else 0.0
    backends = {row["name"]: row for row in report["decode"]["backends"]}
    cython = backends.get("cython")
    for name, row in backends.items():
        if infer_ms > 0:
            ratios["decode_over_inference"][name] = row["p50"] / infer_ms
        if cython and cython["p50"] > 0:
            ratios["backend_over_cython"][name] = row["p50"] / cython["p50"]
    if "cython" in ratios["decode_over_inference"]:
        value = ratios["decode_over_inference"]["cython"]
        targets.append({"name": f"Cython decode / inference time (p50, {report['primary_precision']} latency)",
                        "value": value, "threshold": TARGET_DECODE_SHARE, "op": "<=",
                        "passed": value <= TARGET_DECODE_SHARE})
    else:
        targets.append({"name": "Cython decode / inference time (p50)", "value": None, "threshold": TARGET_DECODE_SHARE,
                        "op": "<=", "passed": False,
                        "note": "the Cython backend is not built: `python setup.py build_ext --inplace`"})
    return ratios, targets


# -- writing ---------------------------------------------------------------------------------------------------------
PLOTS = {
    "stages": "stages.png",
    "latency_hist": "latency_hist.png",
    "fps": "fps.png",
    "decode": "decode.png",
}


def write_report(report: dict, out_dir) -> List[Path]:
    """Write report.json, the PNG plots and report.md into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["plots"] = dict(PLOTS)
    paths = write_plots(report, out)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=1, default=_json_default) + "\n", encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return [md_path, json_path, *paths]


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _fmt(value: Optional[float], digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _pct(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f} %"


def _mark(passed: bool) -> str:
    return "✅ pass" if passed else "❌ fail"


def headline_rows(report: dict) -> List[str]:
    """The headline table (markdown lines): per precision and mode, inference-only vs pipeline."""
    lines = ["| precision | mode | requests | inference-only FPS | pipeline FPS | pipeline / inference | "
             "inference p50 ms | capture→shown p50 ms |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ratios = report["ratios"]["pipeline_over_inference"]
    for inf in report["inference"]:
        pipe = _find(report["pipeline"], precision=inf["precision"], mode=inf["mode"])
        key = f"{inf['precision']} {inf['mode']}"
        lines.append(f"| {inf['precision']} | {inf['mode']} | {inf['requests']} | {_fmt(inf['fps'])} | "
                     f"{_fmt(pipe['fps']) if pipe else 'n/a'} | {_pct(ratios.get(key), 0)} | "
                     f"{_fmt(inf['latency_ms']['p50'])} | "
                     f"{_fmt(pipe['stages']['latency']['p50']) if pipe else 'n/a'} |")
    return lines


def decode_rows(report: dict) -> List[str]:
    ratios = report["ratios"]
    lines = ["| decoder | mean ms | p50 ms | p99 ms | × Cython | share of inference | people found |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["decode"]["backends"]:
        name = row["name"] + (" (default)" if row.get("default") else "")
        if row["name"] == "peer":
            name = "peer: OpenPoseDecoder"
        over = ratios["backend_over_cython"].get(row["name"])
        lines.append(f"| {name} | {_fmt(row['mean'], 3)} | {_fmt(row['p50'], 3)} | {_fmt(row['p99'], 3)} | "
                     f"{'n/a' if over is None else f'{over:.1f}×'} | "
                     f"{_pct(ratios['decode_over_inference'].get(row['name']), 2)} | {row['people']} |")
    return lines


def render_markdown(report: dict) -> str:
    """report.md: what was measured on what, the headline table, targets, each section, the plots."""
    m = report["machine"]
    cores = f"{m['logical_cpus']} logical CPUs"
    if m.get("physical_cores"):
        cores += f", {m['physical_cores']} physical cores"
    if m.get("usable_cpus") and m["usable_cpus"] != m["logical_cpus"]:
        cores += f", {m['usable_cpus']} usable"
    video = report["video"]
    primary = report["primary_precision"]
    device = report["device"] + (f" ({m['device_name']})" if m.get("device_name") else "")
    if report.get("server"):
        device = f"remote {report['server']}"
    load = m.get("load_average")
    load_end = m.get("load_average_end")
    lines = [
        "# pose_fast benchmark report",
        "",
        f"- **Date:** {report['date']}",
        f"- **Machine:** {m['cpu']}, {cores}; {m['os']}; Python {m['python']}, NumPy {m['numpy']}",
        f"- **OpenVINO:** {report['openvino']}",
        f"- **Device:** {device}",
        (f"- **Model:** {MODEL_NAME} as the server serves it (KServe v2 gRPC, `pose_fast.remote.RemoteEngine`)"
         if report.get("server") else f"- **Model:** {MODEL_NAME}, precision {', '.join(report['precisions'])}"),
        f"- **Video:** {video['name']} ({video['width']}×{video['height']}), {report['settings']['frames']} frames "
        f"per measurement ({video['distinct_frames']} distinct, cycled), {report['settings']['rounds']} alternating "
        f"rounds",
    ]
    if load:
        lines.append(f"- **Load average** (1, 5, 15 min) at start {', '.join(map(str, load))}"
                     + (f"; at end {', '.join(map(str, load_end))}" if load_end else "")
                     + ". On a shared machine the numbers move with the load; compare ratios, not absolutes.")
    lines.append(f"- **Run time:** {_fmt(report.get('duration_s'), 0)} s")
    for skip in report["skipped"]:
        lines.append(f"- **Skipped {skip['precision']}:** {skip['reason']}")
    lines += ["", "## Headline", ""] + headline_rows(report)
    lines += ["", "## Targets", "", "| target | measured | needed | result |", "| --- | ---: | ---: | --- |"]
    for target in report["targets"]:
        value = target["value"]
        needed = f"{target['op']} {_pct(target['threshold'], 0)}"
        lines.append(f"| {target['name']} | {_pct(value)} | {needed} | {_mark(target['passed'])}"
                     + (f" ({target['note']})" if target.get("note") else "") + " |")

    lines += ["", "## Inference only", "",
              f"Through `{'pose_fast.remote.RemoteEngine' if report.get('server') else 'pose_fast.engine.Engine'}`: "
              "*latency* is one request, `infer()` frame after frame; *throughput* "
              "keeps the device's optimal number of requests busy with `submit()` and counts frames per second over "
              "the batch (per-frame times there include waiting for a free request).", "",
              "| precision | mode | network | requests | frames | FPS | mean ms | p50 ms | p99 ms |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for inf in report["inference"]:
        net = "×".join(map(str, inf["network_size"])) if inf.get("network_size") else "n/a"
        lat = inf["latency_ms"]
        lines.append(f"| {inf['precision']} | {inf['mode']} | {net} | {inf['requests']} | {inf['frames']} | "
                     f"{_fmt(inf['fps'])} | {_fmt(lat['mean'])} | {_fmt(lat['p50'])} | {_fmt(lat['p99'])} |")

    dec = report["decode"]
    base = _find(report["inference"], precision=primary, mode="latency")
    lines += ["", "## Decoding", "",
              f"Each decoder turns the same {dec['frames']} real model outputs ({primary}, heatmaps "
              f"{dec['heatmap_size'][0]}×{dec['heatmap_size'][1]}) into people, {dec['calls_per_backend']} calls "
              f"each. *× Cython* and *share of inference* compare medians: the p50 decode time over Cython's, and "
              f"over the p50 {primary} latency-mode inference time ({_fmt(base['latency_ms']['p50'] if base else None)}"
              " ms); on a shared machine other processes' bursts land in the means and tails. The peer is "
              "Open Model Zoo's `OpenPoseDecoder` (openvino-model-api 0.2.5) behind the OpenVINO pose notebook's "
              "3×3 max-pool NMS.", ""]
    lines += decode_rows(report)
    for skip in dec["skipped"]:
        lines.append(f"\n*{skip['name']} not measured:* {skip['reason']}")

    lines += ["", "## Pipeline", "",
              "Capture → inference → decode → tracker (events to a temporary SQLite) → overlay, no display. "
              "Per-frame stage times in ms (p50 / p99); *capture→shown* is from the end of capture to the end of "
              "the overlay; *decode / inference* compares the p50s.", "",
              "| precision | mode | in flight | FPS | capture | inference | decode | render | capture→shown | "
              "decode / inference |",
              "| --- | --- | ---: | ---: | --- | --- | --- | --- | --- | ---: |"]
    for pipe in report["pipeline"]:
        s = pipe["stages"]
        cells = " | ".join(f"{_fmt(s[k]['p50'])} / {_fmt(s[k]['p99'])}"
                           for k in ("capture", "inference", "decode", "render", "latency"))
        share = report["ratios"]["pipeline_decode_over_inference"].get(f"{pipe['precision']} {pipe['mode']}")
        lines.append(f"| {pipe['precision']} | {pipe['mode']} | {pipe['in_flight']} | {_fmt(pipe['fps'])} | {cells} | "
                     f"{_pct(share, 2)} |")

    ev = report.get("events")
    if ev:
        d = ev["detections"]
        lines += ["", "## Event store and /detections", "",
                  f"- Writer: {ev['written']:,} events added and committed in {_fmt(ev['write_s'], 2)} s = "
                  f"**{ev['events_per_s']:,.0f} events/s**.",
                  f"- `GET /detections?page=k&per-page=50` over {d['rows']:,} events, {d['requests']} random pages "
                  f"(Flask test client, no network): p50 **{_fmt(d['p50'], 2)} ms**, p99 {_fmt(d['p99'], 2)} ms."]

    lines += ["", "## Plots", ""]
    captions = {"stages": "Pipeline: mean time per stage", "latency_hist": "Latency per frame",
                "fps": "Frames per second per precision and mode", "decode": "Decode time per backend"}
    for key, name in report.get("plots", {}).items():
        lines += [f"![{captions.get(key, key)}]({name})", ""]
    lines += ["## Reproduce", "",
              "From the project folder (the default video is `../shared/videos/" + DEFAULT_VIDEO + "`; the model is "
              "found through `POSE_FAST_MODEL_DIR` or the user cache):", "", "```", _command(report), "```", "",
              "The pytest-benchmark suites measure the same parts one by one and compare runs: "
              "`pytest bench --benchmark-autosave`, then `pytest bench --benchmark-compare "
              "--benchmark-compare-fail=median:15%`.", ""]
    return "\n".join(lines)


def _command(report: dict) -> str:
    """The command line that measures the same things (default options left out)."""
    settings = report["settings"]
    parts = ["pose-fast bench"]
    if report["video"]["name"] != DEFAULT_VIDEO:
        parts.append(f"--video-url {report['video']['spec']}")
    if settings.get("device_requested", report["device"]) != "CPU":
        parts.append(f"--device-name {settings.get('device_requested', report['device'])}")
    requested = settings.get("precisions_requested") or report["precisions"]
    if not report.get("server") and sorted(requested) != sorted(PRECISIONS):
        parts += [f"--precision {p}" for p in requested]
    if settings["frames"] != DEFAULT_FRAMES:
        parts.append(f"--frames {settings['frames']}")
    if report.get("server"):
        parts.append(f"--server {report['server']}")
    return " ".join(parts) + " --out DIR"


def write_plots(report: dict, out: Path) -> List[Path]:
    """The four PNGs named in :data:`PLOTS` (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    colors = {"capture": "#8c8c8c", "inference": "#4c72b0", "decode": "#dd8452", "render": "#55a868",
              "latency": "#c44e52", "waiting": "#d9d9d9"}
    subtitle = f"{report['machine']['cpu']}, {report['device']}, OpenVINO {report['openvino']}, {report['date']}"
    paths = []

    # per-stage latency breakdown (means add up: capture + inference + decode + render + waiting = the whole)
    fig, ax = plt.subplots(figsize=(8, 2.2 + 0.8 * len(report["pipeline"])))
    labels = [f"{p['precision']}\n{p['mode']}" for p in report["pipeline"]]
    left = np.zeros(len(labels))
    parts = {stage: np.array([p["stages"][stage]["mean"] for p in report["pipeline"]])
             for stage in ("capture", "inference", "decode", "render")}
    latency = np.array([p["stages"]["latency"]["mean"] for p in report["pipeline"]])
    parts["waiting"] = np.maximum(latency - parts["inference"] - parts["decode"] - parts["render"], 0.0)
    names = {"waiting": "waiting (read-ahead queue, tracker, hand-offs)"}
    for stage, values in parts.items():
        ax.barh(labels, values, left=left, color=colors.get(stage, "#d9d9d9"), label=names.get(stage, stage),
                edgecolor="white", linewidth=0.5)
        left += values
    for y, (total, pipe) in enumerate(zip(left, report["pipeline"])):
        ax.annotate(f"{total:.0f} ms  ({pipe['fps']:.1f} FPS)", (total, y), textcoords="offset points",
                    xytext=(4, -3), fontsize=8)
    ax.set_xlim(0, max(left.max() if left.size else 1.0, 1.0) * 1.3)
    ax.set_xlabel("ms per frame (mean): capture, then capture→shown split by stage")
    ax.set_title("Pipeline: where a frame's time goes", fontsize=11)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=5, frameon=False)
    ax.invert_yaxis()
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["stages"], plt))

    # latency histogram: inference only (latency mode) and the pipeline's capture→shown, per mode
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = []
    for inf in report["inference"]:
        if inf["mode"] == "latency":
            series.append((f"inference only, {inf['precision']} latency", inf["samples"]))
    for pipe in report["pipeline"]:
        series.append((f"pipeline capture→shown, {pipe['precision']} {pipe['mode']}", pipe["samples"]["latency"]))
    every = np.concatenate([np.asarray(s, float) for _, s in series if len(s)]) if series else np.zeros(1)
    hi = float(np.percentile(every, 99.5)) * 1.05 if every.size else 1.0
    bins = np.linspace(0, max(hi, 1.0), 50)
    for name, samples in series:
        data = np.clip(np.asarray(samples, float), 0, bins[-1])
        ax.hist(data, bins=bins, histtype="step", linewidth=1.6,
                label=f"{name} (p50 {np.median(data):.0f} ms)" if data.size else name)
    ax.set_xlabel("ms per frame (values above the 99.5th percentile are piled at the right edge)")
    ax.set_ylabel("frames")
    ax.set_title("Latency per frame", fontsize=11)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["latency_hist"], plt))

    # FPS per precision / mode
    fig, ax = plt.subplots(figsize=(8, 4))
    groups = [(inf["precision"], inf["mode"]) for inf in report["inference"]]
    x = np.arange(len(groups))
    inf_fps = [inf["fps"] for inf in report["inference"]]
    pipe_fps = [(_find(report["pipeline"], precision=p, mode=m) or {}).get("fps", 0.0) for p, m in groups]
    bars1 = ax.bar(x - 0.2, inf_fps, 0.4, label="inference only", color=colors["inference"])
    bars2 = ax.bar(x + 0.2, pipe_fps, 0.4, label="full pipeline", color=colors["render"])
    ax.bar_label(bars1, fmt="%.1f", fontsize=8)
    ax.bar_label(bars2, labels=[f"{f:.1f}\n({f / i * 100:.0f} %)" if i else f"{f:.1f}"
                                for f, i in zip(pipe_fps, inf_fps)], fontsize=8)
    ax.set_xticks(x, [f"{p}\n{m}" for p, m in groups])
    ax.set_ylabel("frames per second")
    ax.set_ylim(0, max(inf_fps + pipe_fps + [1.0]) * 1.25)
    ax.set_title("FPS per precision and mode (pipeline as % of inference only)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["fps"], plt))

    # decode time per backend, with the 2 % of inference budget
    fig, ax = plt.subplots(figsize=(8, 3.8))
    rows = report["decode"]["backends"]
    names = [("peer\nOpenPoseDecoder" if r["name"] == "peer" else r["name"]) for r in rows]
    means = [r["p50"] for r in rows]
    p99 = [r["p99"] for r in rows]
    bars = ax.bar(names, means, color=[colors["decode"] if r["name"] != "peer" else "#8172b3" for r in rows])
    ax.errorbar(names, means, yerr=[np.zeros(len(means)), np.maximum(np.subtract(p99, means), 0)], fmt="none",
                ecolor="#333333", capsize=4, label="p99")
    for x_pos, (m, top) in enumerate(zip(means, p99)):  # above the whisker
        ax.annotate(f"{m:.3f} ms" if m < 0.1 else f"{m:.2f} ms", (x_pos, max(m, top)), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize=8)
    del bars
    base = _find(report["inference"], precision=report["primary_precision"], mode="latency")
    if base:
        budget = base["latency_ms"]["p50"] * TARGET_DECODE_SHARE
        ax.axhline(budget, color=colors["latency"], linestyle="--", linewidth=1,
                   label=f"2 % of inference p50 ({budget:.2f} ms)")
    ax.set_yscale("log")
    ax.set_ylim(top=max(p99 + means + [1e-3]) * 3)
    ax.set_ylabel("ms per frame (p50; whisker to p99), log scale")
    ax.set_title("Decode time per backend", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["decode"], plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
