"""Prometheus metrics (prometheus-client): one :class:`Metrics` registry per process, fed by a cheap pipeline sink
per camera and read at scrape time from what the pipeline, the events database and the MQTT publisher already
count.

============================================  =========  ===================================================
metric                                        type       labels / source
============================================  =========  ===================================================
``pose_fast_frames_total``                    counter    camera; the sink, per frame
``pose_fast_fps``                             gauge      camera; the pipeline's recent FPS
``pose_fast_people``                          gauge      camera; people in view
``pose_fast_inference_seconds``               histogram  camera; per frame
``pose_fast_decode_seconds``                  histogram  camera; per frame
``pose_fast_capture_to_overlay_seconds``      histogram  camera; per frame (capture done -> overlay drawn)
``pose_fast_frames_dropped_total``            counter    camera, reason (``stale``: newer frame won; ``engine``)
``pose_fast_reconnects_total``                counter    camera (the source's reopenings, when it reports them)
``pose_fast_viewers``                         gauge      camera (web: MJPEG viewers)
``pose_fast_jpeg_encodes_total``              counter    camera (web)
``pose_fast_zone_people``                     gauge      camera, zone
``pose_fast_line_crossings_total``            counter    camera, line, direction (this run)
``pose_fast_events_total``                    counter    camera, kind; the events database's committed totals
``pose_fast_mqtt_outbox_depth``               gauge      broker; events stored, not yet acknowledged
``pose_fast_mqtt_published_total``            counter    broker; events acknowledged this run
============================================  =========  ===================================================

:func:`serve` serves a registry on its own port (``pose-fast demo --metrics-port N``); the web app has ``/metrics``
(:mod:`pose_fast.webapp.metrics`).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

__all__ = ["Metrics", "MetricsSink", "serve", "CONTENT_TYPE"]

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
_SLOW = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12)

try:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST as CONTENT_TYPE
except ImportError:  # pragma: no cover
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """A registry with pose_fast's metrics. :meth:`frame_sink` per camera pipeline; :meth:`add_camera` for its
    numbers read at scrape time; :meth:`add_database`, :meth:`add_mqtt` for the events and the outbox."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("pose_fast_frames", "Frames processed", ["camera"], registry=r)
        self.fps = Gauge("pose_fast_fps", "Frames per second (recent)", ["camera"], registry=r)
        self.people = Gauge("pose_fast_people", "People in view", ["camera"], registry=r)
        self.inference = Histogram("pose_fast_inference_seconds", "Inference time per frame", ["camera"],
                                   buckets=_FAST, registry=r)
        self.decode = Histogram("pose_fast_decode_seconds", "Decoding time per frame", ["camera"], buckets=_FAST,
                                registry=r)
        self.latency = Histogram("pose_fast_capture_to_overlay_seconds", "From the frame captured to the overlay "
                                 "drawn", ["camera"], buckets=_SLOW, registry=r)
        self._lock = threading.Lock()
        self._cameras: Dict[str, Tuple[Callable[[], dict], object]] = {}
        self._databases: Dict[str, Dict[str, str]] = {}
        self._publishers: list = []
        r.register(_Collector(self))

    def frame_sink(self, camera: str) -> MetricsSink:
        """A pipeline sink observing ``camera``'s frames."""
        return MetricsSink(self, camera)

    def add_camera(self, camera: str, stats: Optional[Callable[[], dict]] = None, zone_tracker=None) -> None:
        """Read ``stats()`` (the keys of :meth:`pose_fast.pipeline.Pipeline.stats` or the web stream's: dropped,
        engine_dropped, reconnects, viewers, encodes) and ``zone_tracker``'s counts at each scrape (replaces an
        earlier registration of the same camera)."""
        with self._lock:
            self._cameras[camera] = (stats, zone_tracker)

    def add_database(self, path, cameras: Optional[Dict[str, str]] = None) -> None:
        """Events by kind from the database's committed totals; ``cameras`` maps a stored source to a camera name."""
        with self._lock:
            self._databases[str(path)] = dict(cameras or {})

    def add_mqtt(self, publisher) -> None:
        with self._lock:
            self._publishers.append(publisher)

    def generate(self) -> bytes:
        """The registry in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class MetricsSink:
    """Per frame: the frame counter, FPS and people gauges, and the three latency histograms (children bound once;
    a few lock-protected additions per frame)."""

    def __init__(self, metrics: Metrics, camera: str):
        self._frames = metrics.frames.labels(camera)
        self._fps = metrics.fps.labels(camera)
        self._people = metrics.people.labels(camera)
        self._inference = metrics.inference.labels(camera)
        self._decode = metrics.decode.labels(camera)
        self._latency = metrics.latency.labels(camera)

    def write(self, result) -> None:
        t = result.timings
        self._frames.inc()
        self._fps.set(result.fps)
        self._people.set(result.people)
        self._inference.observe(t["inference"] * 0.001)
        self._decode.observe(t["decode"] * 0.001)
        self._latency.observe(t["latency"] * 0.001)

    def close(self) -> None:
        pass


class _Collector:
    """What is read at scrape time: the cameras' stats, zones, the events' totals, the MQTT outbox."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []  # values only known at scrape time; no duplicate-name check needed

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self.metrics
        with m._lock:
            cameras = dict(m._cameras)
            databases = dict(m._databases)
            publishers = list(m._publishers)
        dropped = CounterMetricFamily("pose_fast_frames_dropped", "Frames dropped", labels=["camera", "reason"])
        reconnects = CounterMetricFamily("pose_fast_reconnects", "Source reopenings", labels=["camera"])
        viewers = GaugeMetricFamily("pose_fast_viewers", "MJPEG viewers", labels=["camera"])
        encodes = CounterMetricFamily("pose_fast_jpeg_encodes", "JPEG encodes", labels=["camera"])
        zone_people = GaugeMetricFamily("pose_fast_zone_people", "People in a zone", labels=["camera", "zone"])
        crossings = CounterMetricFamily("pose_fast_line_crossings", "Line crossings this run",
                                        labels=["camera", "line", "direction"])
        for camera, (stats, zones) in cameras.items():
            s = {}
            if stats is not None:
                try:
                    s = stats() or {}
                except Exception:  # noqa: BLE001 - a stopping stream must not break the scrape
                    s = {}
            dropped.add_metric([camera, "stale"], float(s.get("dropped", 0)))
            dropped.add_metric([camera, "engine"], float(s.get("engine_dropped", 0)))
            reconnects.add_metric([camera], float(s.get("reconnects", 0)))
            viewers.add_metric([camera], float(s.get("viewers", 0)))
            encodes.add_metric([camera], float(s.get("encodes", 0)))
            if zones is not None:
                for name, count in list(zones.zone_counts.items()):
                    zone_people.add_metric([camera, name], float(count))
                for name, counts in list(zones.line_counts.items()):
                    for direction, n in list(counts.items()):
                        crossings.add_metric([camera, name, direction], float(n))
        yield from (dropped, reconnects, viewers, encodes, zone_people, crossings)
        events = CounterMetricFamily("pose_fast_events", "Events stored", labels=["camera", "kind"])
        for path, names in databases.items():
            for kind, source, n in _event_totals(path):
                events.add_metric([names.get(source, source), kind], float(n))
        yield events
        depth = GaugeMetricFamily("pose_fast_mqtt_outbox_depth", "Events stored and not yet acknowledged by the "
                                  "MQTT broker", labels=["broker"])
        published = CounterMetricFamily("pose_fast_mqtt_published", "Events acknowledged by the MQTT broker",
                                        labels=["broker"])
        for publisher in publishers:
            broker = f"{publisher.url.host}:{publisher.url.port}"
            depth.add_metric([broker], float(publisher.outbox_depth))
            published.add_metric([broker], float(publisher.published))
        yield depth
        yield published


def _event_totals(path):
    import apsw

    if not Path(path).is_file():
        return []
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            conn.setbusytimeout(1000)
            return conn.execute("SELECT kind, source, n FROM event_counts").fetchall()
        finally:
            conn.close()
    except apsw.Error:
        return []


def serve(metrics: Metrics, port: int, host: str = "127.0.0.1"):
    """Serve ``metrics`` at ``http://host:port/metrics`` in a daemon thread; returns the server
    (``server.shutdown()`` stops it; ``server.server_port`` is the port, useful with 0)."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class _Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    def app(environ, start_response):
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not found: the metrics are at /metrics", "status": 404}']
        body = metrics.generate()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    server = make_server(host, int(port), app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
