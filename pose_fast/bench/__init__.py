"""Measure pose_fast end to end and write a report: the engine behind ``pose-fast bench``. One module per job:

- :mod:`~pose_fast.bench.run`: :func:`run_bench`, every measurement in order, the report as a dict;
- :mod:`~pose_fast.bench.plan`: frames per measurement, streams, event-store sizes, the progress bar's length;
- :mod:`~pose_fast.bench.inputs`: the model per precision, the default video, the frames kept in memory;
- :mod:`~pose_fast.bench.machine`: what the numbers were measured on;
- :mod:`~pose_fast.bench.engine_runs`: inference only and the full pipeline on one engine;
- :mod:`~pose_fast.bench.streams`: concurrent streams through local or remote engines (:func:`run_streams`);
- :mod:`~pose_fast.bench.decoders`: every decoder on real outputs, with :mod:`~pose_fast.bench.peer` (the peer
  decoder and its NMS), :mod:`~pose_fast.bench.crowd` (the 10-person scene) and
  :mod:`~pose_fast.bench.numba_compile` (numba's first call);
- :mod:`~pose_fast.bench.identities`: the tracker on every Nth frame against its full-rate run (IDF1, people,
  enters and exits), a camera pan, its cost per result;
- :mod:`~pose_fast.bench.eventstore`: the event store's write rate and the ``/detections`` page time;
- :mod:`~pose_fast.bench.targets`: ratios and target checks;
- :mod:`~pose_fast.bench.markdown` and :mod:`~pose_fast.bench.plots`: report.md, report.json, the PNG plots;
- :mod:`~pose_fast.bench.timing`: timing summaries shared by the measurements.

Nothing here imports a front end: the ``/detections`` page is timed on the web app the caller hands to
:func:`run_bench` (``make_detections_app``; ``pose-fast bench`` passes
:func:`pose_fast.webapp.detections.create_detections_app`). Helpers shared with ``bench/``: :func:`find_model`,
:func:`fetch_hint`, :func:`peer_decoder`, :func:`heatmap_nms`, :func:`summarize`, :func:`remote_stream_targets`,
:func:`run_streams`.
"""
from __future__ import annotations

from ..errors import BenchError
from .crowd import CROWD_GAP, CROWD_PEOPLE, tiled_crowd
from .identities import TARGET_IDF1, TARGET_TRACKER_MS, measure_identities
from .inputs import DEFAULT_VIDEO, default_video, fetch_hint, find_model
from .machine import machine_info
from .markdown import headline_rows, render_markdown, write_report
from .numba_compile import numba_first_call
from .peer import heatmap_nms, peer_decoder
from .plan import DEFAULT_FRAMES, EVENTS_TABLE, EVENTS_WRITTEN, REQUESTS_PER_STREAM, STREAMS, plan_units
from .plots import write_plots
from .run import run_bench
from .streams import run_streams
from .targets import (
    TARGET_CROWD_CYTHON_MS,
    TARGET_DECODE_SHARE,
    TARGET_PEER_SPEEDUP,
    TARGET_PIPELINE_RATIO,
    TARGET_REMOTE_FOUR_STREAMS,
    TARGET_REMOTE_ONE_STREAM,
    compute_ratios,
    format_target,
    remote_stream_targets,
    verdict,
)
from .timing import summarize

__all__ = [
    "CROWD_GAP", "CROWD_PEOPLE", "DEFAULT_FRAMES", "DEFAULT_VIDEO", "EVENTS_TABLE", "EVENTS_WRITTEN",
    "REQUESTS_PER_STREAM", "STREAMS", "TARGET_CROWD_CYTHON_MS", "TARGET_DECODE_SHARE", "TARGET_PEER_SPEEDUP",
    "TARGET_PIPELINE_RATIO", "TARGET_REMOTE_FOUR_STREAMS", "TARGET_REMOTE_ONE_STREAM", "TARGET_IDF1",
    "TARGET_TRACKER_MS", "measure_identities",
    "BenchError", "compute_ratios", "default_video", "fetch_hint", "find_model", "format_target", "headline_rows",
    "heatmap_nms", "machine_info", "numba_first_call", "peer_decoder", "plan_units", "remote_stream_targets",
    "render_markdown", "run_bench", "run_streams", "summarize", "tiled_crowd", "verdict", "write_plots",
    "write_report",
]
