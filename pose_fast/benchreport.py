"""Measure pose_fast end to end and write a report: the engine behind ``pose-fast bench``.

One process measures, in this order (each figure on the same frames of one video):

1. inference only, through :class:`pose_fast.engines.local.Engine`, per precision and hint: ``latency`` (one request,
   ``infer()`` frame after frame) and ``throughput`` (the device's optimal number of requests, ``submit()`` over
   a batch, frames/s over the batch);
2. the full pipeline (capture → inference → decode → tracker with an event recorder → overlay) in latency and
   throughput mode, with per-frame stage timings;
3. with ``server``: 1, 2 and 4 concurrent streams against the server (:func:`pose_fast.engines.remote.run_streams`),
   beside the local engine on the same frames and the server's model alone (one client keeping as many requests
   in flight as 4 streams do);
4. the decoder on real model outputs, per available backend (``cython``, ``numba``, ``numpy``) and the peer
   ``OpenPoseDecoder`` of openvino-model-api when it imports (:func:`peer_decoder`), whole and in its two parts
   (the notebook's NMS, the grouping); the same on a 10-person scene made of real outputs side by side
   (:func:`tiled_crowd`); numba's first call, in this process (compiled or loaded from its on-disk cache: the
   report says which) and in a fresh process with an empty cache (the true compile time);
5. the event store's write rate and the ``/detections`` page time on a temporary database.

Inference only and the pipeline are measured in alternating rounds (A B A B A B A B, per mode) so that a
change of load on a shared machine hits both alike.

:func:`run_bench` returns the report as a dict (the content of ``report.json``); :func:`write_report` writes
``report.json``, ``report.md`` and the PNG plots. Helpers shared with ``bench/``: :func:`find_model`,
:func:`fetch_hint`, :func:`peer_decoder`, :func:`heatmap_nms`, :func:`summarize`, :func:`remote_stream_targets`.
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import BenchError, ModelError
from .model import MODEL_NAME, PRECISIONS, resolve_model

__all__ = [
    "CROWD_PEOPLE", "DEFAULT_FRAMES", "DEFAULT_VIDEO", "MODES", "PRECISIONS", "REQUESTS_PER_STREAM", "STREAMS",
    "TARGET_CROWD_CYTHON_MS", "TARGET_DECODE_SHARE", "TARGET_PEER_SPEEDUP", "TARGET_PIPELINE_RATIO",
    "TARGET_REMOTE_FOUR_STREAMS", "TARGET_REMOTE_ONE_STREAM",
    "BenchError", "fetch_hint", "find_model", "format_target", "heatmap_nms", "machine_info", "numba_first_call",
    "peer_decoder", "plan_units", "remote_stream_targets", "render_markdown", "run_bench", "summarize",
    "tiled_crowd", "write_plots", "write_report",
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
#: Targets (issue 4): Cython decode <= 0.5 ms per frame (p50) for scenes of up to 10 people; Cython >= 20x faster than
#: the peer decoder as the OpenVINO notebook runs it (its NMS + OpenPoseDecoder).
TARGET_CROWD_CYTHON_MS = 0.5
TARGET_PEER_SPEEDUP = 20.0
CROWD_PEOPLE = 10
#: Empty columns between the real outputs put side by side for the crowd scene (no peak or limb crosses a seam).
CROWD_GAP = 2
#: Targets (issue 10): one stream through a server on the same machine >= 95 % of the local engine's throughput;
#: aggregate throughput of 4 streams >= 95 % of what the server's model alone sustains.
TARGET_REMOTE_ONE_STREAM = 0.95
TARGET_REMOTE_FOUR_STREAMS = 0.95
#: Concurrent streams measured with --server, each its own RemoteEngine with this many requests in flight.
STREAMS = (1, 2, 4)
REQUESTS_PER_STREAM = 4
#: Event store: events written for the write rate, rows in the table /detections pages through, pages requested.
EVENTS_WRITTEN = 50_000
EVENTS_TABLE = 200_000
DETECTIONS_REQUESTS = 200
SCHEMA = 2  # 2: targets have a unit; decode.peer_parts, decode.crowd, decode.numba_first_call; streams

Progress = Callable[[str, int], None]  # progress(label of the current step, units just finished)


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

    Its two parts, to time them apart: ``decode.nms`` (:func:`heatmap_nms`) and ``decode.group(heatmaps, nms,
    pafs)`` (``OpenPoseDecoder`` itself, on (1, C, H, W) float32 maps).

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
    decode.nms = heatmap_nms
    decode.group = peer
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


def plan_units(frames: int, precisions: int, events: bool = True, server: bool = False) -> int:
    """Progress-bar length of a run: frames per measurement × 4 per precision, the streams (with ``server``),
    decoding, events."""
    return (frames * 4 * max(1, precisions) + (stream_units(frames) if server else 0) + decode_units(frames)
            + (EVENTS_STEPS if events else 0))


def stream_units(frames: int) -> int:
    """Frames pushed by the streams measurement: local 1×N, every stream count's streams × N, and the server
    alone max(STREAMS)×N."""
    return frames * (1 + sum(STREAMS) + max(STREAMS))


def decode_units(frames: int) -> int:
    """Decoding takes a while, mostly numba's compile in a fresh process: fixed steps whatever the frame count."""
    return DECODE_STEPS


#: numba's first call here, each backend and the peer on real outputs, the peer's parts, each on the crowd scene,
#: numba's compile in a fresh process.
DECODE_STEPS = 11


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


def _time_calls(call, inputs: list, count: int) -> List[float]:
    """``count`` calls of ``call(*inputs[i % len(inputs)])``: ms per call."""
    times = []
    for i in range(count):
        args = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        call(*args)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _row(name: str, kind: str, times: List[float], people: int, default: bool = False) -> dict:
    return {"name": name, "kind": kind, "default": default, **summarize(times), "people": people,
            "samples": [round(t, 4) for t in times]}


PEER_KIND = "openvino-model-api OpenPoseDecoder + the notebook's 3x3 NMS"


def _measure_decoders(outputs: list, frame_size: tuple, count: int, progress: Progress, tmp: Path,
                      numba_here: Optional[dict] = None) -> dict:
    """Every backend (and the peer) decodes the same outputs ``count`` times in all; per-call ms and poses. Then the
    peer's two parts apart, every decoder on the 10-person scene, and numba's compile in a fresh process."""
    from .decode import BACKEND, BACKENDS, Decoder, available_backends

    found = available_backends()
    rows, skipped, decoders = [], [], {}
    inputs = [(h, p, frame_size) for h, p in outputs]
    for name in BACKENDS:
        if name not in found:
            skipped.append({"name": name, "reason": f"the {name} backend does not import on this machine"})
            progress(f"decode {name}", 1)
            continue
        progress(f"decode {name}", 0)
        decoder = decoders[name] = Decoder(backend=name)
        decoder(*outputs[0], frame_size=frame_size)  # warm-up (numba compiles, buffers are allocated)
        people = sum(len(decoder(h, p, frame_size=frame_size)) for h, p in outputs)
        times = _time_calls(decoder, inputs, count)
        progress(f"decode {name}", 1)
        rows.append(_row(name, "pose_fast", times, people, default=name == BACKEND))
    peer, reason = peer_decoder()
    parts = []
    if peer is None:
        skipped.append({"name": "peer", "reason": reason})
        progress("decode peer", 2)
    else:
        progress("decode peer", 0)
        peer(*outputs[0], frame_size)
        people = sum(len(peer(h, p, frame_size)[1]) for h, p in outputs)
        times, parts = _time_peer(peer, outputs, frame_size, count)
        progress("decode peer", 2)
        rows.append(_row("peer", PEER_KIND, times, people))
    crowd = _measure_crowd(outputs, frame_size, count, decoders, peer, progress)
    numba = {"this_process": numba_here, "fresh_process": None}
    if "numba" in found:
        progress("numba compile (fresh process)", 0)
        numba["fresh_process"] = _numba_first_call_fresh(tmp)
    progress("numba compile (fresh process)", 1)
    return {"frames": len(outputs), "calls_per_backend": count, "frame_size": list(frame_size),
            "heatmap_size": [int(outputs[0][0].shape[2]), int(outputs[0][0].shape[1])],
            "backends": rows, "skipped": skipped, "peer_parts": parts, "crowd": crowd, "numba_first_call": numba}


def _time_peer(peer, outputs: list, frame_size: tuple, count: int) -> Tuple[List[float], List[dict]]:
    """The peer as the notebook runs it (one call: NMS + grouping), and right after it, on the same output, its NMS
    and its grouping (OpenPoseDecoder) timed apart: the whole's ms per call and the two parts' rows. Interleaved, so
    that a change of load on a shared machine hits the whole and its parts alike."""
    shaped = []
    for heatmaps, pafs in outputs:
        h = np.asarray(heatmaps, np.float32).reshape((1, -1) + heatmaps.shape[-2:])
        p = np.asarray(pafs, np.float32).reshape((1, -1) + pafs.shape[-2:])
        shaped.append((h, p))
    whole_ms, nms_ms, group_ms = [], [], []
    peer.group(shaped[0][0], peer.nms(shaped[0][0]), shaped[0][1])  # warm-up
    for i in range(count):
        heatmaps, pafs = outputs[i % len(outputs)]
        h, p = shaped[i % len(shaped)]
        t0 = time.perf_counter()
        peer(heatmaps, pafs, frame_size)
        t1 = time.perf_counter()
        nms = peer.nms(h)
        t2 = time.perf_counter()
        peer.group(h, nms, p)
        t3 = time.perf_counter()
        whole_ms.append((t1 - t0) * 1000.0)
        nms_ms.append((t2 - t1) * 1000.0)
        group_ms.append((t3 - t2) * 1000.0)
    parts = [{"name": "nms", "kind": "the OpenVINO pose notebook's 3x3 max-pool NMS (NumPy)", **summarize(nms_ms),
              "samples": [round(t, 4) for t in nms_ms]},
             {"name": "grouping", "kind": "openvino-model-api OpenPoseDecoder on NMS'd heatmaps",
              **summarize(group_ms), "samples": [round(t, 4) for t in group_ms]}]
    return whole_ms, parts


def tiled_crowd(outputs: list, people: Sequence[int], want: int = CROWD_PEOPLE, gap: int = CROWD_GAP):
    """A scene of ``want`` people made of real model outputs: whole (19|38, H, W) outputs side by side along the
    width, ``gap`` empty columns between them (keypoint and PAF channels 0, background 1), so that no peak or limb
    crosses a seam and each tile decodes as it did alone.

    ``people[i]`` is how many people ``outputs[i]`` holds. The tiles are chosen so that their people add up to
    ``want`` exactly if possible (else the smallest total above it), from distinct outputs if possible, with as few
    tiles as possible. Returns ``(heatmaps, pafs, chosen indices)`` or None when no output holds anyone.
    """
    import itertools
    from collections import Counter

    by_count: Dict[int, List[int]] = {}
    for i, n in enumerate(people):
        if n > 0:
            by_count.setdefault(int(n), []).append(i)
    if not by_count:
        return None
    values = sorted(by_count)
    best = None
    for tiles in range(1, want + 1):
        for combo in itertools.combinations_with_replacement(values, tiles):
            total = sum(combo)
            if total < want:
                continue
            repeats = sum(max(0, n - len(by_count[v])) for v, n in Counter(combo).items())
            key = (total - want, repeats, tiles)
            if best is None or key < best[0]:
                best = (key, combo)
    chosen, used = [], Counter()
    for v in best[1]:
        chosen.append(by_count[v][used[v] % len(by_count[v])])
        used[v] += 1
    chosen.sort()
    heatmaps, pafs = [], []
    for k, i in enumerate(chosen):
        h, p = (np.asarray(a, np.float32).reshape(a.shape[-3:]) for a in outputs[i])
        if k:
            gap_h = np.zeros(h.shape[:2] + (gap,), np.float32)
            gap_h[-1] = 1.0  # the background channel says "nobody here"
            heatmaps.append(gap_h)
            pafs.append(np.zeros(p.shape[:2] + (gap,), np.float32))
        heatmaps.append(h)
        pafs.append(p)
    return np.concatenate(heatmaps, axis=2), np.concatenate(pafs, axis=2), chosen


def _measure_crowd(outputs: list, frame_size: tuple, count: int, decoders: dict, peer, progress: Progress) -> dict:
    """Every decoder on one scene of about CROWD_PEOPLE people built by :func:`tiled_crowd` from real outputs."""
    from .decode import BACKEND, BACKENDS

    reference = next(iter(decoders.values()), None)
    if reference is None:
        progress("decode crowd", len(BACKENDS) + 1)
        return {"skipped": "no decoder backend imports"}
    people = [len(reference(h, p, frame_size=frame_size)) for h, p in outputs]
    tiled = tiled_crowd(outputs, people)
    if tiled is None:
        progress("decode crowd", len(BACKENDS) + 1)
        return {"skipped": "no frame of the video shows anyone: give a video with people"}
    heatmaps, pafs, chosen = tiled
    width = heatmaps.shape[2]
    size = (max(1, round(frame_size[0] * width / outputs[0][0].shape[-1])), frame_size[1])
    rows = []
    for name in BACKENDS:
        decoder = decoders.get(name)
        progress(f"decode crowd {name}", 0)
        if decoder is not None:
            found = len(decoder(heatmaps, pafs, frame_size=size))
            times = _time_calls(decoder, [(heatmaps, pafs, size)], count)
            rows.append(_row(name, "pose_fast", times, found, default=name == BACKEND))
        progress(f"decode crowd {name}", 1)
    if peer is not None:
        progress("decode crowd peer", 0)
        found = len(peer(heatmaps, pafs, size)[1])
        times = _time_calls(peer, [(heatmaps, pafs, size)], count)
        rows.append(_row("peer", PEER_KIND, times, found))
    progress("decode crowd peer", 1)
    return {"frames": chosen, "people_per_frame": [people[i] for i in chosen], "gap": CROWD_GAP,
            "heatmap_size": [int(width), int(heatmaps.shape[1])], "frame_size": list(size),
            "calls_per_backend": count, "backends": rows,
            "scene": (f"the real model outputs of {len(chosen)} video frames ({', '.join(f'#{i}' for i in chosen)}: "
                      f"{' + '.join(str(people[i]) for i in chosen)} people) side by side, {CROWD_GAP} empty columns "
                      f"between them: one {width}×{heatmaps.shape[1]} map")}


def _numba_dispatchers() -> list:
    from numba.core.dispatcher import Dispatcher

    from . import _decode_numba

    return [v for v in vars(_decode_numba).values() if isinstance(v, Dispatcher)]


def _numba_cache_counts(dispatchers: list) -> Tuple[int, int]:
    hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers)
    misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
    return hits, misses


def numba_first_call() -> Optional[dict]:
    """Time the numba backend's first call in this process, and say what it did: ``"compiled"`` (a cache miss),
    ``"loaded from cache"`` (numba's ``cache=True`` found the machine code on disk) or ``"already compiled"``
    (something in this process called it before). None when numba does not import.

    The call decodes an empty 57×32 map: what numba compiles (or loads) depends on the argument types only.
    Returns ``first_call_s``, ``second_call_ms``, ``how``, ``cache_hits``, ``cache_misses`` (numba's counters,
    summed over the backend's functions: only the entry point is looked up in the cache, its callees are compiled
    with it) and ``cache_dir``.
    """
    from .decode import Decoder, available_backends

    if "numba" not in available_backends():
        return None
    dispatchers = _numba_dispatchers()
    compiled_before = any(d.signatures for d in dispatchers)
    hits0, misses0 = _numba_cache_counts(dispatchers)
    heatmaps = np.zeros((19, 32, 57), np.float32)
    pafs = np.zeros((38, 32, 57), np.float32)
    decoder = Decoder("numba")
    t0 = time.perf_counter()
    decoder(heatmaps, pafs, (456, 256))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoder(heatmaps, pafs, (456, 256))
    second = time.perf_counter() - t0
    hits, misses = (a - b for a, b in zip(_numba_cache_counts(dispatchers), (hits0, misses0)))
    if compiled_before:
        how = "already compiled"
    elif misses:
        how = "compiled"
    elif hits:
        how = "loaded from cache"
    else:
        how = "unknown"
    from . import _decode_numba

    return {"first_call_s": first, "second_call_ms": second * 1000.0, "how": how, "cache_hits": int(hits),
            "cache_misses": int(misses), "cache_dir": str(_decode_numba.decode_kernel.stats.cache_path)}


_FRESH_NUMBA = ("import json\n"
                "from pose_fast.benchreport import numba_first_call\n"
                "print(json.dumps(numba_first_call()))\n")


def _numba_first_call_fresh(tmp: Path) -> dict:
    """:func:`numba_first_call` in a fresh interpreter whose ``NUMBA_CACHE_DIR`` is an empty folder: the true
    compile time (or ``{"error": ...}``)."""
    cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=tmp))
    package_parent = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
    try:
        result = subprocess.run([sys.executable, "-c", _FRESH_NUMBA], env=env, capture_output=True, text=True,
                                timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "numba's first call in a fresh process took more than 600 s"}
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the fresh process failed (exit {result.returncode}): {tail}"}
    found = json.loads(lines[-1])
    if not found:
        return {"error": "numba does not import in a fresh process"}
    found["cache_dir"] = "an empty temporary folder (NUMBA_CACHE_DIR)"
    return found


def _measure_streams(server: str, frames: list, per_stream: int, progress: Progress,
                     local: Optional[tuple] = None, device: str = "CPU", local_skip: str = "") -> dict:
    """1, 2 and 4 concurrent streams against ``server`` (each stream its own RemoteEngine, REQUESTS_PER_STREAM
    requests in flight, ``per_stream`` frames), the local engine on the same frames (``local``: (precision, xml)),
    and the server's model alone: one client keeping as many requests in flight as 4 streams do, over as many
    frames. Measured so that the pairs the targets compare run back to back: local, 1 stream, alone, 4, 2."""
    from .engines.local import Engine
    from .engines.remote import RemoteEngine, run_streams

    most = max(STREAMS)
    alone = most * REQUESTS_PER_STREAM
    height, width = frames[0].shape[:2]

    def remote(requests):
        return lambda: RemoteEngine(server, num_requests=requests, mode="throughput")

    plan = []
    if local is not None:
        precision, xml = local
        plan.append(("local", 1, REQUESTS_PER_STREAM, per_stream,
                     lambda: Engine(model=xml, device=device, precision=precision, mode="throughput")))
    plan += [("remote", 1, REQUESTS_PER_STREAM, per_stream, remote(REQUESTS_PER_STREAM)),
             ("server_alone", 1, alone, per_stream * most, remote(alone))]
    plan += [("remote", n, REQUESTS_PER_STREAM, per_stream, remote(REQUESTS_PER_STREAM))
             for n in sorted(STREAMS, reverse=True) if n > 1]
    if local is None:
        progress("streams local", per_stream)
    rows = []
    for run, streams, warmup, n, make in plan:
        label = {"local": "streams: local engine", "server_alone": "streams: server alone"}.get(
            run, f"streams: {streams} remote")
        progress(label, 0)
        requests = []

        def counted(make=make, requests=requests):
            engine = make()
            engine.prepare(width, height)  # run_streams prepares too (a no-op then); the local engine's count of
            requests.append(int(engine.num_requests))  # requests is known once it is compiled
            return engine

        result = run_streams(counted, frames, streams, n, warmup=warmup)
        _collect()  # the closed engines are freed here, in the main thread
        rows.append({"run": run, "streams": streams, "requests_per_stream": requests[0],
                     "frames_per_stream": n, "aggregate_fps": result["aggregate_fps"],
                     "per_stream_fps": list(result["per_stream_fps"]), "latency_p50_ms": result["latency_p50_ms"],
                     "latency_p99_ms": result["latency_p99_ms"], "dropped": int(result["dropped"]),
                     "client_cpu_ms_per_frame": result["cpu_ms_per_frame"].get("client")})
        progress(label, streams * n)
    order = [f"{r['run']} {r['streams']}" for r in rows]
    rank = {"local": 0, "server_alone": 1, "remote": 2}
    rows.sort(key=lambda r: (rank[r["run"]], r["streams"]))
    return {"server": server, "requests_per_stream": REQUESTS_PER_STREAM, "frames_per_stream": per_stream,
            "server_alone_requests": alone, "local_precision": local[0] if local else None,
            "local_model": str(local[1]) if local else None, "local_skipped": "" if local else local_skip,
            "measured_order": order, "rows": rows}


def _measure_events(folder: Path, progress: Progress, written: int = EVENTS_WRITTEN, table: int = EVENTS_TABLE,
                    requests: int = DETECTIONS_REQUESTS) -> dict:
    """Events written per second (add() + the final commit) and GET /detections page-of-50 times."""
    from pose_fast.webapp.detections import create_detections_app

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
    from .engines import open_engine

    if frames < 1:
        raise BenchError(f"--frames must be at least 1, got {frames}")
    progress = progress or _noop
    started = time.perf_counter()
    date = _utc_now()
    distinct, video_facts = _read_frames(video, frames)
    frame_size = (video_facts["width"], video_facts["height"])
    # before anything else can call it (the pipeline does when numba is the default backend)
    progress("numba first call", 0)
    numba_here = numba_first_call()
    progress("numba first call", 1)

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
        streams = None
        if server:
            local, local_skip = None, ""
            for precision in dict.fromkeys(precisions):
                xml = find_model(precision, model_dir)
                if xml is not None:
                    local = (precision, xml)
                    break
            else:
                local_skip = f"no local IR to compare with: {fetch_hint(precisions[0] if precisions else 'FP16-INT8')}"
            streams = _measure_streams(server, distinct, frames, progress, local=local, device=device,
                                       local_skip=local_skip)
        outputs = [kept[i] for i in sorted(kept)]
        if not outputs:
            raise BenchError("the engine returned no outputs to decode (a remote server dropped every frame?)")
        decode = _measure_decoders(outputs, frame_size, max(frames, len(outputs)), progress, tmp_path, numba_here)
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
        "streams": streams,
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


def _target(name: str, value: Optional[float], threshold: float, op: str, unit: str = "share",
            note: str = "") -> dict:
    """A target check: ``unit`` is ``share`` (shown as %), ``times`` (×) or ``ms``."""
    passed = value is not None and (value >= threshold if op == ">=" else value <= threshold)
    target = {"name": name, "value": value, "threshold": threshold, "op": op, "unit": unit, "passed": passed}
    if note:
        target["note"] = note
    return target


def remote_stream_targets(local: Optional[dict], alone: Optional[dict], one: Optional[dict],
                          four: Optional[dict], local_note: str = "") -> List[dict]:
    """The two remote targets from run_streams results (``aggregate_fps``; ``alone`` also ``requests_per_stream``):
    one remote stream over the local engine, 4 streams' aggregate over the server's model alone."""
    def ratio(a, b):
        return a["aggregate_fps"] / b["aggregate_fps"] if a and b and b["aggregate_fps"] > 0 else None

    requests = f", 1 client, {alone['requests_per_stream']} requests in flight" if alone else ""
    return [
        _target("remote 1 stream / local engine (aggregate FPS)", ratio(one, local), TARGET_REMOTE_ONE_STREAM, ">=",
                note="" if local else (local_note or "the local engine was not measured")),
        _target(f"remote 4 streams / server's model alone (aggregate FPS{requests})", ratio(four, alone),
                TARGET_REMOTE_FOUR_STREAMS, ">=", note="" if four and alone else "not measured"),
    ]


def compute_ratios(report: dict) -> Tuple[dict, list]:
    """The report's ratios and target checks, from its raw numbers (also used by the tests to re-check them)."""
    ratios = {"pipeline_over_inference": {}, "decode_over_inference": {}, "backend_over_cython": {},
              "pipeline_decode_over_inference": {}, "peer_part_over_cython": {}, "crowd_backend_over_cython": {},
              "streams": {}}
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
            targets.append(_target(f"pipeline FPS / inference-only FPS ({key})",
                                   ratios["pipeline_over_inference"][key], TARGET_PIPELINE_RATIO, ">="))
    primary = _find(report["inference"], precision=report["primary_precision"], mode="latency")
    infer_ms = primary["latency_ms"]["p50"] if primary else 0.0
    decode = report["decode"]
    backends = {row["name"]: row for row in decode["backends"]}
    cython = backends.get("cython")
    for name, row in backends.items():
        if infer_ms > 0:
            ratios["decode_over_inference"][name] = row["p50"] / infer_ms
        if cython and cython["p50"] > 0:
            ratios["backend_over_cython"][name] = row["p50"] / cython["p50"]
    for part in decode.get("peer_parts") or []:
        if cython and cython["p50"] > 0:
            ratios["peer_part_over_cython"][part["name"]] = part["p50"] / cython["p50"]
    crowd = decode.get("crowd") or {}
    crowd_rows = {row["name"]: row for row in crowd.get("backends", [])}
    crowd_cython = crowd_rows.get("cython")
    for name, row in crowd_rows.items():
        if crowd_cython and crowd_cython["p50"] > 0:
            ratios["crowd_backend_over_cython"][name] = row["p50"] / crowd_cython["p50"]
    build = "the Cython backend is not built: `python setup.py build_ext --inplace`"
    if "cython" in ratios["decode_over_inference"]:
        targets.append(_target(f"Cython decode / inference time (p50, {report['primary_precision']} latency)",
                               ratios["decode_over_inference"]["cython"], TARGET_DECODE_SHARE, "<="))
    else:
        targets.append(_target("Cython decode / inference time (p50)", None, TARGET_DECODE_SHARE, "<=", note=build))
    people = crowd_cython["people"] if crowd_cython else CROWD_PEOPLE
    targets.append(_target(f"Cython decode time, {people}-person scene (p50 ms)",
                           crowd_cython["p50"] if crowd_cython else None, TARGET_CROWD_CYTHON_MS, "<=", unit="ms",
                           note="" if crowd_cython else (crowd.get("skipped") or build)))
    peer_note = next((s["reason"] for s in decode["skipped"] if s["name"] == "peer"), "") if cython else build
    targets.append(_target("peer decoder as the notebook runs it (NMS + grouping) / Cython decode time (p50)",
                           ratios["backend_over_cython"].get("peer"), TARGET_PEER_SPEEDUP, ">=", unit="times",
                           note="" if "peer" in ratios["backend_over_cython"] else peer_note))
    streams = report.get("streams")
    if streams:
        rows = streams["rows"]
        one, four = _find(rows, run="remote", streams=1), _find(rows, run="remote", streams=max(STREAMS))
        local, alone = _find(rows, run="local"), _find(rows, run="server_alone")
        for row in rows:
            if row["run"] != "remote":
                continue
            for name, base in (("local", local), ("server alone", alone)):
                if base and base["aggregate_fps"] > 0:
                    value = row["aggregate_fps"] / base["aggregate_fps"]
                    ratios["streams"][f"remote {row['streams']} / {name}"] = value
        targets += remote_stream_targets(local, alone, one, four, streams.get("local_skipped", ""))
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


def format_target(target: dict) -> Tuple[str, str]:
    """``(measured, needed)`` of a target as the report and the command show them, e.g. ``("94.6 %", ">= 90 %")``,
    ``("0.052 ms", "<= 0.5 ms")``, ``("186.2×", ">= 20×")``."""
    unit = target.get("unit", "share")
    value, threshold = target["value"], target["threshold"]
    if unit == "ms":
        measured, needed = _fmt(value, 3) + ("" if value is None else " ms"), f"{threshold:g} ms"
    elif unit == "times":
        measured, needed = ("n/a" if value is None else f"{value:.1f}×"), f"{threshold:g}×"
    else:
        measured, needed = _pct(value), _pct(threshold, 0)
    return measured, f"{target['op']} {needed}"


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


PEER_LABEL = "peer decoder (NMS + grouping)"
PEER_PART_LABELS = {"nms": "↳ peer part: the notebook's 3×3 max-pool NMS",
                    "grouping": "↳ peer part: OpenPoseDecoder grouping"}


def _times(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.1f}×"


def decode_rows(report: dict) -> List[str]:
    """The decoding table (markdown lines): each backend, the peer as the notebook runs it, then its two parts."""
    ratios = report["ratios"]
    lines = ["| decoder | mean ms | p50 ms | p99 ms | × Cython | share of inference | people found |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["decode"]["backends"]:
        name = row["name"] + (" (default)" if row.get("default") else "")
        if row["name"] == "peer":
            name = PEER_LABEL
        lines.append(f"| {name} | {_fmt(row['mean'], 3)} | {_fmt(row['p50'], 3)} | {_fmt(row['p99'], 3)} | "
                     f"{_times(ratios['backend_over_cython'].get(row['name']))} | "
                     f"{_pct(ratios['decode_over_inference'].get(row['name']), 2)} | {row['people']} |")
        if row["name"] == "peer":
            base = _find(report["inference"], precision=report["primary_precision"], mode="latency")
            infer_ms = base["latency_ms"]["p50"] if base else 0.0
            for part in report["decode"].get("peer_parts") or []:
                share = part["p50"] / infer_ms if infer_ms > 0 else None
                lines.append(f"| {PEER_PART_LABELS.get(part['name'], part['name'])} | {_fmt(part['mean'], 3)} | "
                             f"{_fmt(part['p50'], 3)} | {_fmt(part['p99'], 3)} | "
                             f"{_times(ratios.get('peer_part_over_cython', {}).get(part['name']))} | "
                             f"{_pct(share, 2)} | |")
    return lines


def crowd_rows(report: dict) -> List[str]:
    """The 10-person scene's table (markdown lines)."""
    crowd = report["decode"].get("crowd") or {}
    over = report["ratios"].get("crowd_backend_over_cython", {})
    lines = ["| decoder | mean ms | p50 ms | p99 ms | × Cython | people found |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in crowd.get("backends", []):
        name = PEER_LABEL if row["name"] == "peer" else row["name"] + (" (default)" if row.get("default") else "")
        lines.append(f"| {name} | {_fmt(row['mean'], 3)} | {_fmt(row['p50'], 3)} | {_fmt(row['p99'], 3)} | "
                     f"{_times(over.get(row['name']))} | {row['people']} |")
    return lines


def numba_lines(report: dict) -> List[str]:
    """What numba's first call cost, in this process and compiling from nothing (markdown lines)."""
    numba = report["decode"].get("numba_first_call") or {}
    here, fresh = numba.get("this_process"), numba.get("fresh_process")
    if not here and not fresh:
        return ["- **numba first call:** not measured (the numba backend does not import)."]
    lines = []
    if fresh and "error" not in fresh:
        lines.append(f"- **numba compile time:** the first call took **{_fmt(fresh['first_call_s'], 2)} s** in a "
                     f"fresh process with `NUMBA_CACHE_DIR` pointed at an empty folder ({fresh['how']}: "
                     f"{fresh['cache_misses']} cache misses, {fresh['cache_hits']} hits); the second call "
                     f"{_fmt(fresh['second_call_ms'], 3)} ms.")
    elif fresh:
        lines.append(f"- **numba compile time:** not measured: {fresh['error']}")
    if here:
        how = {"loaded from cache": f"loaded from numba's on-disk cache in `{here['cache_dir']}` (cache hit)",
               "compiled": f"compiled: nothing usable in numba's cache in `{here['cache_dir']}` (cache miss)",
               "already compiled": "already compiled earlier in this process"}.get(here["how"], here["how"])
        lines.append(f"- **numba first call in this run:** {_fmt(here['first_call_s'], 2)} s, {how}; the second "
                     f"call {_fmt(here['second_call_ms'], 3)} ms. Both decode an empty 57×32 map (what numba compiles "
                     f"depends only on the argument types); the import of numba itself is not counted.")
    return lines


def streams_lines(report: dict) -> List[str]:
    """The remote streams section (markdown lines), or none without --server."""
    streams = report.get("streams")
    if not streams:
        return []
    n = streams["frames_per_stream"]
    local = _find(streams["rows"], run="local")
    lines = ["", "## Remote streams", "",
             f"Concurrent video streams against {streams['server']}, through `run_streams`: each "
             f"stream is its own `RemoteEngine` (its own gRPC connection, {streams['requests_per_stream']} requests in "
             f"flight) pushing {n} frames of the video as fast as the server answers, like separate cameras. "
             f"*local engine* runs the same frames through the local `Engine` in throughput mode"
             + (f" ({streams['local_precision']}, `{Path(streams['local_model']).name}`; the server serves its own "
                "copy of the model, so compare like with like)" if local else "")
             + f": the reference for one stream. *server's model alone* is one client keeping "
             f"{streams['server_alone_requests']} requests in flight (as many as {max(STREAMS)} streams do) over "
             f"{n * max(STREAMS)} frames: what the server sustains when it is asked for nothing but inference, over "
             f"the same protocol (the server queues what it cannot run at once); the reference for {max(STREAMS)} "
             "streams. Latency is per request, send to answer; *client CPU* is this process's CPU time per frame "
             f"answered. Measured once each, in this order: {', '.join(streams['measured_order'])} (each pair a "
             "target compares runs back to back); a server on this machine shares its CPUs with the client, and "
             "on a shared machine the other load moves every row.", "",
             "| run | streams | requests in flight per stream | frames per stream | aggregate FPS | per-stream FPS | "
             "latency p50 ms | latency p99 ms | dropped | client CPU ms/frame |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    names = {"local": "local engine", "server_alone": "server's model alone", "remote": "remote"}
    for row in streams["rows"]:
        per = ", ".join(_fmt(f) for f in row["per_stream_fps"])
        lines.append(f"| {names[row['run']]} | {row['streams']} | {row['requests_per_stream']} | "
                     f"{row['frames_per_stream']} | {_fmt(row['aggregate_fps'])} | {per} | "
                     f"{_fmt(row['latency_p50_ms'])} | {_fmt(row['latency_p99_ms'])} | {row['dropped']} | "
                     f"{_fmt(row['client_cpu_ms_per_frame'])} |")
    if not local and streams.get("local_skipped"):
        lines.append(f"\n*local engine not measured:* {streams['local_skipped']}")
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
        (f"- **Model:** {MODEL_NAME} as the server serves it (KServe v2 gRPC, `pose_fast.engines.remote.RemoteEngine`)"
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
        measured, needed = format_target(target)
        lines.append(f"| {target['name']} | {measured} | {needed} | {_mark(target['passed'])}"
                     + (f" ({target['note']})" if target.get("note") else "") + " |")

    lines += ["", "## Inference only", "",
              f"Through `{'RemoteEngine' if report.get('server') else 'Engine'}`: "
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
              "3×3 max-pool NMS, timed whole as the notebook runs it and, right after each such call on the "
              "same output, its two parts apart (the p50s of the parts need not add up to the whole's exactly).",
              ""]
    lines += decode_rows(report)
    for skip in dec["skipped"]:
        lines.append(f"\n*{skip['name']} not measured:* {skip['reason']}")
    crowd = dec.get("crowd") or {}
    lines += ["", f"### A {CROWD_PEOPLE}-person scene", ""]
    if crowd.get("backends"):
        wider = crowd["heatmap_size"][0] / max(1, dec["heatmap_size"][0])
        lines += [f"The video shows 2-5 people per frame; the targets speak of scenes of up to {CROWD_PEOPLE}. The "
                  f"scene here is {crowd['scene']} (the model's map is {dec['heatmap_size'][0]}×"
                  f"{dec['heatmap_size'][1]}, so the peak search covers {wider:.1f}× "
                  "the pixels a real frame with that many people would: a harsher test). Real tensors, nothing "
                  f"synthetic; {crowd['calls_per_backend']} calls per decoder.", ""]
        lines += crowd_rows(report)
    else:
        lines.append(f"Not measured: {crowd.get('skipped', 'no decoder')}.")
    lines += ["", "### numba's first call", ""] + numba_lines(report)

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

    lines += streams_lines(report)

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
