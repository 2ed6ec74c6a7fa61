"""``GET /detections``: the stored enter/exit events as paginated JSON (a Flask blueprint, usable by itself).

Query parameters
----------------
``page``
    1-based page number (default 1). A page past the end is a 200 with empty ``results``.
``per-page`` (or ``per_page``)
    Events per page, default 50; values above 100 are clamped to 100.
``kind``
    ``enter``, ``exit``, ``zone_enter``, ``zone_exit`` or ``line_cross``.
``source``
    Exact source name (as stored by the demo, e.g. ``camera 0`` or a file name).
``since``, ``until``
    ISO-8601 date or date-time (``Z``, an offset, or none meaning UTC); ``since`` is inclusive, ``until`` exclusive.
``zone``
    A zone's or line's name: only its ``zone_enter``/``zone_exit``/``line_cross`` events (:mod:`pose_fast.zones`).

``page``/``per-page`` that are not whole numbers, are zero, negative or larger than 2**31 - 1, an unknown ``kind``,
a bad date or ``since`` after ``until`` get a 400 with ``{"error": "...", "status": 400}``. A missing or
uninitialised database gets a 503 with the same shape, saying how to create it.

Response: ``{"results": [{"id", "kind", "person_id", "timestamp", "source", "frame_index", "people_count",
"device", "run_id", "track_id", "reason", "snapshot", "zone", "direction", "dwell_s"}, ...], "pagination": {"page",
"per_page", "count", "pages", "next", "prev"}}`` in ascending ``id`` order; ``next``/``prev`` are absolute URLs or
null, repeated in a ``Link`` header together with ``first`` and ``last``. ``person_id`` is unique in the database
(``track_id`` is the tracker's id within the run ``run_id``); ``snapshot`` is the URL of the event's JPEG
(``GET /detections/<id>/snapshot.jpg``), or null when none was stored or it was removed to keep within the cap.

The database path is ``current_app.config["DATABASE"]``; each request opens its own read-only connection, so the
API never blocks the event writer.
"""
from __future__ import annotations

import re
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, jsonify, request, send_file, url_for

from pose_fast.errors import EventStoreError
from pose_fast.events import KINDS, SnapshotFolder, read_event, read_events
from pose_fast.timestamps import parse_iso_utc

from .responses import json_error, register_error_handlers

__all__ = ["bp", "create_detections_app", "DEFAULT_PER_PAGE", "MAX_PER_PAGE", "MAX_PARAM"]

bp = Blueprint("detections", __name__)

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100
MAX_PARAM = 2**31 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")


class _BadRequest(Exception):
    pass


def _whole(name: str, raw: str) -> int:
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise _BadRequest(f"{name} must be a whole number from 1 to {MAX_PARAM}, got {raw!r}")
    value = int(text)
    if value < 1:
        raise _BadRequest(f"{name} must be at least 1, got {raw!r}")
    if value > MAX_PARAM:
        raise _BadRequest(f"{name} must be at most {MAX_PARAM}, got {raw!r}")
    return value


def _parse_args(args):
    page = _whole("page", args["page"]) if "page" in args else 1
    dashed, underscored = args.get("per-page"), args.get("per_page")
    if dashed is not None and underscored is not None and dashed.strip() != underscored.strip():
        raise _BadRequest(f"per-page and per_page disagree ({dashed!r} vs {underscored!r}); give one of them")
    raw = dashed if dashed is not None else underscored
    name = "per-page" if dashed is not None else "per_page"
    per_page = min(_whole(name, raw), MAX_PER_PAGE) if raw is not None else DEFAULT_PER_PAGE
    filters = {}
    kind = args.get("kind")
    if kind is not None:
        if kind not in KINDS:
            raise _BadRequest(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        filters["kind"] = kind
    zone = args.get("zone")
    if zone is not None:
        if not zone or len(zone) > 64:
            raise _BadRequest("zone must be a zone or line name of 1 to 64 characters")
        filters["zone"] = zone
    source = args.get("source")
    if source is not None:
        if not source or len(source) > 1000:
            raise _BadRequest("source must be a non-empty name of at most 1000 characters")
        filters["source"] = source
    for name in ("since", "until"):
        raw_time = args.get(name)
        if raw_time is not None:
            try:
                filters[name] = parse_iso_utc(raw_time)
            except ValueError as exc:
                raise _BadRequest(f"{name}: {exc}") from None
    if "since" in filters and "until" in filters and filters["since"] > filters["until"]:
        raise _BadRequest(f"since ({args['since']}) must not be later than until ({args['until']})")
    return page, per_page, filters


def _link(page: int, per_page: int, args) -> str:
    params = [(k, args[k]) for k in ("kind", "source", "zone", "since", "until") if k in args]
    params += [("page", page), ("per-page", per_page)]
    return f"{request.base_url}?{urlencode(params)}"


@bp.get("/detections")
def list_detections():
    """Paginated enter/exit events; see the module docstring for parameters and the response."""
    try:
        page, per_page, filters = _parse_args(request.args)
    except _BadRequest as exc:
        return json_error(str(exc), 400)
    database = current_app.config.get("DATABASE")
    if not database:
        return json_error("the server has no events database configured (app.config['DATABASE']); start it with --db",
                      503)
    try:
        results, count = read_events(database, offset=(page - 1) * per_page, limit=per_page, **filters)
    except EventStoreError as exc:
        return json_error(str(exc), 503)
    snapshots = SnapshotFolder(database)
    for row in results:
        row["snapshot"] = _snapshot_url(snapshots, row)
    pages = -(-count // per_page)
    nxt = _link(page + 1, per_page, request.args) if page < pages else None
    prev_page = min(page - 1, pages)
    prev = _link(prev_page, per_page, request.args) if prev_page >= 1 else None
    body = {
        "results": results,
        "pagination": {"page": page, "per_page": per_page, "count": count, "pages": pages, "next": nxt,
                       "prev": prev},
    }
    response = jsonify(body)
    links = []
    if nxt:
        links.append(f'<{nxt}>; rel="next"')
    if prev:
        links.append(f'<{prev}>; rel="prev"')
    links.append(f'<{_link(1, per_page, request.args)}>; rel="first"')
    links.append(f'<{_link(max(pages, 1), per_page, request.args)}>; rel="last"')
    response.headers["Link"] = ", ".join(links)
    return response


def _snapshot_url(snapshots: SnapshotFolder, row: dict):
    if snapshots.path(row["snapshot"]) is None:
        return None
    return url_for("detections.event_snapshot", event_id=row["id"])


@bp.get("/detections/<int:event_id>/snapshot.jpg")
def event_snapshot(event_id: int):
    """The JPEG stored with event ``event_id`` (the annotated frame at that moment); 404 JSON when none."""
    database = current_app.config.get("DATABASE")
    if not database:
        return json_error("the server has no events database configured; start it with --db", 503)
    try:
        row = read_event(database, event_id) if event_id <= MAX_PARAM else None
    except EventStoreError as exc:
        return json_error(str(exc), 503)
    if row is None:
        return json_error(f"there is no event {event_id}", 404)
    path = SnapshotFolder(database).path(row["snapshot"])
    if path is None:
        why = "none was stored" if not row["snapshot"] else "it was removed to keep within the snapshot cap"
        return json_error(f"event {event_id} has no snapshot: {why}", 404)
    response = send_file(path, mimetype="image/jpeg", max_age=86400)
    return response


def create_detections_app(database) -> Flask:
    """A Flask app serving only ``/detections`` over ``database`` (for tests and for running the API alone)."""
    app = Flask(__name__)
    app.config["DATABASE"] = str(database)
    register_error_handlers(app)
    app.register_blueprint(bp)
    return app
