"""The page and the stream endpoints.

``GET /``
    The live view (``?source=NAME&device-name=...`` preselect what it shows: a camera's name, or ``demo``); a
    ``source`` or ``device-name`` the server does not know is a 400 page saying so and what is valid.
``GET /video_feed?source=NAME&device-name=AUTO``
    ``multipart/x-mixed-replace`` MJPEG of the annotated stream. A camera's stream is always running (watching it
    on another device moves it there if nobody else watches it, else a 409); the demo video's starts for its first
    viewer. A 503 with a JSON error when the source or the device cannot run now.
``GET /snapshot.jpg?source=...&device-name=...``
    The current annotated frame as one JPEG (after a spell with nobody watching, the next frame: never a stale one).
``GET /stats?source=...&device-name=...``
    JSON: source, device, state (idle, starting, running, stopped, failed), fps, inference_ms, people, viewers,
    frames, encodes, dropped (camera frames skipped as stale), engine_dropped (frames a remote engine dropped: the
    server lost or too slow; shown without people), error.
``GET /sources``
    JSON: the sources this server offers (with whether the camera opens), the devices, the defaults.

An unknown ``source`` or ``device-name`` is a 400 with ``{"error", "status", "valid"}``. The browser only names a
source; the file or camera behind it is the server's configuration, never the query string.
"""
from __future__ import annotations

import socket

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from .broadcaster import BOUNDARY
from .responses import NO_CACHE, json_error, public_errors
from .stream import MjpegBody, StreamError
from .streams import StreamManager

__all__ = ["page_bp", "streams_bp", "get_manager"]

page_bp = Blueprint("page", __name__)
streams_bp = Blueprint("streams", __name__)



class BadParameter(Exception):
    def __init__(self, message: str, valid):
        super().__init__(message)
        self.message = message
        self.valid = list(valid)


def get_manager() -> StreamManager:
    return current_app.extensions["pose_fast_streams"]


@streams_bp.errorhandler(BadParameter)
@page_bp.errorhandler(BadParameter)
def _bad_parameter(exc: BadParameter):
    return json_error(exc.message, 400, valid=exc.valid)


def _param(*names: str):
    for name in names:
        value = request.args.get(name)
        if value is not None:
            return value
    return None


def _choice() -> tuple:
    """(source, device) from the query string, validated against what this server has."""
    manager = get_manager()
    sources = manager.sources()
    asked = _param("source")
    if asked is None:
        asked = current_app.config["DEFAULT_SOURCE"] or (sources[0] if sources else "")
    source = manager.find_source(asked.strip())
    if source is None:
        valid = ", ".join(sources) or "none (start the server with --demo-video FILE or --camera NAME=SPEC)"
        raise BadParameter(f"unknown source {asked.strip()!r}: this server offers {valid}", sources)
    names = manager.device_names()
    device = _param("device-name", "device_name", "device")
    if device is None:
        device = current_app.config["DEVICE"]
    key = device.strip().upper()
    if key not in names:
        valid = manager.devices()
        raise BadParameter(f"unknown device-name {device!r}: this machine has {', '.join(valid)}", valid)
    return source, names[key]


# -- the page ----------------------------------------------------------------------------------------------------
@page_bp.route("/")
def index():
    manager = get_manager()
    source, device, problem = None, None, None
    try:
        source, device = _choice()
    except BadParameter as exc:
        problem = exc.message  # shown on the page, which starts from the defaults
    sources = manager.describe_sources()
    names = manager.device_names()
    default = names.get(str(current_app.config["DEVICE"]).upper(), current_app.config["DEVICE"])
    html = render_template("index.html", sources=sources, devices=manager.devices(),
                           source=source if _param("source") and not problem else None,
                           device=device or default, remote=manager.server, problem=problem)
    return html, 400 if problem else 200


# -- the streams -------------------------------------------------------------------------------------------------
def _hang_up(environ):
    """A callable that closes this request's connection from another thread, or None when the server (not
    waitress, e.g. Flask's test client) offers no way: waitress's ``client_disconnected`` check is a method of
    the connection's channel: shutting its socket down makes the server's loop close the channel, which wakes
    the thread blocked writing to it."""
    check = environ.get("waitress.client_disconnected")
    channel = getattr(check, "__self__", None)
    if channel is None or not hasattr(channel, "socket") or not hasattr(channel, "server"):
        return None

    def hang_up() -> None:
        channel.will_close = True
        try:  # a client that does not read never makes its socket writable: the loop would never close it
            channel.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone
        channel.server.pull_trigger()

    return hang_up


def _subscribe():
    """(source, device, subscription) for the request's choice; a JSON 503 when the stream cannot start."""
    source, device = _choice()
    try:
        return source, device, get_manager().subscribe(source, device, client=request.remote_addr or "",
                                                       hang_up=_hang_up(request.environ))
    except StreamError as exc:
        abort(json_error(str(exc), exc.status, source=source, device=device))


_MJPEG = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


@streams_bp.route("/video_feed")
def video_feed():
    if request.method == "HEAD":  # what a GET would answer, without starting a stream for it
        _choice()
        return Response(b"", mimetype=_MJPEG, headers=NO_CACHE)
    source, device, sub = _subscribe()
    disconnected = request.environ.get("waitress.client_disconnected")
    body = MjpegBody(sub, disconnected)
    headers = dict(NO_CACHE)
    headers["X-Accel-Buffering"] = "no"
    return Response(body, mimetype=_MJPEG, headers=headers,
                    direct_passthrough=True)


@streams_bp.route("/snapshot.jpg")
def snapshot():
    source, device, sub = _subscribe()
    with sub:
        jpeg = sub.latest(timeout=current_app.config["SNAPSHOT_TIMEOUT"])
        error = sub.stream.error
    if jpeg is None:
        return json_error(error or f"no frame from {source} on {device} yet: try again", 503, source=source,
                      device=device)
    return Response(jpeg, mimetype="image/jpeg", headers=NO_CACHE)


@streams_bp.route("/stats")
def stats():
    source, device = _choice()
    return jsonify(public_errors(get_manager().stats(source, device))), 200, NO_CACHE


@streams_bp.route("/sources")
def sources():
    manager = get_manager()
    body = {
        "sources": manager.describe_sources(),
        "devices": manager.devices(),
        "default_device": current_app.config["DEVICE"],
        "default_source": current_app.config["DEFAULT_SOURCE"],
        "streams": [s.stats() for s in manager.running()],
    }
    return jsonify(public_errors(body)), 200, NO_CACHE
