"""``pose-fast web`` (and ``python main.py``): the live view and the /detections API on waitress."""
from __future__ import annotations

import ipaddress
import logging
import os

import click

from .errors import UserError
from .integrations import mqtt_options, zone_options

__all__ = ["web", "make_server", "THREADS"]

#: waitress worker threads: every MJPEG viewer holds one while it watches.
THREADS = 32
#: Seconds an idle connection (no request, nothing to send) stays open, and how often that is checked.
CHANNEL_TIMEOUT = 30
CLEANUP_INTERVAL = 5


def connection_limit() -> int:
    """Connections waitress accepts at once: as many as the process's file descriptors allow, less a reserve for
    the database, the model and the cameras (at most 4,096)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):  # Windows: no resource module
        return 500
    if soft == resource.RLIM_INFINITY:
        soft = 8192
    return max(100, min(4096, soft - 128))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(app, host: str = "127.0.0.1", port: int = 0, threads: int = THREADS,
                backlog_bytes: int = 512 * 1024):
    """A waitress server for the app, tuned for MJPEG.

    Every chunk is sent at once (waitress's default ``send_bytes=1``); a slow viewer blocks only its own thread
    after about ``backlog_bytes`` of unsent output in waitress and as much in the kernel, and then skips frames
    instead of lagging further; a closed connection is seen while its response waits for a frame
    (``channel_request_lookahead``); a viewer that stops reading loses its slot and its thread after the app's
    ``VIEWER_TIMEOUT``.

    Idle connections cost no thread, only a file descriptor: up to :func:`connection_limit` are accepted (waitress's
    own default, 100, let 101 idle sockets stop the server answering anyone), and one that sends nothing for
    ``CHANNEL_TIMEOUT`` s is closed (checked every ``CLEANUP_INTERVAL`` s)."""
    import socket

    from waitress.adjustments import Adjustments
    from waitress.server import create_server

    extra = {}
    if Adjustments.send_bytes != 1:  # waitress < 3 buffered 18,000 bytes: a small frame would wait for the next
        extra["send_bytes"] = 1
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
               (socket.SOL_SOCKET, socket.SO_SNDBUF, max(4096, backlog_bytes // 2))]  # the kernel doubles it
    server = create_server(app, host=host, port=port, threads=threads, outbuf_high_watermark=backlog_bytes,
                           channel_request_lookahead=4, clear_untrusted_proxy_headers=True, ident="pose_fast",
                           connection_limit=connection_limit(), channel_timeout=CHANNEL_TIMEOUT,
                           cleanup_interval=CLEANUP_INTERVAL, **extra)
    server.adj.socket_options = options  # applied to every accepted connection
    server.channel_class = _json_error_channel()  # waitress's own errors (431, a bad Content-Length...) as JSON
    pull_trigger = server.pull_trigger

    def pull_trigger_unless_closed():
        try:
            pull_trigger()
        except OSError:  # EBADF: the server closed its trigger while a response thread was still finishing
            pass

    server.pull_trigger = pull_trigger_unless_closed  # a viewer's thread ending at shutdown left a traceback
    return server


def _json_error_channel():
    """waitress's connection class, answering the errors waitress finds itself before the app runs (a request
    line or headers too large: 431; a malformed request: 400; an unsupported Transfer-Encoding: 501) in the
    app's JSON shape, ``{"error": "...", "status": N}``, instead of text/plain."""
    import json

    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self):
            error = self.request.error
            detail = str(error.body).strip().splitlines()[0] if str(error.body).strip() else ""
            body = json.dumps({"error": f"{error.reason}: {detail}" if detail else error.reason,
                               "status": error.code}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            if hasattr(self, "set_close_on_finish"):  # waitress 3
                self.set_close_on_finish()
            else:  # waitress 2: what its own ErrorTask does
                self.response_headers.append(("Connection", "close"))
                self.close_on_finish = True
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    return JsonErrorChannel


def _url(host: str, port: int, device: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?device-name={device}"


def _check_server(url: str, **local_options) -> None:
    """Refuse options that apply only in-process; connect to the inference server once and check its model (as
    every stream will), then disconnect."""
    from pose_fast.engines import refuse_local_options
    from pose_fast.engines.remote import RemoteEngine
    from pose_fast.errors import EngineError

    try:
        refuse_local_options(**local_options)
        RemoteEngine(url).close()
    except EngineError as exc:
        raise UserError(str(exc)) from None


def _check_model(model, device: str) -> None:
    """Find the model now (fetching it on first use, as a stream would), so that a missing one is an error at start,
    not on the first page view."""
    from pose_fast.errors import ModelError
    from pose_fast.model import print_progress, resolve_model

    try:
        resolve_model(model, device=device, progress=print_progress)
    except ModelError as exc:
        raise UserError(str(exc)) from None


def _integrations(config: dict, zones, lines, mqtt_url, mqtt_ca) -> dict:
    """ZONES (per camera: the config file's [[cameras]] zones, the top-level ones and --zone/--line for every
    camera without its own), MQTT_URL and MQTT_CA settings (cli/integrations.py), from the parsed config file."""
    from pose_fast.zones import ZoneError, zones_from_config

    from .integrations import mqtt_settings, zones_for

    try:
        found = zones_from_config(config)
    except ZoneError as exc:
        raise UserError(str(exc)) from None
    found[None] = zones_for(config, None, zones, lines)
    url, ca = mqtt_settings(config, mqtt_url, mqtt_ca)
    out = {"ZONES": found}
    if url:
        out["MQTT_URL"] = url
    if ca:
        out["MQTT_CA"] = ca
    return out


@click.command("web")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1, env POSE_FAST_HOST). Anything "
                                           "else exposes the camera to the network.")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port (default 5000, env POSE_FAST_PORT).")
@click.option("--demo-video", default=None,
              help="Video behind the page's demo toggle, looped (env POSE_FAST_DEMO_VIDEO; default the shared "
                   "one-by-one-person-detection.mp4 beside the project, if any); 'none' disables it.")
@click.option("--camera", "cameras", multiple=True, metavar="NAME=SPEC",
              help="A camera, always on (recording whether or not anyone watches): SPEC is a camera index, a device "
                   "path or an rtsp:// or http(s):// URL; repeat it for more cameras. A bare SPEC is named camera; "
                   "'none' disables cameras. Default: camera=0 (env POSE_FAST_CAMERAS, comma-separated, or the "
                   "--config file's [[cameras]]).")
@click.option("--stall-timeout", default=None, type=click.FloatRange(0.1, 3600),
              help="Seconds without a frame before a camera is reopened (default 10, env POSE_FAST_STALL_TIMEOUT).")
@click.option("--snapshot-keep", default=None, type=click.IntRange(min=0),
              help="Event snapshots (JPEGs beside the database) to keep, the oldest removed first (default 10000, "
                   "at most 1 GiB; 0 stores none; env POSE_FAST_SNAPSHOT_KEEP).")
@click.option("--db", default=None, type=click.Path(dir_okay=False),
              help="Events database (env POSE_FAST_DB; default the per-user data folder).")
@click.option("--device-name", "-d", default=None,
              help="Device when the URL names none: AUTO (default), CPU, GPU, NPU, MYRIAD (env POSE_FAST_DEVICE).")
@click.option("--model", "-m", default=None, type=click.Path(dir_okay=False),
              help="Model .xml (default: found via POSE_FAST_MODEL_DIR or the model cache).")
@click.option("--input-height", default=None, type=int,
              help="Network input height, a multiple of 8 (default 256; lower is faster, less accurate).")
@click.option("--server", default=None, metavar="URL",
              help="Remote inference server, grpc://host:port[/model] (env POSE_FAST_SERVER; default in-process).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A name browsers may use for this server besides its IP addresses and localhost (repeat it; env "
                   "POSE_FAST_ALLOWED_HOSTS, comma-separated). Other Host headers get a 400 (DNS rebinding).")
@click.option("--min-pose-score", default=None, type=click.FloatRange(min=0),
              help="Lowest pose score that counts as a person (default 10, env POSE_FAST_MIN_POSE_SCORE); "
                   "fragments below it are drawn faintly, not counted or recorded.")
@click.option("--motion-gate/--no-motion-gate", default=None,
              help="Skip inference while nobody is in view and nothing moves (still once a second; env "
                   "POSE_FAST_MOTION_GATE=1|0). Default: on for the camera, off for the demo video.")
@click.option("--threads", default=THREADS, show_default=True, type=click.IntRange(10, 1000),
              help="Server threads; each watching browser holds one (at most threads - 8 viewers).")
@mqtt_options
@zone_options
def web(host, port, demo_video, cameras, stall_timeout, snapshot_keep, db, device_name, model,
        input_height, server, allowed_hosts, min_pose_score, motion_gate, threads, mqtt_url, mqtt_ca, config_path,
        zones, lines):
    """Serve the live pose view of the cameras and the demo video, record their events, and serve /detections,
    /healthz and /readyz.

    Every camera runs from start-up, whether or not anyone watches; one that stalls or drops is reopened (backoff
    up to 30 s) forever. Open the printed URL in a browser. ?device-name=CPU|GPU|MYRIAD|AUTO picks the inference
    device; the page offers the devices this machine has. Ctrl-C stops the server and commits the recorded events.
    """
    from pose_fast.supervisor import limit_heap_arenas

    limit_heap_arenas()  # before any thread: cameras reopened for weeks keep a flat RSS (pose_fast.supervisor)
    from pose_fast.cameras import CameraConfigError, cameras_from_config, parse_cameras
    from pose_fast.events import exit_on_sigterm
    from pose_fast.webapp import NONE_VALUES, ConfigError, create_app

    from .integrations import read_config

    config = {"START_CAMERAS": False}  # started below, once the checks pass
    data = read_config(config_path)
    try:
        if cameras:
            config["CAMERAS"] = parse_cameras(cameras)
        if config_path:
            from_file = cameras_from_config(data, config_path)
            if "CAMERAS" not in config and not (os.environ.get("POSE_FAST_CAMERAS")
                                                or os.environ.get("POSE_FAST_CAMERA")):
                config["CAMERAS"] = from_file  # the command line, then the environment, win over the file
    except CameraConfigError as exc:
        raise UserError(str(exc)) from None
    if not os.environ.get("POSE_FAST_MAX_VIEWERS"):
        config["MAX_VIEWERS"] = threads - 8  # the other threads serve the page, /stats and /detections
    for key, value in (("HOST", host), ("PORT", port), ("DEMO_VIDEO", demo_video), ("STALL_TIMEOUT", stall_timeout),
                       ("SNAPSHOT_KEEP", snapshot_keep),
                       ("DATABASE", db), ("DEVICE", device_name), ("MODEL", model),
                       ("INPUT_HEIGHT", input_height), ("SERVER", server), ("MIN_POSE_SCORE", min_pose_score),
                       ("ALLOWED_HOSTS", allowed_hosts or None), ("MOTION_GATE", motion_gate)):
        if value is not None:
            config[key] = value
    config.update(_integrations(data, zones, lines, mqtt_url, mqtt_ca))
    if demo_video is not None and demo_video.strip().lower() not in NONE_VALUES:
        from pathlib import Path

        if not Path(demo_video).is_file():
            raise UserError(f"demo video {demo_video} not found: check the path, or leave --demo-video out")
    try:
        app = create_app(config)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    manager = app.extensions["pose_fast_streams"]
    devices = manager.devices()
    names = manager.device_names()
    if app.config["DEVICE"].upper() not in names:
        raise UserError(f"unknown device {app.config['DEVICE']!r}: this machine has {', '.join(devices)}")
    if app.config["SERVER"]:
        _check_server(app.config["SERVER"], device=device_name, model=model)
    else:
        _check_model(app.config["MODEL"], app.config["DEVICE"])
    host, port = app.config["HOST"], app.config["PORT"]
    if not _is_loopback(host):
        click.secho(f"warning: binding {host} exposes the live camera view and the events to the network; "
                    f"use --host 127.0.0.1 to keep them on this machine", fg="yellow", err=True)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # long-lived MJPEG responses queue others
    try:
        server = make_server(app, host, port, threads)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --port or "
                        f"stop the program using it") from None
    manager.start_cameras()
    sources = ", ".join(f"{name} ({info['label']})" for name, info in manager.describe_sources().items())
    click.echo(f"sources: {sources or 'none'}; devices: {', '.join(devices)}; events: {app.config['DATABASE']}")
    click.echo(f"serving on {_url(host, server.effective_port, names[app.config['DEVICE'].upper()])}  "
               f"(Ctrl-C stops)")
    try:
        with exit_on_sigterm():
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        manager.close()  # first: the streams end, and so do their viewers' responses
        server.close()
