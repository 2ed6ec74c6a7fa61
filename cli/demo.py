"""``pose-fast demo``: poses drawn over a camera, a video file or a stream, in a window and/or to files."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional

import click

from pose_fast.engines.contract import MODES
from pose_fast.errors import PoseFastError, first_line
from pose_fast.people import MIN_KEYPOINTS, MIN_POSE_SCORE, PersonFilter
from pose_fast.supervisor import DEFAULT_STALL_TIMEOUT

from .errors import UserError
from .integrations import mqtt_options, zone_options

__all__ = ["demo"]



class _Progress:
    """A sink that advances a click progress bar on stderr (files of known length only)."""

    def __init__(self, bar):
        self.bar = bar

    def write(self, result) -> None:
        self.bar.update(1)

    def close(self) -> None:
        pass


def _summary(stats: dict, source, engine_text: str) -> str:
    stages = stats["stages"]
    lines = [
        f"{source.describe()}" + (f", 1 frame in {source.stride} inferred (--stride)"
                                  if getattr(source, "stride", 1) > 1 else ""),
        f"engine: {engine_text}",
        f"{stats['frames']} frames in {stats['elapsed_s']:.1f} s: {stats['fps']:.2f} FPS mean ({stats['mode']} "
        f"mode, {stats['in_flight']} in flight), {stats['dropped']} stale frames dropped, "
        f"up to {stats['people_max']} {'person' if stats['people_max'] == 1 else 'people'}",
    ]
    if stats.get("inference_skipped"):
        lines.append(f"motion gate: {stats['inference_skipped']} of {stats['frames']} frames without inference "
                     f"(nobody in view, nothing moved)")
    lines.append("stage        p50 ms   p99 ms")
    for stage in ("capture", "inference", "decode", "render", "latency"):
        name = "to overlay" if stage == "latency" else stage
        lines.append(f"{name:<12}{stages[stage]['p50']:>8.1f}{stages[stage]['p99']:>9.1f}")
    return "\n".join(lines)


def _has_display() -> bool:
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command("demo")
@click.option("--device-name", "-d", default=None,
              help="OpenVINO device: CPU (default), GPU, NPU, MYRIAD, AUTO, or an AUTO:/MULTI:/HETERO: list.")
@click.option("--video-url", "-i", default="0", show_default=True,
              help="Camera index, video file, or http(s)/rtsp URL.")
@click.option("--precision", default=None, help="Model precision: FP32, FP16 or FP16-INT8 (default per device).")
@click.option("--model", "-m", default=None, type=click.Path(dir_okay=False),
              help="Model .xml (default: found via POSE_FAST_MODEL_DIR or the model cache).")
@click.option("--input-height", default=256, show_default=True, type=int,
              help="Network input height, a multiple of 8 (lower is faster, less accurate).")
@click.option("--mode", type=click.Choice(MODES, case_sensitive=False), default=None,
              help="latency: one frame at a time, newest camera frame wins; throughput: every frame, as fast as "
                   "the device allows. Default: latency for cameras and streams, throughput for files.")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False),
              help="Write the annotated video here (.mp4).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Write one JSON object per frame here (JSON Lines).")
@click.option("--no-show", is_flag=True, help="Do not open a window.")
@click.option("--loop", is_flag=True, help="Restart a video file at its end.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--db", default=None, type=click.Path(dir_okay=False),
              help="Events database for enter/exit events (default: $POSE_FAST_DB or the per-user data folder).")
@click.option("--no-db", is_flag=True, help="Record no events (and draw order numbers instead of track ids).")
@click.option("--server", default=None, envvar="POSE_FAST_SERVER",
              help="Remote engine, grpc://host:port[/model] (env POSE_FAST_SERVER).")
@click.option("--min-pose-score", default=MIN_POSE_SCORE, show_default=True, type=click.FloatRange(min=0),
              help="Lowest pose score that counts as a person; poses below it (or with fewer than "
                   f"{MIN_KEYPOINTS} keypoints) are fragments: drawn faintly, not counted, tracked or exported.")
@click.option("--requests", default=None, type=click.IntRange(min=1),
              help="Requests in flight in throughput mode (default: what the device says is optimal, at least 2).")
@click.option("--realtime/--no-realtime", default=None,
              help="Play a video file at its own frame rate, like a camera (newest frame wins). Default: on in a "
                   "window, off headless (every frame, as fast as the device goes).")
@click.option("--keep-fragments", is_flag=True, help="Also write the fragments to --json (as \"fragments\").")
@click.option("--stride", default=1, show_default=True, type=int, metavar="N",
              help="Infer on every Nth frame of a video file only, skipping the others undecoded (their time "
                   "still counts): how a slow device sees a camera. Files only.")
@click.option("--reconnect/--no-reconnect", default=True, show_default=True,
              help="On a camera or live stream: when it stalls or ends, reopen it (backoff 0.5 s doubling to 30 s), "
                   "forever; the run ends only on Ctrl-C, SIGTERM or --limit. Files are never reopened.")
@click.option("--stall-timeout", default=DEFAULT_STALL_TIMEOUT, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds without a frame that count as a lost stream.")
@click.option("--motion-gate/--no-motion-gate", default=None,
              help="Skip inference while nobody is in view and nothing moves (the overlay says 'idle: no motion'; "
                   "still once a second). Default: on for cameras and streams, off for files; --motion-gate also "
                   "gates a file played --realtime.")
@mqtt_options
@zone_options
@click.option("--metrics-port", default=None, type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics on http://127.0.0.1:N/metrics while running.")
def demo(device_name, video_url, precision, model, input_height, mode, output, json_path, no_show, loop, limit,
         db, no_db, server, min_pose_score, requests, realtime, keep_fragments, stride, reconnect, stall_timeout,
         motion_gate, mqtt_url, mqtt_ca, config_path, zones, lines, metrics_port):
    """Show poses over a camera, a video file or a stream.

    In the window, q or Esc quits and space pauses. At the end a summary gives frames, mean FPS and per-stage
    latency (p50/p99).
    """
    from pose_fast.supervisor import SupervisedSource, limit_heap_arenas

    if reconnect:  # before any thread: a stream reopened for weeks keeps a flat RSS (pose_fast.supervisor)
        limit_heap_arenas()
    from pose_fast.frames import SourceError, open_source

    if db and no_db:
        raise UserError("--db and --no-db contradict each other: give one")
    if stride < 1:
        raise UserError(f"--stride must be 1 or more (infer on every Nth frame), got {stride}")
    extras = _integrations(config_path, zones, lines, mqtt_url, mqtt_ca, metrics_port, no_db)
    if not no_show and not _has_display():
        click.echo("note: no display (DISPLAY is not set), so no window: running headless; add --output or --json "
                   "to keep the results", err=True)
        no_show = True
    if realtime is None:
        realtime = not no_show and stride == 1
    try:
        source = open_source(video_url, realtime=realtime, stride=stride,
                             read_timeout_ms=int(stall_timeout * 1000))
    except SourceError as exc:
        raise UserError(str(exc)) from None
    if source.live and source.kind != "file" and reconnect:
        source = SupervisedSource(video_url, name=f"{'camera' if source.kind == 'camera' else 'stream'} {video_url}",
                                  stall_timeout=stall_timeout, first=source)
    with source:
        if mode is None:
            mode = "latency" if source.live else "throughput"
        _run(source, device_name, precision, model, input_height, mode, output, json_path, no_show, loop, limit,
             db, no_db, server, PersonFilter(min_pose_score), keep_fragments, requests, extras, motion_gate)


def _integrations(config_path, zones, lines, mqtt_url, mqtt_ca, metrics_port, no_db) -> dict:
    """Zones, lines, MQTT and metrics settings, checked before anything opens (see cli/integrations.py)."""
    from .integrations import mqtt_settings, read_config, zones_for

    config = read_config(config_path)
    zone_list, line_list = zones_for(config, None, zones, lines)
    url, ca = mqtt_settings(config, mqtt_url, mqtt_ca)
    if url and no_db:
        raise UserError("--mqtt publishes from the events database: leave out --no-db")
    if url:
        from pose_fast.integrations.mqtt import MqttError, parse_mqtt_url

        try:
            parse_mqtt_url(url)
        except MqttError as exc:
            raise UserError(str(exc)) from None
    return {"zones": zone_list, "lines": line_list, "mqtt": url, "mqtt_ca": ca, "metrics_port": metrics_port}


def _run(source, device_name, precision, model, input_height, mode, output, json_path, no_show, loop, limit, db,
         no_db, server, person_filter, keep_fragments, requests, extras=None, motion_gate=None):
    from pose_fast.engines import open_engine
    from pose_fast.events import EventRecorder, EventStore, exit_on_sigterm, resolve_db_path
    from pose_fast.pipeline import Pipeline
    from pose_fast.sinks import JsonlSink, VideoSink, WindowSink
    from pose_fast.tracking import Tracker

    from .integrations import camera_name, close_mqtt, start_mqtt

    extras = extras or {"zones": [], "lines": [], "mqtt": None, "metrics_port": None}
    camera = camera_name(source.spec)
    expected = (OSError, PoseFastError, ValueError)  # ValueError: the engine's frame checks, a tracker parameter
    failures: list = []  # reported as one line (the first), after the summary
    pipe = interrupted = store = None
    engine_text = device_name or ("the server" if server else "CPU")
    try:
        with contextlib.ExitStack() as stack:
            try:
                engine = stack.enter_context(open_engine(server=server, model=model, device=device_name,
                                                         precision=precision, input_height=input_height,
                                                         mode=mode, num_requests=requests,
                                                         progress=_download_progress()))
                # left after the sinks and the store: SIGTERM stays handled while they finish their files
                stack.enter_context(exit_on_sigterm())
                sinks = []
                if json_path:
                    sinks.append(stack.enter_context(JsonlSink(json_path, fragments=keep_fragments)))
                if output:
                    sinks.append(stack.enter_context(VideoSink(output, fps=source.fps)))
                if not no_show:
                    sinks.append(stack.enter_context(WindowSink(f"pose_fast: {source.spec}")))
                tracker = zone_tracker = publisher = None
                mqtt_holder: list = []
                stack.callback(close_mqtt, mqtt_holder)  # after the store's final commit (the stack unwinds LIFO)
                if not no_db:
                    store = EventStore(resolve_db_path(db))
                    store.snapshots.log_failure = False  # said after the summary, unless a worse error is
                    stack.callback(_close_store, store, failures)
                    recorder = EventRecorder(store, source=source.spec, device=engine.device)
                    tracker = Tracker(on_event=recorder.record)
                else:
                    recorder = None
                if extras["zones"] or extras["lines"]:
                    from pose_fast.zones import ZonedTracker, ZoneOverlay, ZoneTracker

                    zone_tracker = ZoneTracker(extras["zones"], extras["lines"], frame_size=source.size,
                                               on_event=None if recorder is None else recorder.record_zone)
                    tracker = ZonedTracker(tracker if tracker is not None else Tracker(), zone_tracker)
                    sinks.insert(0, ZoneOverlay(zone_tracker))  # first: the other sinks show the zones
                if extras["mqtt"]:
                    zone_names = [z.name for z in extras["zones"]]
                    publisher = start_mqtt(extras["mqtt"], store.path, {source.spec: (camera, zone_names)},
                                           extras.get("mqtt_ca"))
                    mqtt_holder.append(publisher)
                    sinks.append(publisher.people_sink(camera, zone_tracker, tracker))
                metrics_server = None
                if extras["metrics_port"] is not None:
                    metrics_server = _serve_metrics(extras["metrics_port"], camera, lambda: pipe, zone_tracker,
                                                    store, source.spec, publisher, sinks)
                    stack.callback(metrics_server.shutdown)
                total = None  # frames the progress bar counts to: none for cameras, streams, endless loops
                if not source.live:
                    count = None if loop else source.frame_count  # None: a file whose container does not say
                    count = count and -(-count // source.stride)  # frames inferred: every stride-th
                    total = min(count, limit or count) if count else limit
                if total and sys.stderr.isatty():  # a bar in a log file is noise
                    bar = stack.enter_context(click.progressbar(length=total, label="frames", file=sys.stderr,
                                                                show_pos=True, show_eta=True))
                    sinks.append(_Progress(bar))
                pipe = Pipeline(source, engine, tracker=tracker, sinks=sinks, mode=mode, limit=limit, loop=loop,
                                person_filter=person_filter, events=recorder, motion_gate=motion_gate)
                engine_text = engine.describe()
                pipe.run()
            except expected as exc:
                failures.append(exc)
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C, or SIGTERM (SystemExit(143)): the summary first
        if pipe is None:
            raise
        interrupted = exc
    except expected as exc:  # a sink failing as it closes (a full disk on the last write of --json/--output)
        failures.append(exc)
    if pipe is not None:
        click.echo(_summary(pipe.stats(), source, engine_text))
    if store is not None and store.error is None:
        click.echo(f"events: {store.written} stored in {store.path} (--db chooses the file, --no-db records none)")
    if failures:
        raise UserError(first_line(failures[0])) from None
    if store is not None and store.snapshots.failure:
        click.secho(f"warning: {store.snapshots.failure}", fg="yellow", err=True)
    lost = _ended_too_soon(source, pipe)
    if lost and interrupted is None:
        click.secho(f"warning: {lost}", fg="yellow", err=True)
        raise SystemExit(1)
    if isinstance(interrupted, SystemExit):
        raise interrupted
    if isinstance(interrupted, KeyboardInterrupt):
        raise SystemExit(130)  # what shells expect after Ctrl-C (128 + SIGINT), after the summary


def _ended_too_soon(source, pipe) -> Optional[str]:
    """Why a run that reached its source's end ended before it should have, or None."""
    if pipe is None or pipe.stop_reason != "end":
        return None
    if getattr(source, "ended_early", False):
        return (f"{source.spec} ended at frame {source.ended_at} of {source.frame_count}: the file is truncated "
                f"or damaged, or its stream broke off")
    if source.live and source.kind != "file":
        return (f"{source.spec} stopped giving frames after {source.frames_read} (--no-reconnect: not reopened; "
                f"without it the stream is reopened until it is back)")
    return None


def _serve_metrics(port, camera, get_pipe, zone_tracker, store, source, publisher, sinks):
    """Prometheus metrics of this run on http://127.0.0.1:port/metrics (a one-line error if the port is taken)."""
    from pose_fast.integrations.metrics import Metrics, serve

    metrics = Metrics()
    sinks.append(metrics.frame_sink(camera))

    def stats():
        pipe = get_pipe()
        if pipe is None:
            return {}
        return {"dropped": pipe.dropped, "engine_dropped": pipe.engine_dropped,
                "reconnects": getattr(pipe.source, "reconnects", 0)}  # a supervised source counts its reopenings

    metrics.add_camera(camera, stats, zone_tracker)
    if store is not None:
        metrics.add_database(store.path, {source: camera})
    if publisher is not None:
        metrics.add_mqtt(publisher)
    try:
        server = serve(metrics, port)
    except OSError as exc:
        raise UserError(f"cannot serve metrics on 127.0.0.1:{port} ({exc.strerror or exc}): choose another "
                        f"--metrics-port") from None
    click.echo(f"metrics: http://127.0.0.1:{server.server_port}/metrics", err=True)
    return server


def _close_store(store, failures: list) -> None:
    """Close the events store (its final commit) and add its failure, if any, to ``failures``."""
    from pose_fast.events import EventStoreError

    try:
        store.close()
    except EventStoreError:
        pass  # store.error, below
    finally:  # also when a Ctrl-C held back during the commit is re-raised
        if store.error is not None and store.journaled and not store.unsaved:  # nothing lost: kept for later
            click.secho(f"warning: {first_line(store.error)}", fg="yellow", err=True)
        elif store.error is not None:
            failures.append(store.error)


def _download_progress():
    """A progress callback for the model's first-use download: says once what is fetched, then draws a bar."""
    from pose_fast.model import print_progress

    announced = False

    def progress(done: int, total) -> None:
        nonlocal announced
        if done and not announced:
            announced = True
            click.echo("downloading the model human-pose-estimation-0001 (first use; cached afterwards)", err=True)
        print_progress(done, total)

    return progress
