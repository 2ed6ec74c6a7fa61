"""``GET /metrics``: the server's Prometheus metrics in the text format (a Flask blueprint). The registry is
``app.extensions["pose_fast_metrics"]`` (:class:`pose_fast.integrations.metrics.Metrics`, one per app); see that
module for the metrics themselves."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from .responses import NO_CACHE, json_error

__all__ = ["bp"]

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Every camera's frames, FPS, latency histograms, people, drops, events by kind, viewers, encodes, and the
    MQTT outbox depth."""
    registry = current_app.extensions.get("pose_fast_metrics")
    if registry is None:
        return json_error("this server collects no metrics", 404)
    from pose_fast.integrations.metrics import CONTENT_TYPE

    return Response(registry.generate(), content_type=CONTENT_TYPE, headers=NO_CACHE)
