"""MQTT: the stored events, the people counts and Home Assistant discovery, published with paho-mqtt.

::

    EventStore ──commit──► events table ──► MqttPublisher thread ──► paho (its own network thread) ──► broker
                                  ▲ event_meta['mqtt_published:<host>:<port>/<prefix>']: the last id acknowledged
    pipeline sinks ── people counts (latest value only, never blocks) ──┘

Topics (``prefix`` from the URL, default ``pose_fast``; ``<camera>`` is the camera's name made topic-safe):

- ``<prefix>/<camera>/events``: every stored event, as JSON (the fields of ``/detections``, with its ``id``), QoS 1;
- ``<prefix>/<camera>/people`` and ``<prefix>/<camera>/zones/<zone>/people``: the people in view / in the zone,
  retained, QoS 1, published when they change;
- ``<prefix>/availability``: ``online`` / ``offline`` (retained; ``offline`` is also the last will);
- ``homeassistant/sensor/<node>/<object>/config``: Home Assistant MQTT discovery (retained) for a people-count
  sensor per camera and per zone.

The outbox: events are read from the database (what the writer committed) in id order, above a high-water mark
kept in the database's ``event_meta`` table per broker and prefix, and the mark moves only over ids the broker
has acknowledged (PUBACK) with no gap. Events stored while the broker is down, or before a crash, are published
in order when it is back or at the next start; an event may arrive twice (QoS 1 allows it), none is lost. The
first time a database meets a broker, the mark starts at its newest event (older events are history, not news).

A broker that cannot be reached is retried with backoff (1 s doubling to 30 s) while the events wait in the
database; refused credentials or a bad URL are a :class:`MqttError` (one line).
"""
from __future__ import annotations

import collections
import json
import logging
import re
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit

from ..errors import PoseFastError

__all__ = ["MqttError", "MqttUrl", "parse_mqtt_url", "topic_name", "discovery_configs", "MqttPublisher",
           "PeopleSink", "DISCOVERY_PREFIX"]

log = logging.getLogger("pose_fast.mqtt")

DISCOVERY_PREFIX = "homeassistant"
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


class MqttError(PoseFastError, RuntimeError):
    """The MQTT URL is wrong or the broker refuses us; one line saying what to do."""


def topic_name(name: str) -> str:
    """A camera or zone name as one topic level (and a Home Assistant id): letters, digits, ``_`` and ``-``."""
    return _SAFE.sub("_", str(name)).strip("_").lower() or "camera"


@dataclass(frozen=True)
class MqttUrl:
    """A parsed ``mqtt://[user:pass@]host[:port][/prefix]`` (or ``mqtts://``)."""

    host: str
    port: int
    prefix: str = "pose_fast"
    username: Optional[str] = None
    password: Optional[str] = None
    tls: bool = False

    @property
    def key(self) -> str:
        """Where this broker's high-water mark is kept in ``event_meta`` (no credentials)."""
        return f"mqtt_published:{self.host}:{self.port}/{self.prefix}"

    def __str__(self) -> str:  # never the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}/{self.prefix}"


def parse_mqtt_url(text: str) -> MqttUrl:
    """Parse an MQTT URL; raise :class:`MqttError` (one line) when it is not one."""
    raw = str(text or "").strip()
    usage = "use mqtt://[user:pass@]host[:port][/prefix] or mqtts://..."
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise MqttError(f"bad MQTT URL {_hide(raw)!r} ({exc}): {usage}") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise MqttError(f"bad MQTT URL {_hide(raw)!r}: the scheme must be mqtt or mqtts; {usage}")
    if not parts.hostname:
        raise MqttError(f"bad MQTT URL {_hide(raw)!r}: no host; {usage}")
    if "?" in raw or "#" in raw:
        raise MqttError(f"bad MQTT URL {_hide(raw)!r}: no ? or # allowed (in the prefix they are MQTT wildcards; "
                        f"in a password write them as %3F, %23); {usage}")
    prefix = parts.path.strip("/") or "pose_fast"
    if any(c in prefix for c in "#+") or "//" in prefix:
        raise MqttError(f"bad MQTT URL {_hide(raw)!r}: the prefix {prefix!r} may not contain #, + or empty levels")
    tls = parts.scheme == "mqtts"
    return MqttUrl(host=parts.hostname, port=port or (8883 if tls else 1883), prefix=prefix,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None, tls=tls)


def _hide(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


# -- Home Assistant discovery ---------------------------------------------------------------------------------------
def discovery_configs(url: MqttUrl, cameras: Mapping[str, Sequence[str]],
                      discovery_prefix: str = DISCOVERY_PREFIX) -> List[Tuple[str, dict]]:
    """``[(topic, payload), ...]``: a people-count sensor per camera and per zone of ``cameras`` ({camera name:
    [zone names]}), as Home Assistant's MQTT discovery expects them (retained)."""
    from .. import __version__

    base = topic_name(url.prefix.replace("/", "_"))
    out = []
    for camera, zones in cameras.items():
        cam = topic_name(camera)
        node = f"pose_fast_{cam}" if base == "pose_fast" else f"pose_fast_{base}_{cam}"
        device = {"identifiers": [node], "name": f"pose_fast {camera}", "manufacturer": "pose_fast",
                  "model": "camera people monitor", "sw_version": __version__}
        common = {"availability_topic": f"{url.prefix}/availability", "payload_available": "online",
                  "payload_not_available": "offline", "unit_of_measurement": "people", "state_class": "measurement",
                  "icon": "mdi:account-multiple", "device": device}
        out.append((f"{discovery_prefix}/sensor/{node}/people/config",
                    {"name": "People", "unique_id": f"{node}_people", "state_topic": f"{url.prefix}/{cam}/people",
                     **common}))
        for zone in zones:
            z = topic_name(zone)
            out.append((f"{discovery_prefix}/sensor/{node}/zone_{z}_people/config",
                        {"name": f"People in {zone}", "unique_id": f"{node}_zone_{z}_people",
                         "state_topic": f"{url.prefix}/{cam}/zones/{z}/people", **common}))
    return out


# -- the publisher --------------------------------------------------------------------------------------------------
def _make_client(client_id: str):
    import paho.mqtt.client as mqtt

    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    return mqtt.Client(client_id=client_id, clean_session=True)  # paho-mqtt 1.6


def _code(rc) -> int:
    """A paho reason code (2.x ReasonCode, 1.x int) as the MQTT 3.1.1 CONNACK number."""
    value = getattr(rc, "value", rc)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 0
    return {0x86: 4, 0x87: 5, 0x85: 2, 0x84: 1, 0x88: 3}.get(value, value)


_REFUSED = {1: "it does not speak MQTT 3.1.1", 2: "it rejected the client id", 3: "it is unavailable",
            4: "bad user name or password", 5: "not authorised"}


class MqttPublisher:
    """Publishes a database's events (an outbox), people counts and discovery to one broker.

    Parameters
    ----------
    url : str or MqttUrl
    database : path
        The events database (created by the :class:`~pose_fast.events.EventStore` before this starts).
    cameras : mapping
        ``{source: (camera name, [zone names])}``: ``source`` as stored in the events' ``source`` column. Sources
        not listed publish under their own name made topic-safe.
    ca : path, optional
        CA certificate file for ``mqtts://`` (default: the system's).
    window : int
        Events published and not yet acknowledged at most (the rest wait in the database).
    poll : float
        Seconds between looks at the database for new events.
    """

    def __init__(self, url, database, cameras: Optional[Mapping[str, Tuple[str, Sequence[str]]]] = None,
                 ca=None, window: int = 2000, poll: float = 0.1, client_id: Optional[str] = None,
                 connect_timeout: float = 3.0):
        self.url = url if isinstance(url, MqttUrl) else parse_mqtt_url(url)
        self.database = Path(database)
        self.cameras = {src: (name, list(zones)) for src, (name, zones) in (cameras or {}).items()}
        self.ca = ca
        self.window = int(window)
        self.poll = float(poll)
        self.connect_timeout = float(connect_timeout)
        self.client_id = client_id or f"pose_fast-{topic_name(self.url.prefix)}-{id(self) & 0xffffff:06x}"
        self.published = 0  # events acknowledged by the broker (this run)
        self.sent = 0  # events handed to paho (this run; a resend after a reconnect is paho's)
        self.connected = threading.Event()
        self.error: Optional[str] = None  # the broker's refusal, once it happened
        self.high_water = 0
        self._max_id = 0
        self._max_at = 0.0
        self._people: Dict[str, int] = {}
        self._people_dirty: Dict[str, int] = {}
        self._people_lock = threading.Lock()
        self._acks: collections.deque = collections.deque()  # mids acknowledged (appended by paho's thread)
        self._pending: collections.deque = collections.deque()  # (event id, mid) in publish order
        self._event_mids: Dict[int, int] = {}
        self._acked = set()
        self._next_id = 0  # the last event id handed to paho
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._draining_until = 0.0
        self._thread: Optional[threading.Thread] = None
        self._client = None
        self._conn = None
        self._saved_mark = 0
        self._announce = threading.Event()
        self._connected_once = threading.Event()
        self._refused = threading.Event()
        self._closing = False

    # -- life cycle ----------------------------------------------------------------------------------------------
    def start(self) -> MqttPublisher:
        """Connect (in the background) and start publishing. Raises :class:`MqttError` when the broker refuses
        the credentials; a broker that cannot be reached within ``connect_timeout`` leaves :attr:`connected`
        unset (tell the user) and is retried with backoff."""
        self._open_db()
        client = self._client = _make_client(self.client_id)
        if self.url.username is not None:
            client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            try:
                client.tls_set(ca_certs=str(self.ca) if self.ca else None, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise MqttError(f"cannot use the CA file {self.ca} for {self.url}: {exc}") from None
            self._check_tls()
        client.will_set(f"{self.url.prefix}/availability", "offline", qos=1, retain=True)
        client.max_inflight_messages_set(20)  # paho acknowledges fastest with few in flight (17k/s; 5k/s at 1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        try:
            client.connect_async(self.url.host, self.url.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise MqttError(f"cannot connect to the MQTT broker {self.url}: {exc}") from None
        client.loop_start()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.connect_timeout
        while time.monotonic() < deadline and not (self.connected.is_set() or self._refused.is_set()):
            time.sleep(0.02)
        if self._refused.is_set():
            self._shutdown_client()
            self._draining_until = time.monotonic()  # the thread ends at once
            self._wake.set()
            self._thread.join(2)
            self._thread = None
            self._conn.close()
            self._conn = None
            raise MqttError(f"the MQTT broker {self.url} refused the connection: {self.error}; check the user name "
                            f"and password in the URL")
        return self  # not connected yet (self.connected): the caller says so; paho retries with backoff

    def _check_tls(self) -> None:
        """One TLS handshake now, so that a certificate the CA does not vouch for is an error at start (paho would
        only retry, silently); a broker that is down is left to the retries."""
        import socket

        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        try:
            with socket.create_connection((self.url.host, self.url.port), timeout=self.connect_timeout) as raw:
                with context.wrap_socket(raw, server_hostname=self.url.host):
                    pass
        except ssl.SSLCertVerificationError as exc:
            hint = "check --mqtt-ca" if self.ca else "give its CA certificate with --mqtt-ca"
            raise MqttError(f"the MQTT broker {self.url} has a certificate that is not trusted "
                            f"({exc.verify_message}): {hint}") from None
        except ssl.SSLError as exc:
            raise MqttError(f"no TLS connection to the MQTT broker {self.url} ({exc.reason or exc}); is it an "
                            f"mqtts:// port?") from None
        except OSError:
            pass  # down or unreachable: retried with backoff like a plain broker

    def close(self, timeout: float = 5.0) -> None:
        """Publish what the broker accepts within ``timeout`` seconds (every event committed before this call),
        then say ``offline`` and disconnect. Call it after the event store is closed (or flushed)."""
        if self._thread is None:
            return
        self._draining_until = time.monotonic() + timeout
        self._wake.set()
        self._thread.join(timeout + 2)
        self._thread = None
        self._shutdown_client(offline=True)
        if self._conn is not None:
            self._take_acks()  # those that came while saying offline
            self._save_mark(force=True)
            self._conn.close()
            self._conn = None

    def _shutdown_client(self, offline: bool = False) -> None:
        client = self._client
        if client is None:
            return
        self._closing = True
        if offline and self.connected.is_set():
            try:
                info = client.publish(f"{self.url.prefix}/availability", "offline", qos=1, retain=True)
                info.wait_for_publish(1.0)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()
        self._client = None

    def __enter__(self) -> MqttPublisher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the pipeline calls (never blocks) ------------------------------------------------------------------
    def set_people(self, camera: str, count: int, zone: Optional[str] = None) -> None:
        """The people in view of ``camera`` (or in its ``zone``) now; published retained when it changed."""
        topic = (f"{self.url.prefix}/{topic_name(camera)}/people" if zone is None
                 else f"{self.url.prefix}/{topic_name(camera)}/zones/{topic_name(zone)}/people")
        with self._people_lock:
            if self._people.get(topic) == count:
                return
            self._people[topic] = count
            self._people_dirty[topic] = count
        self._wake.set()

    def people_sink(self, camera: str, zone_tracker=None, tracker=None) -> PeopleSink:
        """A pipeline sink that reports ``camera``'s people count (and its zones') to this publisher: the
        ``tracker``'s ``people_count`` when given (steady: a missed frame does not count), else the frame's."""
        return PeopleSink(self, camera, zone_tracker, tracker)

    def notify(self) -> None:
        """New events were committed: look now rather than at the next poll."""
        self._wake.set()

    @property
    def outbox_depth(self) -> int:
        """Events stored and not yet acknowledged by the broker (as of the last look at the database)."""
        return max(0, self._max_id - self.high_water)

    # -- paho's network thread -------------------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        code = _code(rc)
        if code == 0:
            self.error = None
            self.connected.set()
            self._connected_once.set()
            self._announce.set()
            self._wake.set()
            log.info("connected to the MQTT broker %s", self.url)
        else:
            self.error = _REFUSED.get(code, f"refused (code {code})")
            if code in (4, 5):
                self._refused.set()
            if self._connected_once.is_set() or not self._refused.is_set():
                log.error("the MQTT broker %s refused the connection: %s", self.url, self.error)

    def _on_disconnect(self, client, userdata, *args):
        if self.connected.is_set() and not self._closing:
            log.warning("lost the MQTT broker %s; reconnecting with backoff (events wait in the database)", self.url)
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, *args):
        acks = self._acks
        acks.append(mid)
        if len(acks) >= 256 or self._draining_until:  # else the next poll takes them: a wake per ack is costly
            self._wake.set()

    # -- the publisher thread ----------------------------------------------------------------------------------------
    def _open_db(self):
        import apsw

        try:
            conn = apsw.Connection(str(self.database), flags=apsw.SQLITE_OPEN_READWRITE)
            conn.setbusytimeout(2000)
            row = conn.execute("SELECT value FROM event_meta WHERE key = ?", (self.url.key,)).fetchall()
            newest = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchall()[0][0]
            if row:
                mark = int(row[0][0])
            else:  # first meeting of this database and this broker: what is stored already is history
                mark = int(newest)
                conn.execute("INSERT OR IGNORE INTO event_meta (key, value) VALUES (?, ?)", (self.url.key, mark))
        except apsw.Error as exc:
            raise MqttError(f"cannot read the events database {self.database} for MQTT: {exc}") from None
        self._conn = conn
        self.high_water = self._saved_mark = self._next_id = mark
        self._max_id = int(newest)

    def _run(self):
        while True:
            draining = self._draining_until > 0
            try:
                self._step(draining)
            except Exception as exc:  # noqa: BLE001 - the publisher must not die silently
                log.error("MQTT publisher: %s", exc)
                time.sleep(1.0)
            if draining:
                if (self.high_water >= self._max_id and not self._people_dirty) or \
                        time.monotonic() >= self._draining_until:
                    return  # what is left (outbox_depth) goes at the next start: the caller says so
                self._wake.wait(0.01)
            else:
                self._wake.wait(self.poll)
            self._wake.clear()

    def _step(self, draining: bool):
        client = self._client
        if client is None:
            return
        self._take_acks()
        if self.connected.is_set():
            if self._announce.is_set():
                self._announce.clear()
                self._publish_announcements(client)
            self._publish_people(client)
        handed = 0
        if len(self._pending) <= self.window // 2:  # refill in batches: one query per half window
            handed = self._publish_events(client)
        now = time.monotonic()
        if handed or draining or now - self._max_at >= 0.5:  # the newest id, for outbox_depth
            newest = self._conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchall()[0][0]
            self._max_id = max(int(newest), self._next_id)
            self._max_at = now
        self._save_mark(force=draining)

    def _take_acks(self):
        acks = self._acks
        mids = self._event_mids
        while acks:
            mid = acks.popleft()
            if mid in mids:
                self._acked.add(mid)
        pending = self._pending
        while pending and pending[0][1] in self._acked:
            event_id, mid = pending.popleft()
            self._acked.discard(mid)
            mids.pop(mid, None)
            self.high_water = event_id
            self.published += 1

    def _publish_announcements(self, client):
        client.publish(f"{self.url.prefix}/availability", "online", qos=1, retain=True)
        cameras = {}
        for name, zones in self.cameras.values():
            cameras.setdefault(name, [])
            cameras[name].extend(z for z in zones if z not in cameras[name])
        for topic, payload in discovery_configs(self.url, cameras):
            client.publish(topic, json.dumps(payload), qos=1, retain=True)
        with self._people_lock:  # a new session: the retained counts again (the broker may have restarted empty)
            self._people_dirty.update(self._people)

    def _publish_people(self, client):
        with self._people_lock:
            dirty, self._people_dirty = self._people_dirty, {}
        for topic, count in dirty.items():
            client.publish(topic, str(int(count)), qos=1, retain=True)

    def _publish_events(self, client) -> int:
        """Hand the next stored events to paho (as many as the window has room for); how many."""
        room = self.window - len(self._pending)
        cur = self._conn.execute("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (self._next_id, room))
        names = None
        prefix = self.url.prefix
        topics: Dict[str, str] = {}
        handed = 0
        for row in cur:
            if names is None:
                names = [d[0] for d in cur.getdescription()]
            event = dict(zip(names, row))
            source = event.get("source", "")
            topic = topics.get(source)
            if topic is None:
                camera = self.cameras.get(source, (source, ()))[0]
                topic = topics[source] = f"{prefix}/{topic_name(camera)}/events"
            info = client.publish(topic, json.dumps(event, separators=(",", ":")), qos=1)
            self._pending.append((event["id"], info.mid))
            self._event_mids[info.mid] = event["id"]
            self._next_id = event["id"]
            self.sent += 1
            handed += 1
        return handed

    def _save_mark(self, force: bool = False):
        if self.high_water == self._saved_mark or self._conn is None:
            return
        now = time.monotonic()
        if not force and now - getattr(self, "_saved_at", 0.0) < 0.25:
            return
        import apsw

        try:
            self._conn.execute("INSERT INTO event_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                               "value = max(value, excluded.value)", (self.url.key, self.high_water))
        except apsw.BusyError:
            return  # the writer holds the lock: next time
        self._saved_mark = self.high_water
        self._saved_at = now


class PeopleSink:
    """A pipeline sink: the people count of one camera (and of its zones) to an :class:`MqttPublisher`. Cheap:
    it compares with the last value and hands on only changes."""

    def __init__(self, publisher: MqttPublisher, camera: str, zone_tracker=None, tracker=None):
        self.publisher = publisher
        self.camera = camera
        self.zone_tracker = zone_tracker
        self.tracker = tracker
        self._last = -1
        self._zones: Dict[str, int] = {}

    def write(self, result) -> None:
        people = result.people if self.tracker is None else self.tracker.people_count
        if people != self._last:
            self._last = people
            self.publisher.set_people(self.camera, people)
        zt = self.zone_tracker
        if zt is not None:
            last = self._zones
            for name, count in zt.zone_counts.items():
                if last.get(name) != count:
                    last[name] = count
                    self.publisher.set_people(self.camera, count, zone=name)

    def close(self) -> None:
        pass

