"""``GET /healthz`` and ``GET /readyz``: for a supervisor (systemd, Docker, Kubernetes) and for people.

``/healthz``
    200 ``{"status": "ok"}`` while the process answers at all.
``/readyz``
    200 ``{"ready": true, "cameras": {...}}`` when every configured camera is running (its model compiled, frames
    coming); 503 ``{"error", "status", "ready": false, "cameras": {...}}`` naming each camera that is reconnecting,
    starting or failed, with its last error and how long ago it last gave a frame. Each camera's entry is its
    stream's health: ``state``, ``error``, ``last_frame_s``, ``losses``, ``reconnects``.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from .responses import NO_CACHE, json_error, public_errors

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"}), 200, NO_CACHE


@bp.get("/readyz")
def readyz():
    cameras = public_errors(current_app.extensions["pose_fast_streams"].health())
    down = []
    for name, health in cameras.items():
        if health["state"] != "running":
            seen = health["last_frame_s"]
            since = f", last frame {seen:.1f} s ago" if seen is not None else ", no frame yet"
            down.append(f"camera {name} is {health['state']} ({health['error'] or 'no error yet'}{since})")
    if down:
        return json_error("not ready: " + "; ".join(down), 503, ready=False, cameras=cameras)
    return jsonify({"ready": True, "cameras": cameras}), 200, NO_CACHE
