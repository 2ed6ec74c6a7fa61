"""Measure pose_fast end to end: :func:`run_bench`, the engine behind ``pose-fast bench``.

One process measures, in this order (each figure on the same frames of one video):

1. inference only, through :class:`pose_fast.engines.local.Engine`, per precision and hint: ``latency`` (one request,
   ``infer()`` frame after frame) and ``throughput`` (the device's optimal number of requests, ``submit()`` over
   a batch, frames/s over the batch);
2. the full pipeline (capture → inference → decode → tracker with an event recorder → overlay) in latency and
   throughput mode, with per-frame stage timings;
3. with ``server``: 1, 2 and 4 concurrent streams against the server (:func:`pose_fast.bench.streams.run_streams`),
   beside the local engine on the same frames and the server's model alone (one client keeping as many requests
   in flight as 4 streams do);
4. the decoder on real model outputs, per available backend (``cython``, ``numba``, ``numpy``) and the peer
   ``OpenPoseDecoder`` of openvino-model-api when it imports (:func:`pose_fast.bench.peer.peer_decoder`), whole
   and in its two parts (the notebook's NMS, the grouping); the same on a 10-person scene made of real outputs side
   by side (:func:`pose_fast.bench.crowd.tiled_crowd`); numba's first call, in this process (compiled or loaded
   from its on-disk cache: the report says which) and in a fresh process with an empty cache (the true compile
   time);
5. identities when the tracker sees only every 2nd, 3rd or 5th frame: the video's first frames (up to
   :data:`~pose_fast.bench.identities.MAX_TRACKING_FRAMES`) decoded once through the primary precision's
   latency-mode engine, the tracker's sub-sampled and panned runs against its full-rate run, and its cost per
   result for 10 people (:mod:`pose_fast.bench.identities`);
6. the event store's write rate and the ``/detections`` page time on a temporary database (the page time through
   the web app the caller passes as ``make_detections_app``).

Inference only, the pipeline and OpenVINO's ``benchmark_app`` on the same IR and network size (the ceiling,
:mod:`pose_fast.bench.ceiling`; skipped when it is absent or with ``server``) are measured in alternating rounds
(A B C A B C ..., per mode) so that a change of load on a shared machine hits all of them alike.

:func:`run_bench` returns the report as a dict (the content of ``report.json``);
:func:`pose_fast.bench.markdown.write_report` writes ``report.json``, ``report.md`` and the PNG plots.
"""
from __future__ import annotations

import datetime as _dt
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from ..engines.contract import MODES
from ..errors import BenchError
from ..model import PRECISIONS
from .ceiling import HINTS, benchmark_app_command, round_seconds, run_benchmark_app
from .decoders import measure_decoders
from .engine_runs import infer_latency, infer_throughput, merge_pipeline, pipeline_run
from .eventstore import measure_events
from .identities import MAX_TRACKING_FRAMES, decode_video, measure_identities
from .inputs import fetch_hint, find_model, read_frames
from .machine import machine_info
from .numba_compile import numba_first_call
from .plan import DEFAULT_FRAMES, EVENTS_TABLE, EVENTS_WRITTEN, TRACKING_STEPS, Progress
from .streams import measure_streams
from .targets import compute_ratios
from .timing import collect_garbage, summarize

__all__ = ["SCHEMA", "run_bench"]

SCHEMA = 3  # 2: targets have a unit; decode.peer_parts, decode.crowd, decode.numba_first_call; streams
#            3: tracking; ceiling (benchmark_app); pipeline frame0_latency_ms, context_switches


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _noop(label: str, units: int) -> None:
    pass


def _infer_precision(engine) -> Optional[str]:
    """The CPU arithmetic the engine asked for, for benchmark_app's ``-infer_precision`` (like with like)."""
    precision = getattr(engine, "cpu_precision", None)
    return precision if precision and "CPU" in str(getattr(engine, "device", "")).upper() else None


def _ceiling_row(precision: str, mode: str, net, app_runs: list) -> dict:
    """One ceiling row from a mode's benchmark_app rounds: FPS is the mean of the rounds' FPS (each ran the same
    time), or the first error."""
    good = [r for r in app_runs if "error" not in r]
    row = {"precision": precision, "mode": mode, "hint": HINTS[mode], "network_size": list(net),
           "rounds": len(app_runs), "args": app_runs[0]["args"],
           "round_fps": [r["fps"] for r in good], "fps": None, "latency_p50_ms": None, "requests": None}
    if len(good) < len(app_runs):
        row["error"] = next(r["error"] for r in app_runs if "error" in r)
    if good:
        row["fps"] = sum(r["fps"] for r in good) / len(good)
        medians = sorted(r["latency_p50_ms"] for r in good if r["latency_p50_ms"] is not None)
        row["latency_p50_ms"] = medians[len(medians) // 2] if medians else None
        row["requests"] = good[0]["requests"]
    return row


def run_bench(video: str, device: str = "CPU", precisions: Sequence[str] = PRECISIONS, frames: int = DEFAULT_FRAMES,
              server: Optional[str] = None, model_dir=None, progress: Optional[Progress] = None,
              events: bool = True, rounds: int = 4,
              make_detections_app: Optional[Callable[[Path], object]] = None) -> dict:
    """Measure everything and return the report (see the module docstring). Raises BenchError, EngineError.

    ``make_detections_app(path)``: the Flask app serving ``GET /detections`` for the events database at ``path``,
    whose page time the report gives (``pose-fast bench`` passes
    :func:`pose_fast.webapp.detections.create_detections_app`); without it the event store's write rate is
    measured alone (see :func:`pose_fast.bench.eventstore.measure_events`).
    """
    from .. import _ov
    from ..engines import open_engine

    if frames < 1:
        raise BenchError(f"--frames must be at least 1, got {frames}")
    progress = progress or _noop
    started = time.perf_counter()
    date = _utc_now()
    distinct, video_facts = read_frames(video, frames)
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
    inference, pipeline, ceiling_rows = [], [], []
    kept: Dict[int, tuple] = {}
    bench_app = None if server else benchmark_app_command()
    ceiling_skipped = ("a remote server runs its own model: benchmark_app measures local devices only" if server
                       else None if bench_app else
                       "benchmark_app not found (it ships with the openvino wheel: pip install openvino)")
    device_used = device
    tracked = None  # the video's poses for the identities section
    with tempfile.TemporaryDirectory(prefix="pose-fast-bench-") as tmp:
        tmp_path = Path(tmp)
        for precision, xml in todo:
            for mode in MODES:
                # a server runs its own model on its own device: open_engine refuses a device with it
                kwargs = {"mode": mode, "device": None if server else device}
                if xml is not None:
                    kwargs.update(model=xml, precision=precision, core=core)
                label = f"{precision} {mode}"
                with open_engine(server=server, **kwargs) as engine:
                    engine.prepare(*frame_size)
                    device_used = getattr(engine, "device", device)
                    inf_times, inf_elapsed, runs, app_runs, inf_rounds = [], 0.0, [], [], []
                    net = getattr(engine, "network_size", None)
                    for i, n in enumerate(splits):
                        if mode == "latency":
                            times, elapsed = infer_latency(
                                engine, distinct, n, progress, f"inference {label}", first=sum(splits[:i]),
                                kept=kept if precision == todo[0][0] else None)
                        else:
                            times, elapsed = infer_throughput(engine, distinct, n, progress, f"inference {label}")
                        inf_times += times
                        inf_elapsed += elapsed
                        inf_rounds.append(len(times) / elapsed if elapsed > 0 else 0.0)
                        runs.append(pipeline_run(video, engine, mode, n, progress, f"pipeline {label}",
                                                 tmp_path / f"events-{precision}-{mode}-{i}.sqlite3"))
                        if bench_app and net:
                            progress(f"benchmark_app {label}", 0)
                            app_runs.append(run_benchmark_app(
                                bench_app, xml, device_used, HINTS[mode], tuple(net), round_seconds(n),
                                infer_precision=_infer_precision(engine)))
                    if tracked is None and mode == "latency":
                        progress("tracking: decoding the video", 0)
                        tracked = decode_video(video, lambda w, h, e=engine: e, limit=MAX_TRACKING_FRAMES)
                        progress("tracking: decoding the video", 1)
                    inference.append({
                        "precision": precision, "mode": mode, "requests": int(engine.num_requests),
                        "network_size": list(net) if net else None, "frames": len(inf_times),
                        "elapsed_s": inf_elapsed, "fps": len(inf_times) / inf_elapsed if inf_elapsed > 0 else 0.0,
                        "round_fps": inf_rounds,
                        "latency_ms": summarize(inf_times), "samples": [round(t, 3) for t in inf_times],
                    })
                    pipeline.append({"precision": precision, "mode": mode, **merge_pipeline(runs)})
                    if app_runs:
                        ceiling_rows.append(_ceiling_row(precision, mode, net, app_runs))
                # free the closed engine here, in the main thread (see collect_garbage)
                del engine
                collect_garbage()
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
            streams = measure_streams(server, distinct, frames, progress, local=local, device=device,
                                      local_skip=local_skip)
        outputs = [kept[i] for i in sorted(kept)]
        if not outputs:
            raise BenchError("the engine returned no outputs to decode (a remote server dropped every frame?)")
        decode = measure_decoders(outputs, frame_size, max(frames, len(outputs)), progress, tmp_path, numba_here)
        progress("tracking", 0)
        tracking = measure_identities([tracked]) if tracked is not None else None
        progress("tracking", TRACKING_STEPS - 1)
        events_report = (measure_events(tmp_path, progress, make_detections_app=make_detections_app) if events
                         else None)
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
                     "events_table": EVENTS_TABLE if events and make_detections_app else 0,
                     "device_requested": device,
                     "precisions_requested": list(dict.fromkeys(precisions))},
        "inference": inference,
        "pipeline": pipeline,
        "ceiling": {"rows": ceiling_rows, "skipped": ceiling_skipped,
                    "command": " ".join(bench_app) if bench_app else None},
        "decode": decode,
        "streams": streams,
        "tracking": tracking,
        "events": events_report,
    }
    report["ratios"], report["targets"] = compute_ratios(report)
    report["duration_s"] = round(time.perf_counter() - started, 1)
    return report
