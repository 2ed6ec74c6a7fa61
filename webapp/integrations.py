"""The web app's integrations: the metrics registry, the MQTT publisher and each camera's zones and lines,
wired into every stream's pipeline (:meth:`WebIntegrations.wrap`, called by the stream manager as it builds
one). Settings (``create_app`` config): ``MQTT_URL`` (env ``POSE_FAST_MQTT``), ``MQTT_CA``, and ``ZONES``, the
parsed config file's zones ({camera name or None: (zones, lines)}, :func:`pose_fast.zones.zones_from_config`)."""
from __future__ import annotations

import logging
import threading
from typing import Dict, Optional

log = logging.getLogger(__name__)

__all__ = ["WebIntegrations"]


class WebIntegrations:
    """Metrics for every app; MQTT when ``mqtt_url`` is given (started at once: a refused login or a bad URL
    raises :class:`~pose_fast.integrations.mqtt.MqttError`); zones per camera name."""

    def __init__(self, database: Optional[str], cameras: Dict[str, str], zones=None, mqtt_url: Optional[str] = None,
                 mqtt_ca: Optional[str] = None):
        from pose_fast.integrations.metrics import Metrics

        self.database = database
        self.cameras = dict(cameras)  # camera name -> the events' source name
        self.zones = dict(zones or {})
        self.metrics = Metrics()
        self.publisher = None
        self._lock = threading.Lock()
        if database:
            self.metrics.add_database(database, {src: name for name, src in self.cameras.items()})
        if mqtt_url:
            if not database:
                from pose_fast.integrations.mqtt import MqttError

                raise MqttError("MQTT publishes from the events database: configure one (--db)")
            from pose_fast.events import create_or_migrate
            from pose_fast.integrations.mqtt import MqttPublisher

            create_or_migrate(database)
            self.publisher = MqttPublisher(mqtt_url, database, ca=mqtt_ca, cameras={
                src: (name, [z.name for z in self.zones_of(name)[0]]) for name, src in self.cameras.items()})
            self.publisher.start()
            if not self.publisher.connected.is_set():
                log.warning("the MQTT broker %s is not reachable; retrying in the background (events wait in the "
                            "database and are published when it is back)", self.publisher.url)
            self.metrics.add_mqtt(self.publisher)

    def zones_of(self, camera: str):
        return self.zones.get(camera) or self.zones.get(None) or ([], [])

    def wrap(self, stream, source, tracker, sinks: list, recorder=None):
        """The tracker and sinks of ``stream``'s new pipeline, with its zones, metrics and MQTT people counts."""
        camera = stream.source
        zones, lines = self.zones_of(camera)
        zone_tracker = None
        if zones or lines:
            from pose_fast.zones import ZonedTracker, ZoneOverlay, ZoneTracker

            zone_tracker = ZoneTracker(zones, lines, frame_size=source.size,
                                       on_event=None if recorder is None else recorder.record_zone)
            tracker = ZonedTracker(tracker, zone_tracker)
            sinks.insert(0, ZoneOverlay(zone_tracker))
        sinks.append(self.metrics.frame_sink(camera))
        self.metrics.add_camera(camera, stream.stats, zone_tracker)
        if self.publisher is not None:
            sinks.append(self.publisher.people_sink(camera, zone_tracker, tracker))
        return tracker, sinks

    def close(self) -> None:
        """After the events store's last commit: the publisher sends what the broker takes within 5 s."""
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.close(timeout=5.0)
            if publisher.outbox_depth:
                log.warning("MQTT: %d events not acknowledged by %s; published at the next start",
                            publisher.outbox_depth, publisher.url)
