"""MQTT with a real broker (Debian's mosquitto, started here on a free port): the events in the database arrive
exactly as stored, in order, also across a broker restart and a kill -9 of the demo; Home Assistant discovery;
the one-line errors. Skipped only when mosquitto is not installed (``.ci/test-setup.sh`` installs it)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import apsw
import pytest
from support import MOSQUITTO, Mosquitto, free_port, wait_for

from pose_fast.integrations.mqtt import MqttError, MqttPublisher, discovery_configs, parse_mqtt_url, topic_name

needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (.ci/test-setup.sh "
                                                            "installs Debian's mosquitto)")


class Subscriber:
    """A paho client subscribed to ``#`` that keeps every message; ``clean=False`` keeps its session (and the
    messages queued for it) across its reconnections and, with a persistent broker, across broker restarts."""

    def __init__(self, port: int, client_id: str = "test-subscriber", clean: bool = True):
        import paho.mqtt.client as mqtt

        self.messages = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        if hasattr(mqtt, "CallbackAPIVersion"):
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        else:  # paho-mqtt 1.6
            self.client = mqtt.Client(client_id=client_id, clean_session=clean)
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def events(self, prefix: str = "test"):
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.startswith(prefix + "/") and
                    t.endswith("/events")]

    def topic(self, topic: str):
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def stored_events(db) -> list:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        cur = conn.execute("SELECT * FROM events ORDER BY id")
        out, names = [], None
        for row in cur:
            names = names or [d[0] for d in cur.getdescription()]
            out.append(dict(zip(names, row)))
        return out
    finally:
        conn.close()


def first_occurrences(events) -> list:
    """The received events without QoS 1's duplicates, in the order they first arrived."""
    seen, out = set(), []
    for event in events:
        if event["id"] not in seen:
            seen.add(event["id"])
            out.append(event)
    return out


def demo(args, env_extra=None, **kwargs):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "pose_fast.cli.main", "demo", "--no-show", "--input-height",
                             "128", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


@pytest.fixture
def env(model_dir):
    return {"POSE_FAST_MODEL_DIR": str(model_dir)}


# -- no broker needed --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, host, port, prefix, user, password, tls", [
    ("mqtt://127.0.0.1", "127.0.0.1", 1883, "pose_fast", None, None, False),
    ("mqtt://u:p%40ss@broker:1884/home/cams", "broker", 1884, "home/cams", "u", "p@ss", False),
    ("mqtts://broker/", "broker", 8883, "pose_fast", None, None, True),
])
def test_urls(url, host, port, prefix, user, password, tls):
    parsed = parse_mqtt_url(url)
    assert (parsed.host, parsed.port, parsed.prefix, parsed.username, parsed.password, parsed.tls) == \
        (host, port, prefix, user, password, tls)
    assert "p@ss" not in str(parsed) and "p%40ss" not in str(parsed)


@pytest.mark.parametrize("url, says", [("http://broker", "scheme"), ("mqtt://", "no host"),
                                       ("mqtt://broker:99999", "port"), ("mqtt://b/a/#", "no ? or #"),
                                       ("mqtt://b/a+b", "prefix"),
                                       ("mqtt://user:secret@broker:x", "port")])
def test_bad_urls_are_one_line(url, says):
    with pytest.raises(MqttError) as info:
        parse_mqtt_url(url)
    message = str(info.value)
    assert "\n" not in message and says in message and "secret" not in message


def test_discovery_payloads_have_what_home_assistant_requires():
    configs = discovery_configs(parse_mqtt_url("mqtt://h/home"), {"Front door": ["till", "door way"]})
    assert len(configs) == 3
    ids = set()
    for topic, payload in configs:
        parts = topic.split("/")
        # <discovery_prefix>/<component>/<node_id>/<object_id>/config, ids of [a-zA-Z0-9_-]
        assert parts[0] == "homeassistant" and parts[1] == "sensor" and parts[-1] == "config" and len(parts) == 5
        assert all(topic_name(p) == p.lower() for p in parts[2:4])
        decoded = json.loads(json.dumps(payload))
        assert decoded["state_topic"].startswith("home/front_door/") and decoded["state_topic"].endswith("/people")
        assert decoded["unique_id"] not in ids
        ids.add(decoded["unique_id"])
        assert decoded["device"]["identifiers"] and decoded["device"]["name"]
        assert decoded["availability_topic"] == "home/availability"
    assert {p["state_topic"] for _, p in configs} == {"home/front_door/people", "home/front_door/zones/till/people",
                                                        "home/front_door/zones/door_way/people"}


def test_demo_refuses_a_bad_url_in_one_line(env, video_path, tmp_path):
    proc = demo(["-i", str(video_path("store-aisle")), "--db", str(tmp_path / "e.sqlite3"), "--mqtt",
                 "http://127.0.0.1"], env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().count("\n") == 0 and "mqtt" in err.lower(), err


# -- with the broker -----------------------------------------------------------------------------------------
@needs_broker
def test_every_stored_event_arrives_as_stored_with_discovery(env, video_path, tmp_path):
    db = tmp_path / "events.sqlite3"
    with Mosquitto(tmp_path) as broker:
        sub = Subscriber(broker.port)
        try:
            proc = demo(["-i", str(video_path("people-walking")), "--db", str(db), "--mqtt", broker.url + "/test"],
                        env)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            stored = stored_events(db)
            assert len(stored) >= 2, "the clip shows people coming and going"
            assert wait_for(lambda: len(first_occurrences(sub.events())) >= len(stored), 10)
            assert first_occurrences(sub.events()) == stored  # same fields, same values, same order
            assert sub.topic("test/availability")[-1] == "offline"  # a normal exit says so
        finally:
            sub.close()
        late = Subscriber(broker.port, "late")  # retained: what Home Assistant finds when it connects later
        try:
            assert wait_for(lambda: late.topic("test/people-walking/people"), 5)
            configs = [json.loads(p) for t, p, r in late.messages if t.startswith("homeassistant/") and r]
            assert configs and all(c["state_topic"] == "test/people-walking/people" for c in configs)
            assert all(c["unique_id"] and c["device"]["identifiers"] for c in configs)
            assert late.topic("test/availability") == ["offline"]
        finally:
            late.close()


@needs_broker
def test_events_stored_while_the_broker_is_down_arrive_in_order(env, video_path, tmp_path):
    db = tmp_path / "events.sqlite3"
    broker = Mosquitto(tmp_path, persistence=True).start()
    sub = Subscriber(broker.port, "keeper", clean=False)  # its session survives the broker's restart
    proc = demo(["-i", str(video_path("people-walking")), "--loop", "--limit", "100000", "--db", str(db),
                 "--mqtt", broker.url + "/test"], env)
    try:
        assert wait_for(lambda: len(sub.events()) >= 2, 90), "no event reached the broker"
        broker.stop()
        down_at = len(stored_events(db))
        assert wait_for(lambda: len(stored_events(db)) >= down_at + 4, 90), "no events while the broker was down"
        broker.start()
        assert wait_for(lambda: len(stored_events(db)) >= down_at + 8, 90)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        stored = stored_events(db)
        wait_for(lambda: len(first_occurrences(sub.events())) >= len(stored), 20)
        assert [e["id"] for e in first_occurrences(sub.events())] == [e["id"] for e in stored], err
        assert first_occurrences(sub.events()) == stored
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        broker.stop()


@needs_broker
def test_kill_9_then_restart_publishes_what_was_not_acknowledged(env, video_path, tmp_path):
    db = tmp_path / "events.sqlite3"
    broker = Mosquitto(tmp_path, persistence=True).start()
    url = broker.url + "/test"
    sub = Subscriber(broker.port, "keeper", clean=False)
    proc = demo(["-i", str(video_path("people-walking")), "--loop", "--limit", "100000", "--db", str(db),
                 "--mqtt", url], env)
    try:
        assert wait_for(lambda: len(sub.events()) >= 2, 90)
        broker.stop()  # from now on nothing is acknowledged
        down_at = len(stored_events(db))
        assert wait_for(lambda: len(stored_events(db)) >= down_at + 4, 90)
        proc.kill()  # SIGKILL: no clean exit, no drain
        proc.communicate(timeout=30)
        stored = stored_events(db)
        assert len(first_occurrences(sub.events())) < len(stored)
        broker.start()
        again = demo(["-i", str(video_path("store-aisle")), "--limit", "3", "--db", str(db), "--mqtt", url], env)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert wait_for(lambda: len(first_occurrences(sub.events())) >= len(stored_events(db)), 20)
        assert first_occurrences(sub.events()) == stored_events(db)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        broker.stop()


@needs_broker
def test_broker_down_at_start_is_a_warning_and_the_events_wait(env, video_path, tmp_path):
    db = tmp_path / "events.sqlite3"
    port = free_port()
    proc = demo(["-i", str(video_path("people-walking")), "--db", str(db), "--mqtt", f"mqtt://127.0.0.1:{port}/t"],
                env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "warning" in err and "not reachable" in err
    stored = stored_events(db)
    assert stored
    with Mosquitto(tmp_path, port=port) as broker:
        sub = Subscriber(broker.port)
        try:
            publisher = MqttPublisher(f"mqtt://127.0.0.1:{port}/t", db).start()  # what the next start does
            # (not outbox_depth == 0: it is 0 until the publisher's first look at the database, as in CI once)
            assert wait_for(lambda: len(first_occurrences(sub.events("t"))) >= len(stored), 20)
            assert wait_for(lambda: publisher.outbox_depth == 0, 10)
            publisher.close()
            assert first_occurrences(sub.events("t")) == stored
        finally:
            sub.close()


@needs_broker
def test_refused_credentials_are_one_line(env, video_path, tmp_path):
    with Mosquitto(tmp_path, users={"cam": "right"}) as broker:
        bad = demo(["-i", str(video_path("store-aisle")), "--limit", "2", "--db", str(tmp_path / "e.sqlite3"),
                    "--mqtt", f"mqtt://cam:wrong@127.0.0.1:{broker.port}"], env)
        out, err = bad.communicate(timeout=120)
        assert bad.returncode == 2, err
        assert err.strip().count("\n") == 0 and "refused" in err and "wrong" not in err, err
        good = demo(["-i", str(video_path("store-aisle")), "--limit", "2", "--db", str(tmp_path / "e.sqlite3"),
                     "--mqtt", f"mqtt://cam:right@127.0.0.1:{broker.port}"], env)
        out, err = good.communicate(timeout=120)
        assert good.returncode == 0, err
        assert "refused" not in err


@needs_broker
def test_web_app_announces_its_cameras_and_zones(web_config, tmp_path):
    from support import running_server

    from pose_fast.webapp import ConfigError, create_app
    from pose_fast.zones import parse_line_option, parse_zone_option

    zones = {"demo": ([parse_zone_option("till=0.1,0.1 0.5,0.1 0.5,0.9")], [parse_line_option("sill=0,0.5 1,0.5")])}
    with Mosquitto(tmp_path) as broker:
        sub = Subscriber(broker.port)
        try:
            app = create_app(web_config(MQTT_URL=broker.url + "/shop", ZONES=zones, CAMERA=99))
            with running_server(app):
                assert wait_for(lambda: len([t for t, _, _ in sub.messages if t.startswith("homeassistant/")]) >= 3,
                                10)
                configs = {t: json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/")}
                assert {c["state_topic"] for c in configs.values()} == {  # camera 99: configured, never opens
                    "shop/demo/people", "shop/demo/zones/till/people", "shop/camera/people"}
                assert sub.topic("shop/availability") == ["online"]
            assert wait_for(lambda: sub.topic("shop/availability")[-1:] == ["offline"], 10)  # on close
        finally:
            sub.close()
    with Mosquitto(tmp_path, users={"cam": "right"}) as broker:
        with pytest.raises(ConfigError, match="refused"):
            create_app(web_config(MQTT_URL=f"mqtt://cam:wrong@127.0.0.1:{broker.port}"))


@needs_broker
def test_mqtts_with_the_brokers_ca(env, video_path, tmp_path):
    db = tmp_path / "events.sqlite3"
    with Mosquitto(tmp_path, tls=True) as broker:
        url = f"mqtts://127.0.0.1:{broker.tls_port}/tls"
        untrusted = demo(["-i", str(video_path("store-aisle")), "--limit", "2", "--db", str(db), "--mqtt", url], env)
        out, err = untrusted.communicate(timeout=120)
        assert untrusted.returncode == 2 and "not trusted" in err and "--mqtt-ca" in err, err
        assert err.strip().count("\n") == 0, err
        sub = Subscriber(broker.port)  # the plain listener
        try:
            proc = demo(["-i", str(video_path("people-walking")), "--db", str(db), "--mqtt", url, "--mqtt-ca",
                         broker.ca], env)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            stored = stored_events(db)
            assert stored
            assert wait_for(lambda: len(first_occurrences(sub.events("tls"))) >= len(stored), 10)
            assert first_occurrences(sub.events("tls")) == stored
        finally:
            sub.close()
