"""``pose-fast bench``: measure inference, decoding, the pipeline and the event store; write a report."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from pose_fast.bench import DEFAULT_FRAMES
from pose_fast.errors import first_line
from pose_fast.model import PRECISIONS

from .errors import UserError

__all__ = ["bench"]


def _check_out(out: str) -> Path:
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file: give a folder for report.md, report.json and the plots")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".pose-fast-bench-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out {path} ({exc.strerror or exc}): choose a writable folder") from None
    return path


@click.command("bench")
@click.option("--device-name", "-d", default="CPU", show_default=True,
              help="OpenVINO device: CPU, GPU, NPU, AUTO, or an AUTO:/MULTI:/HETERO: list.")
@click.option("--video-url", "-i", default=None,
              help="Video file or http(s)/rtsp URL to measure on (default: store-aisle-detection.mp4 from "
                   "$POSE_FAST_VIDEO_DIR or ../shared/videos).")
@click.option("--precision", "precisions", multiple=True,
              type=click.Choice(PRECISIONS, case_sensitive=False),
              help="Model precision to measure; repeat for several. Default: every precision found locally "
                   "(missing ones are listed as skipped, with how to fetch them).")
@click.option("--frames", default=DEFAULT_FRAMES, show_default=True, type=click.IntRange(min=1),
              help="Frames per measurement (inference only and pipeline, each mode and precision; with --server "
                   "also per stream).")
@click.option("--out", "-o", default="bench-report", show_default=True, type=click.Path(),
              help="Folder for report.md, report.json and the PNG plots.")
@click.option("--server", default=None, envvar="POSE_FAST_SERVER",
              help="Measure a remote engine, grpc://host:port[/model] (env POSE_FAST_SERVER), and 1, 2 and 4 "
                   "concurrent streams against it beside the local engine.")
def bench(device_name, video_url, precisions, frames, out, server):
    """Measure inference, decoding, the full pipeline and the event store; write a report.

    Inference only runs through the engine per precision and mode (latency: one request, frame after frame;
    throughput: the device's optimal number of requests). Every decoder backend, and Open Model Zoo's
    OpenPoseDecoder when openvino-model-api is installed, decodes the same real outputs. The pipeline runs in both
    modes with per-stage timings; the event store's write rate and the /detections page time are measured on a
    temporary database. Decoding is also measured on a 10-person scene (real outputs side by side), and numba's
    first call is timed (here, and compiling from an empty cache in a fresh process). With --server, inference
    and the pipeline run through the server, then 1, 2 and 4 concurrent streams are measured against it beside the
    local engine and the server's model alone. OUT gets report.md, report.json and PNG plots. With the defaults a
    run takes a few minutes on a 2-core CPU.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("the report's plots need matplotlib: pip install 'pose_fast[bench]'") from None
    from pose_fast import bench as benchmarks
    from pose_fast.errors import EngineError
    from pose_fast.events import EventStoreError
    from pose_fast.frames import SourceError
    from pose_fast.webapp.detections import create_detections_app

    if video_url is None:
        found = benchmarks.default_video()
        if found is None:
            raise UserError(f"no video to measure on: pass --video-url PATH (a clip with people), or set "
                            f"POSE_FAST_VIDEO_DIR to a folder holding {benchmarks.DEFAULT_VIDEO}")
        video_url = str(found)
    elif "://" not in video_url and not os.path.isfile(video_url):
        raise UserError(f"video file {video_url} does not exist: pass --video-url with a video file or a "
                        f"http(s)/rtsp URL")
    out_dir = _check_out(out)
    # fail on a bad source or device now, in one line, before the progress bar starts
    try:
        from pose_fast.frames import open_source

        open_source(video_url).close()
        if not server:
            from pose_fast._ov import Core
            from pose_fast.engines.local import validate_device

            validate_device(Core(), device_name)
    except (SourceError, EngineError) as exc:
        raise UserError(first_line(exc)) from None
    explicit = bool(precisions)
    precisions = tuple(precisions) or PRECISIONS
    if not server:
        found = [p for p in precisions if benchmarks.find_model(p) is not None]
        if not found:
            wanted = precisions[0] if explicit else "FP16-INT8"
            raise UserError(f"no model for {', '.join(precisions)} on this machine: "
                            f"{benchmarks.fetch_hint(wanted)}")
        for p in precisions:
            if p not in found:
                click.echo(f"skipping {p}: not found; {benchmarks.fetch_hint(p)}", err=True)
        measured = len(found)
    else:
        measured = 1
    total = benchmarks.plan_units(frames, measured, server=bool(server))
    started = time.perf_counter()
    with click.progressbar(length=total, label="starting".ljust(30), file=sys.stderr, show_eta=True,
                           show_percent=True) as bar:
        def progress(label: str, units: int) -> None:
            text = label[:30].ljust(30)
            if bar.label != text:
                bar.label = text
            bar.update(units)

        try:
            # the core never imports the web app: the /detections page is timed on the one handed over here
            report = benchmarks.run_bench(video_url, device=device_name, precisions=precisions, frames=frames,
                                          server=server, progress=progress,
                                          make_detections_app=create_detections_app)
        except (benchmarks.BenchError, EngineError, SourceError, EventStoreError, OSError, ValueError) as exc:
            raise UserError(first_line(exc)) from None
        except KeyboardInterrupt:
            raise UserError("interrupted: no report written") from None
    try:
        paths = benchmarks.write_report(report, out_dir)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out_dir} ({exc.strerror or exc}): choose a writable "
                        f"--out folder") from None
    lines = [f"report: {paths[0]} ({time.perf_counter() - started:.0f} s)"]
    lines += benchmarks.headline_rows(report)
    for target in report["targets"]:
        measured, needed = benchmarks.format_target(target)
        note = f"; {target['note']}" if target.get("note") and benchmarks.verdict(target) == "skipped" else ""
        lines.append(f"{benchmarks.verdict(target).upper():<7} {target['name']}: {measured} (needs {needed}{note})")
    click.echo("\n".join(lines))
