"""``GET /openapi.json``: the web app described in OpenAPI 3.1, written by hand (:func:`build_document`).

Every route of the app is in it (``tests/test_openapi.py`` compares the document with ``app.url_map`` and fuzzes the
app against it with schemathesis), so a new endpoint, parameter or response field must be described here too.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from pose_fast.events import KINDS

__all__ = ["bp", "build_document", "OPENAPI_VERSION"]

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"

_ONE_LINE = "^[^\\r\\n]*$"
_COUNT = {"type": "integer", "minimum": 0}
_MS = {"type": "number", "minimum": 0}
_TEXT_OR_NULL = {"type": ["string", "null"]}
_MAX_PARAM = 2**31 - 1


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _error_schema(description: str, status: int, required=()) -> dict:
    """A response with an Error (``{"error", "status", ...}``) whose status is ``status``; ``required``: the
    optional fields of Error it always has."""
    schema = {"allOf": [_ref("schemas", "Error"), {"properties": {"status": {"const": status}}}]}
    if required:
        schema["allOf"].append({"required": list(required)})
    return {"description": description, "headers": {"Cache-Control": _ref("headers", "NoCache")},
            "content": {"application/json": {"schema": schema}}}


def _schemas() -> dict:
    stream_stats = {
        "source": {"type": "string", "description": "A camera's name, or ``demo``."},
        "device": {"type": "string", "description": "The OpenVINO device the stream runs on (``AUTO``, ``CPU``, "
                                                    "``GPU.0``, ...)."},
        "state": {"type": "string", "enum": ["idle", "starting", "running", "reconnecting", "stopped", "failed"],
                  "description": "``idle``: never started on this server; ``reconnecting``: a camera that is lost "
                                 "or does not open, tried again with backoff (``error`` says why)."},
        "always_on": {"type": "boolean", "description": "A camera's stream: it runs and records whether or not "
                                                        "anyone watches."},
        "last_frame_s": {"type": ["number", "null"], "minimum": 0,
                         "description": "Seconds since a camera's last frame; null for the demo or before one."},
        "reconnects": {**_COUNT, "description": "Times a camera's stream was lost and reopened."},
        "error": {**_TEXT_OR_NULL, "pattern": _ONE_LINE,
                  "description": "Why the stream failed or stopped (one line, no absolute path); null when it did "
                                 "not."},
        "fps": {"type": "number", "minimum": 0, "description": "Frames per second (0 unless running)."},
        "inference_ms": {**_MS, "description": "Milliseconds of inference per frame (0 unless running)."},
        "people": {**_COUNT, "description": "People in the latest frame (0 unless running)."},
        "viewers": {**_COUNT, "description": "MJPEG viewers of this stream."},
        "frames": {**_COUNT, "description": "Frames the pipeline delivered."},
        "frames_watched": {**_COUNT, "description": "Frames delivered while someone watched."},
        "encodes": {**_COUNT, "description": "JPEG encodes: one per watched frame, whatever the number of viewers."},
        "dropped": {**_COUNT, "description": "Camera frames skipped as stale."},
        "engine_dropped": {**_COUNT, "description": "Frames a remote engine dropped (shown without people)."},
        "encode_ms": {**_MS, "description": "Milliseconds per JPEG encode."},
        "frame_size": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 1},
                       "minItems": 2, "maxItems": 2, "description": "[width, height] of the frames; null before the "
                                                                     "first."},
        "engine": {"type": "string", "description": "The engine, as people read it (empty before it opened)."},
        "ready_s": {"type": ["number", "null"], "minimum": 0,
                    "description": "Seconds from the start to the first frame; null until then."},
    }
    only_started = ["encode_ms", "frame_size", "engine", "ready_s", "always_on", "last_frame_s", "reconnects"]
    return {
        "Error": {
            "type": "object",
            "description": "Every error of the app: a 4xx or 5xx is always this JSON object.",
            "required": ["error", "status"],
            "additionalProperties": False,
            "properties": {
                "error": {"type": "string", "minLength": 1, "pattern": _ONE_LINE,
                          "description": "What went wrong, one line for people (a server path shows as its file "
                                         "name)."},
                "status": {"type": "integer", "minimum": 400, "maximum": 599,
                           "description": "The HTTP status code, repeated."},
                "valid": {"type": "array", "items": {"type": "string"},
                          "description": "With an unknown ``source`` or ``device-name``: the values this server "
                                         "accepts."},
                "source": {"type": "string", "description": "With a stream that cannot start: the source asked "
                                                            "for."},
                "ready": {"const": False, "description": "``/readyz``: not ready."},
                "cameras": {"type": "object", "additionalProperties": _ref("schemas", "CameraHealth"),
                            "description": "``/readyz``: each camera's health."},
                "device": {"type": "string", "description": "With a stream that cannot start: the device asked "
                                                            "for."},
            },
        },
        "StreamStats": {
            "type": "object",
            "description": "The numbers of one stream that has been started.",
            "required": list(stream_stats),
            "additionalProperties": False,
            "properties": {**stream_stats,
                           "state": {"type": "string",
                                     "enum": ["starting", "running", "reconnecting", "stopped", "failed"]}},
        },
        "Stats": {
            "type": "object",
            "description": "One stream's numbers and the server's viewer slots. ``encode_ms``, ``frame_size``, "
                           "``engine`` and ``ready_s`` are there once the stream has been started (``state`` is not "
                           "``idle``).",
            "required": [name for name in stream_stats if name not in only_started]
            + ["events_error", "watching", "max_viewers"],
            "additionalProperties": False,
            "properties": {
                **stream_stats,
                "events_error": {**_TEXT_OR_NULL, "pattern": _ONE_LINE,
                                 "description": "Why events are not recorded (one line); null when they are."},
                "watching": {**_COUNT, "description": "MJPEG viewers of all streams together."},
                "viewers_evicted": {**_COUNT, "description": "Viewers that lost their slot (stopped reading, or "
                                                             "held more than a fair share)."},
                "max_viewers": {"type": "integer", "minimum": 1,
                                "description": "MJPEG viewers the server takes at once (``MAX_VIEWERS``)."},
            },
            "if": {"properties": {"state": {"const": "idle"}}},
            "else": {"required": only_started},
        },
        "SourceInfo": {
            "type": "object",
            "required": ["kind", "available", "error", "label", "state"],
            "additionalProperties": False,
            "properties": {
                "kind": {"type": "string", "enum": ["camera", "demo"]},
                "available": {"type": "boolean", "description": "A camera: whether its always-on stream is running "
                                                                "now; the demo: whether its file is there."},
                "error": {**_TEXT_OR_NULL, "pattern": _ONE_LINE, "description": "Why it is not; null if it is."},
                "label": {"type": "string", "description": "``camera NAME``, or the demo video's file name."},
                "state": {"type": ["string", "null"],
                          "enum": ["starting", "running", "reconnecting", "stopped", "failed", None],
                          "description": "A camera's stream state; null for the demo."},
            },
        },
        "CameraHealth": {
            "type": "object",
            "required": ["state", "error", "last_frame_s", "losses", "reconnects"],
            "additionalProperties": False,
            "properties": {
                "state": {"type": "string", "enum": ["starting", "running", "reconnecting", "stopped", "failed"]},
                "error": {**_TEXT_OR_NULL, "pattern": _ONE_LINE, "description": "The last error; null if none."},
                "last_frame_s": {"type": ["number", "null"], "minimum": 0,
                                 "description": "Seconds since its last frame; null before one."},
                "losses": {**_COUNT, "description": "Times the stream was lost."},
                "reconnects": {**_COUNT, "description": "Times it came back."},
            },
        },
        "Ready": {
            "type": "object",
            "required": ["ready", "cameras"],
            "additionalProperties": False,
            "properties": {"ready": {"const": True},
                           "cameras": {"type": "object", "additionalProperties": _ref("schemas", "CameraHealth")}},
        },
        "Health": {"type": "object", "required": ["status"], "additionalProperties": False,
                   "properties": {"status": {"const": "ok"}}},
        "Sources": {
            "type": "object",
            "required": ["sources", "devices", "default_device", "default_source", "streams"],
            "additionalProperties": False,
            "properties": {
                "sources": {"type": "object", "description": "The sources this server was started with: the "
                                                               "cameras by name, then ``demo``.",
                            "additionalProperties": _ref("schemas", "SourceInfo")},
                "devices": {"type": "array", "items": {"type": "string"}, "contains": {"const": "AUTO"},
                            "uniqueItems": True,
                            "description": "``AUTO`` (first) and the OpenVINO devices of this machine."},
                "default_device": {"type": "string", "description": "The device when a URL names none "
                                                                    "(``DEVICE``)."},
                "default_source": {"type": ["string", "null"],
                                   "description": "The source when a URL names none (``DEFAULT_SOURCE``); null: the "
                                                  "camera if configured, else the demo."},
                "streams": {"type": "array", "items": _ref("schemas", "StreamStats"),
                            "description": "The streams running now."},
            },
        },
        "Event": {
            "type": "object",
            "required": ["id", "kind", "person_id", "timestamp", "source", "frame_index", "people_count", "device",
                         "run_id", "track_id", "reason", "snapshot", "zone", "direction", "dwell_s"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "integer", "minimum": 1, "description": "Increases with every event stored."},
                "kind": {"type": "string", "enum": ["enter", "exit", "zone_enter", "zone_exit", "line_cross"]},
                "person_id": {"type": "integer", "description": "The person, unique in the database (one per "
                                                                "tracker identity of a run)."},
                "run_id": {"type": "string", "description": "One per pipeline start; empty for events stored "
                                                            "before schema 3."},
                "track_id": {"type": "integer", "description": "The tracker's id of the person within the run."},
                "reason": {"type": ["string", "null"], "enum": ["left", "stream lost", "run ended", None],
                           "description": "Why an exit happened: the person left the view, the stream was lost, "
                                          "or the run ended with them in view; null for other kinds."},
                "snapshot": {"type": ["string", "null"], "description": "The URL of the event's JPEG "
                                                                       "(``/detections/{id}/snapshot.jpg``), or null."},
                "zone": {"type": ["string", "null"], "description": "The zone or line of a zone event."},
                "direction": {"type": ["string", "null"], "description": "``in`` or ``out`` for ``line_cross``."},
                "dwell_s": {"type": ["number", "null"], "description": "Seconds in the zone (``zone_exit``)."},
                "timestamp": {"type": "string", "format": "date-time",
                              "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                              "description": "UTC, milliseconds, e.g. ``2026-11-25T07:00:00.123Z``."},
                "source": {"type": "string", "description": "``camera N`` or the video's file name."},
                "frame_index": {"type": "integer", "minimum": 0},
                "people_count": {"type": "integer", "minimum": 0, "description": "People in that frame."},
                "device": {"type": "string"},
            },
        },
        "Pagination": {
            "type": "object",
            "required": ["page", "per_page", "count", "pages", "next", "prev"],
            "additionalProperties": False,
            "properties": {
                "page": {"type": "integer", "minimum": 1, "maximum": _MAX_PARAM},
                "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
                "count": {**_COUNT, "description": "Events matching the filters, on all pages."},
                "pages": {**_COUNT, "description": "Pages of ``per_page`` events (0 when none match)."},
                "next": {"type": ["string", "null"], "format": "uri",
                         "description": "Absolute URL of the next page, with the same filters; null on the last."},
                "prev": {"type": ["string", "null"], "format": "uri",
                         "description": "Absolute URL of the previous page (the last page when this one is past "
                                        "the end); null on the first."},
            },
        },
        "Detections": {
            "type": "object",
            "required": ["results", "pagination"],
            "additionalProperties": False,
            "properties": {
                "results": {"type": "array", "items": _ref("schemas", "Event"), "maxItems": 100,
                            "description": "In ascending ``id`` order; empty past the last page."},
                "pagination": _ref("schemas", "Pagination"),
            },
        },
        "OpenAPI": {
            "type": "object",
            "description": "This document.",
            "required": ["openapi", "info", "paths"],
            "properties": {"openapi": {"const": OPENAPI_VERSION}, "info": {"type": "object"},
                           "paths": {"type": "object"}, "components": {"type": "object"}},
        },
    }


def _parameters() -> dict:
    def query(name, schema, description, **more):
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **more}

    device = ("An OpenVINO device of this machine, case-insensitive (``AUTO``, ``CPU``, ``GPU``, ``GPU.0``, ``NPU``"
              "...; ``GPU`` means ``GPU.0``); default ``DEVICE``. Anything else is a 400 listing the valid ones.")
    whole = {"type": "integer", "minimum": 1, "maximum": _MAX_PARAM}
    per_page = ("Events per page, default 50; above 100 counts as 100. ``per-page`` and ``per_page`` are the same "
                "parameter: given both, they must agree (else a 400).")
    when = {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]}
    zone = "ISO-8601 date or date-time, with ``Z``, an offset or none (UTC)"
    return {
        "source": query("source", {"type": "string"},
                        "``camera`` or ``demo`` (case-insensitive), among those the server was started with; "
                        "default ``DEFAULT_SOURCE``, else the first of them. Anything else is a 400 listing the valid "
                        "ones. The file or camera behind a source is the server's configuration, never the URL's.",
                        examples={"demo": {"value": "demo"}, "camera": {"value": "camera"}}),
        "device-name": query("device-name", {"type": "string"}, device,
                             examples={"cpu": {"value": "CPU"}, "auto": {"value": "AUTO"}}),
        "device_name": query("device_name", {"type": "string"}, "Another name of ``device-name`` (used when "
                             "``device-name`` is absent).", examples={"cpu": {"value": "CPU"}}),
        "device": query("device", {"type": "string"}, "Another name of ``device-name`` (used when ``device-name`` "
                        "and ``device_name`` are absent).", examples={"cpu": {"value": "CPU"}}),
        "page": query("page", {**whole, "default": 1}, "1-based page number; a page past the end is empty."),
        "per-page": query("per-page", {**whole, "default": 50}, per_page),
        "per_page": query("per_page", {**whole, "default": 50}, per_page),
        "kind": query("kind", {"type": "string", "enum": list(KINDS)}, "Only events of this kind."),
        "event-source": query("source", {"type": "string", "minLength": 1, "maxLength": 1000},
                              "Only events of this source, exactly as stored (``camera 0``, a video's file name).",
                              examples={"camera": {"value": "camera 0"}, "file": {"value": "store-aisle.mp4"}}),
        "since": query("since", when, f"Only events at or after this instant ({zone}); not later than ``until``.",
                       examples={"instant": {"value": "2025-11-25T06:01:00Z"}, "day": {"value": "2025-11-25"}}),
        "until": query("until", when, f"Only events before this instant ({zone}).",
                       examples={"instant": {"value": "2025-11-25T07:00:10+01:00"}}),
        "zone": query("zone", {"type": "string", "minLength": 1, "maxLength": 64},
                      "Only the events of this zone or line (``zone_enter``, ``zone_exit``, ``line_cross``).",
                      examples={"door": {"value": "door"}}),
    }


def _responses() -> dict:
    return {
        "BadRequest": _error_schema(
            "A parameter the server cannot use (the error says which and why; for ``source`` and ``device-name`` "
            "``valid`` lists the accepted values), or a ``Host`` header that names neither this server's address, "
            "``localhost``, its bound host nor a name given with ``--allowed-host`` (DNS-rebinding defence).", 400),
        "NotFound": _error_schema("Nothing at this URL.", 404),
        "MethodNotAllowed": {**_error_schema("A method the URL does not answer (every URL answers GET, HEAD and "
                                             "OPTIONS only); ``Allow`` lists those.", 405),
                             "headers": {"Allow": {"schema": {"type": "string"}, "required": True},
                                         "Cache-Control": _ref("headers", "NoCache")}},
        "StreamUnavailable": _error_schema(
            "The stream cannot start (the camera does not open, the demo video cannot be played, the device fails, "
            "too many viewers, the server is shutting down) or has no frame yet: try again or choose another "
            "source or device.", 503, required=("source", "device")),
        "InternalError": _error_schema("A bug: the server could not answer (the traceback is in its log).", 500),
    }


def _answers(responses: dict) -> dict:
    """``responses`` (status -> response) and those every operation has: a 400 (a bad ``Host`` is one everywhere)
    and a 500 (an uncaught exception)."""
    out = {"400": _ref("responses", "BadRequest"), "500": _ref("responses", "InternalError"), **responses}
    return dict(sorted(out.items()))


def _content(media_type: str, schema: dict = None) -> dict:
    return {media_type: {"schema": schema} if schema is not None else {}}


def _binary(media_type: str) -> dict:
    return {"type": "string", "contentMediaType": media_type}


def _paths() -> dict:
    choice = [_ref("parameters", name) for name in ("source", "device-name", "device_name", "device")]
    no_cache = {"Cache-Control": _ref("headers", "NoCache")}
    unavailable = _ref("responses", "StreamUnavailable")
    conflict = _error_schema("A camera that another viewer watches on another device: watch it on that one.", 409,
                             required=("source", "device"))
    mjpeg = "multipart/x-mixed-replace"
    any_file = _content("*/*", {"type": "string"})

    def json_ok(description: str, schema: str) -> dict:
        return {"description": description, "headers": no_cache,
                "content": _content("application/json", _ref("schemas", schema))}

    return {
        "/": {"get": {
            "operationId": "page", "tags": ["page"], "summary": "The live view (HTML)",
            "description": "The page with the live MJPEG view, the source and device choice and the numbers. "
                           "``source`` and ``device-name`` preselect what it shows; a value the server does not have "
                           "is a 400 page that says so (and starts from the defaults).",
            "parameters": choice,
            "responses": _answers({"200": {"description": "The page.",
                                           "content": _content("text/html", {"type": "string"})},
                                   "400": {"description": "The page, saying which parameter it does not know.",
                                           "content": _content("text/html", {"type": "string"})}}),
        }},
        "/video_feed": {
            "get": {
                "operationId": "video_feed", "tags": ["streams"], "summary": "The annotated stream (MJPEG)",
                "description": "An endless ``multipart/x-mixed-replace; boundary=frame`` body, one ``image/jpeg`` "
                               "part per frame (headers ``Content-Type``, ``Content-Length`` and "
                               "``X-Frame-Sequence``: the frame's number, so that a client sees what it skipped). "
                               "The first viewer starts the stream; it stops ``STREAM_GRACE`` s after the last one "
                               "leaves. A slow viewer skips frames; one that stops reading loses its slot. Every "
                               "viewer holds a server thread (at most ``MAX_VIEWERS``).",
                "parameters": choice,
                "responses": _answers({
                    "200": {"description": "The stream, until the client leaves or the stream ends.",
                            "headers": {**no_cache, "X-Accel-Buffering": {"schema": {"const": "no"}}},
                            "content": _content(mjpeg, _binary(mjpeg))},
                    "409": conflict, "503": unavailable}),
            },
            "head": {
                "operationId": "video_feed_head", "tags": ["streams"], "summary": "Check a stream choice",
                "description": "What a GET would answer about ``source`` and ``device-name`` (200 or the 400), "
                               "without a body and without starting a stream.",
                "parameters": choice,
                "responses": _answers({"200": {"description": "The choice is valid (no body).", "headers": no_cache,
                                               "content": _content(mjpeg)}}),
            },
        },
        "/snapshot.jpg": {"get": {
            "operationId": "snapshot", "tags": ["streams"], "summary": "The current annotated frame (JPEG)",
            "description": "One JPEG of the newest frame: the stream's current frame if someone watches, else the "
                           "next one (the stream is started for it if needed; never a stale frame).",
            "parameters": choice,
            "responses": _answers({"200": {"description": "The frame.", "headers": no_cache,
                                           "content": _content("image/jpeg", _binary("image/jpeg"))},
                                   "409": conflict, "503": unavailable}),
        }},
        "/stats": {"get": {
            "operationId": "stats", "tags": ["streams"], "summary": "One stream's numbers",
            "description": "State, speed and counters of the stream of ``source`` on ``device-name`` (``idle`` when "
                           "it never ran); starts nothing.",
            "parameters": choice,
            "responses": _answers({"200": json_ok("The numbers.", "Stats")}),
        }},
        "/healthz": {"get": {
            "operationId": "healthz", "tags": ["health"], "summary": "The process answers",
            "responses": _answers({"200": json_ok("Alive.", "Health")}),
        }},
        "/readyz": {"get": {
            "operationId": "readyz", "tags": ["health"], "summary": "Every camera is running",
            "description": "200 when every configured camera's stream is running (model compiled, frames coming); "
                           "503 naming each camera that is reconnecting, starting or failed, with its last error and "
                           "how long ago it gave a frame.",
            "responses": _answers({"200": json_ok("Ready.", "Ready"),
                                   "503": _error_schema("Not ready: the cameras that are not running.", 503,
                                                        required=("ready", "cameras"))}),
        }},
        "/sources": {"get": {
            "operationId": "sources", "tags": ["streams"], "summary": "What this server offers",
            "description": "The configured sources (each camera with its state), the devices, the defaults and the "
                           "running streams.",
            "responses": _answers({"200": json_ok("Sources, devices and streams.", "Sources")}),
        }},
        "/detections": {"get": {
            "operationId": "detections", "tags": ["events"], "summary": "Stored enter/exit events, paged",
            "description": "The events of the events database in ascending ``id`` order, filtered by ``kind``, "
                           "``source``, ``since`` (inclusive) and ``until`` (exclusive). The ``Link`` header repeats "
                           "``next`` and ``prev`` and adds ``first`` and ``last``.",
            "parameters": [_ref("parameters", name)
                           for name in ("page", "per-page", "per_page", "kind", "event-source", "since", "until",
                                        "zone")],
            "responses": _answers({
                "200": {"description": "One page of events.",
                        "headers": {"Link": {
                            "required": True,
                            "description": "RFC 8288 links: ``next`` and ``prev`` when there are such pages, "
                                           "``first`` and ``last`` always.",
                            "schema": {"type": "string",
                                       "pattern": '^<[^<>]+>; rel="(next|prev|first|last)"'
                                                  '(, <[^<>]+>; rel="(next|prev|first|last)")*$'}}},
                        "content": _content("application/json", _ref("schemas", "Detections"))},
                "503": _error_schema("No events database: none configured, missing, not initialised or "
                                     "unreadable (the error says how to create it).", 503),
            }),
        }},
        "/detections/{event_id}/snapshot.jpg": {"get": {
            "operationId": "event_snapshot", "tags": ["events"], "summary": "The JPEG stored with one event",
            "description": "The annotated frame at the moment of the event, stored beside the database.",
            "parameters": [{"name": "event_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 0}}],
            "responses": _answers({
                "200": {"description": "The snapshot.", "content": _content("image/jpeg", _binary("image/jpeg"))},
                "404": _error_schema("No such event, or it has no snapshot (none stored, or removed by the "
                                     "retention cap).", 404),
                "503": _error_schema("No events database.", 503),
            }),
        }},
        "/metrics": {"get": {
            "operationId": "metrics", "tags": ["meta"], "summary": "Prometheus metrics (text format)",
            "description": "Per camera: frames, FPS, inference / decode / capture-to-overlay histograms, people in "
                           "view and per zone, dropped frames, reconnects, viewers, JPEG encodes, line crossings; "
                           "events by kind from the database; the MQTT outbox depth. Prometheus' text exposition "
                           "format (prometheus-client).",
            "responses": _answers({"200": {"description": "The metrics.", "headers": no_cache,
                                           "content": _content("text/plain", {"type": "string"})}}),
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi", "tags": ["meta"], "summary": "This description (OpenAPI 3.1)",
            "responses": _answers({"200": {"description": "This document.",
                                           "content": _content("application/json", _ref("schemas", "OpenAPI"))}}),
        }},
        "/static/{filename}": {"get": {
            "operationId": "static", "tags": ["page"], "summary": "The page's scripts and styles",
            "description": "Files of the app's ``static`` folder (``app.js``, ``style.css``), with ``ETag`` and "
                           "``Last-Modified``; conditional and range requests as usual.",
            "parameters": [{"name": "filename", "in": "path", "required": True,
                            "description": "A file in the folder (may contain ``/``).",
                            "schema": {"type": "string", "minLength": 1},
                            "examples": {"script": {"value": "app.js"}, "style": {"value": "style.css"}}}],
            "responses": _answers({
                "200": {"description": "The file.", "content": any_file},
                "206": {"description": "The part of the file a ``Range`` header asked for.", "content": any_file},
                "304": {"description": "Not modified since the ``If-None-Match`` / ``If-Modified-Since`` given."},
                "404": _ref("responses", "NotFound"),
                "416": _error_schema("A ``Range`` the file does not have.", 416)}),
        }},
    }


def build_document() -> dict:
    """The OpenAPI 3.1 description of the web app (a new dict at every call)."""
    from pose_fast import __version__

    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "pose_fast web app",
            "version": __version__,
            "summary": "Live multi-person pose estimation (MJPEG), its numbers and the stored enter/exit events.",
            "description": "Every error, whatever the URL, is JSON ``{\"error\": \"<one line>\", \"status\": "
                           "<code>}`` (``Error``), Flask's own 404 and 405 included; an uncaught exception is a "
                           "500 in that shape. Every request must name this server in ``Host`` (an IP address, "
                           "``localhost``, the bound host or an ``--allowed-host`` name), else a 400. Every URL "
                           "also answers HEAD (the GET's headers; only ``/video_feed`` describes it, because there "
                           "it starts no stream) and OPTIONS; any other method is a 405 (``MethodNotAllowed``).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": "page", "description": "The browser page."},
                 {"name": "streams", "description": "Live streams: one pipeline per (source, device), shared by "
                                                    "every viewer."},
                 {"name": "events", "description": "Enter/exit events from the events database."},
                 {"name": "health", "description": "Liveness and readiness, for a supervisor."},
                 {"name": "meta", "description": "This description."}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(),
            "responses": _responses(),
            "headers": {"NoCache": {"description": "``no-store, no-cache, must-revalidate, max-age=0`` on live "
                                                   "numbers, streams and errors.",
                                    "schema": {"type": "string"}}},
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(build_document())
