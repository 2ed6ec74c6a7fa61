"""The web app through Flask's test client: configuration, routes, errors, streams on the real model and video."""
from __future__ import annotations

import collections
import threading
import time

import cv2
import numpy as np
import pytest
from support import wait_for

from pose_fast.webapp import ConfigError, create_app, load_config
from pose_fast.webapp.broadcaster import BOUNDARY, MjpegBroadcaster

NO_CAMERA = 99  # an index no machine has: the camera path is the "no camera" one everywhere


@pytest.fixture()
def make_app(web_config):
    apps = []

    def make(**config):
        app = create_app(web_config(**{"STREAM_GRACE": 0.2, **config}))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["pose_fast_streams"].close()


def read_parts(response, count):
    """The first ``count`` JPEGs of a streamed MJPEG response (parsed by the boundary, like a browser)."""
    data = b""
    parts = []
    chunks = iter(response.response)
    while len(parts) < count:
        data += next(chunks)
        while True:
            head = data.find(b"\r\n\r\n")
            if head < 0:
                break
            header = data[:head].decode("latin-1")
            assert header.startswith("--" + BOUNDARY), header
            length = int(header.lower().split("content-length:")[1].split()[0])
            if len(data) < head + 4 + length + 2:
                break
            parts.append(data[head + 4:head + 4 + length])
            data = data[head + 4 + length + 2:]
    return parts


# -- configuration --------------------------------------------------------------------------------------------------
def test_config_from_environment_and_arguments(tmp_path):
    env = {"POSE_FAST_PORT": "6001", "POSE_FAST_DB": str(tmp_path / "e.db"), "POSE_FAST_CAMERA": "2",
           "POSE_FAST_DEVICE": "CPU", "POSE_FAST_DEMO_VIDEO": "none", "POSE_FAST_INPUT_HEIGHT": "128"}
    settings = load_config(None, env)
    assert settings["PORT"] == 6001 and settings["CAMERA"] == 2 and settings["DEVICE"] == "CPU"
    assert settings["DATABASE"] == str(tmp_path / "e.db") and settings["DEMO_VIDEO"] is None
    assert settings["INPUT_HEIGHT"] == 128 and settings["HOST"] == "127.0.0.1"
    assert [(c.name, c.spec) for c in settings["CAMERAS"]] == [("camera", "2")]  # round 1's setting, named camera
    settings = load_config({"PORT": 7000, "CAMERA": None}, env)  # arguments win over the environment
    assert settings["PORT"] == 7000 and settings["CAMERA"] is None and settings["CAMERAS"] == []


def test_named_cameras_from_the_environment_and_arguments():
    from pose_fast.cameras import CameraConfig

    env = {"POSE_FAST_CAMERAS": "door=rtsp://u:p@10.0.0.2/stream?x=1, desk=/dev/video0 ,2", "POSE_FAST_CAMERA": "5"}
    cameras = load_config(None, env)["CAMERAS"]
    assert cameras == [CameraConfig("door", "rtsp://u:p@10.0.0.2/stream?x=1"), CameraConfig("desk", "/dev/video0"),
                       CameraConfig("camera", "2")]
    assert load_config({"CAMERAS": ["0"]}, env)["CAMERAS"] == [CameraConfig("camera", "0")]
    assert load_config({"CAMERAS": "none"}, env)["CAMERAS"] == []
    assert load_config({"CAMERA": 1}, env)["CAMERAS"] == [CameraConfig("camera", "1")]  # given here: wins
    assert load_config({"DEFAULT_SOURCE": "desk"}, env)["DEFAULT_SOURCE"] == "desk"


@pytest.mark.parametrize("config, word", [({"PORT": "http"}, "PORT"), ({"INPUT_HEIGHT": 100}, "multiple of 8"),
                                          ({"CAMERA": "front"}, "CAMERA"), ({"DEFAULT_SOURCE": "/dev/video0"},
                                                                            "one of the cameras or demo"),
                                          ({"CAMERAS": "a=0,a=1"}, "two cameras are named 'a'"),
                                          ({"CAMERAS": "demo=0"}, "the demo video's name"),
                                          ({"CAMERAS": "door=ftp://x/y"}, "unsupported URL scheme 'ftp'"),
                                          ({"CAMERAS": "0,none"}, "give it alone")])
def test_bad_config_is_one_line(config, word):
    with pytest.raises(ConfigError, match=word) as info:
        load_config(config, {})
    assert "\n" not in str(info.value)


def test_default_demo_video_is_the_shared_one_beside_the_project():
    from pose_fast.webapp import DEFAULT_DEMO_VIDEO

    assert DEFAULT_DEMO_VIDEO.is_file()  # the suite runs with shared/ beside the project, as CI does
    assert load_config(None, {})["DEMO_VIDEO"] == str(DEFAULT_DEMO_VIDEO)
    assert load_config({"DEMO_VIDEO": "none"}, {})["DEMO_VIDEO"] is None


def test_camera_can_be_switched_off(make_app):
    app = make_app(CAMERA="none")
    client = app.test_client()
    assert 'data-source="camera"' not in client.get("/").get_data(as_text=True)
    response = client.get("/video_feed?source=camera&device-name=CPU")
    assert response.status_code == 400 and response.get_json()["valid"] == ["demo"]
    assert "camera" not in client.get("/sources").get_json()["sources"]


# -- what the server offers ------------------------------------------------------------------------------------------
def test_sources_report_a_camera_that_does_not_open_and_the_demo(make_app):
    client = make_app(CAMERA=NO_CAMERA).test_client()
    assert wait_for(lambda: client.get("/sources").get_json()["sources"]["camera"]["error"])
    body = client.get("/sources").get_json()
    camera = body["sources"]["camera"]
    assert camera["available"] is False and camera["kind"] == "camera" and camera["state"] == "reconnecting"
    assert "no camera 99" in camera["error"]
    assert body["sources"]["demo"] == {"kind": "demo", "available": True, "label": "store-aisle-detection.mp4",
                                       "error": None, "state": None}
    assert body["devices"][0] == "AUTO" and "CPU" in body["devices"]


def test_page_offers_only_this_machines_devices_and_the_configured_sources(make_app):
    from pose_fast._ov import Core, available_devices

    client = make_app(CAMERAS=["door=99", "desk=98"]).test_client()
    html = client.get("/?device-name=CPU").get_data(as_text=True)
    offered = [part.split('"')[0] for part in html.split('<option value="')[1:]]
    assert offered == ["AUTO"] + [d for d in available_devices(Core()) if d != "AUTO"]
    assert [part.split('"')[0] for part in html.split('data-source="')[1:]] == ["door", "desk", "demo"]
    assert "<option value=\"CPU\" selected>" in html

    no_demo = make_app(DEMO_VIDEO=None, CAMERA=NO_CAMERA).test_client().get("/").get_data(as_text=True)
    assert 'data-source="demo"' not in no_demo and 'data-source="camera"' in no_demo
    assert make_app().test_client().get("/static/app.js").status_code == 200


@pytest.mark.parametrize("query", ["device-name=NOSUCH", "source=/etc/passwd&device-name=CPU"])
def test_the_page_says_what_it_does_not_know_instead_of_falling_back_in_silence(make_app, query):
    response = make_app().test_client().get(f"/?{query}")
    assert response.status_code == 400 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    word = "NOSUCH" if "NOSUCH" in query else "/etc/passwd"
    assert f"unknown {'device-name' if word == 'NOSUCH' else 'source'} &#39;{word}&#39;" in html
    assert 'id="problem"' in html


# -- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["/video_feed", "/snapshot.jpg", "/stats"])
@pytest.mark.parametrize("query, valid", [
    ("source=webcam", ["door", "demo"]),
    ("source=/etc/passwd", ["door", "demo"]),
    ("source=http://example.com/video.mp4", ["door", "demo"]),
    ("source=demo&device-name=TPU", "devices"),
    ("source=demo&device-name=", "devices"),
])
def test_unknown_source_or_device_is_400_listing_valid_values(make_app, route, query, valid):
    app = make_app(CAMERAS=["door=99"], START_CAMERAS=False)
    response = app.test_client().get(f"{route}?{query}")
    assert response.status_code == 400
    body = response.get_json()
    expected = app.extensions["pose_fast_streams"].devices() if valid == "devices" else valid
    assert body["valid"] == expected and body["status"] == 400
    assert all(v in body["error"] for v in expected)
    manager = app.extensions["pose_fast_streams"]
    assert manager.started == 0 and manager.cameras_started == 0  # nothing was opened


def test_demo_is_unknown_when_no_demo_video_is_configured(make_app):
    response = make_app(DEMO_VIDEO=None, CAMERA=NO_CAMERA).test_client().get("/video_feed?source=demo")
    assert response.status_code == 400
    assert response.get_json()["valid"] == ["camera"]


def test_device_names_are_case_insensitive(make_app):
    app = make_app()
    assert app.test_client().get("/stats?source=demo&device-name=cpu").get_json()["device"] == "CPU"


# -- failures are messages, not hangs ------------------------------------------------------------------------------
def test_a_camera_that_does_not_open_is_a_503_with_a_message_and_stats_say_why(make_app):
    """Camera 99 is always on: it is retried in the background, and a viewer gets why it is not running."""
    client = make_app(CAMERA=NO_CAMERA).test_client()
    response = client.get("/video_feed?source=camera&device-name=CPU")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert "camera camera is not running now (no camera 99" in error and "retried" in error and "\n" not in error
    stats = client.get("/stats?source=camera&device-name=CPU").get_json()
    assert stats["state"] == "reconnecting" and "no camera 99" in stats["error"] and stats["viewers"] == 0
    assert stats["always_on"] is True
    assert client.get("/snapshot.jpg?source=camera&device-name=CPU").status_code == 503



def test_a_device_that_cannot_load_the_model_is_a_visible_error(make_app, tmp_path):
    broken = tmp_path / "human-pose-estimation-0001.xml"
    broken.write_text("<net name='broken'>")
    (tmp_path / "human-pose-estimation-0001.bin").write_bytes(b"")
    client = make_app(MODEL=str(broken)).test_client()
    response = client.get("/video_feed?source=demo&device-name=CPU")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert "\n" not in error and "model" in error
    assert client.get("/stats?source=demo&device-name=CPU").get_json()["error"] == error


# -- streams on the real model ---------------------------------------------------------------------------------------
def test_video_feed_streams_annotated_jpegs_and_stops_after_the_last_viewer(make_app, count_encodes):
    app = make_app()
    manager = app.extensions["pose_fast_streams"]
    encoded = count_encodes(lambda: manager.stream("demo", "CPU").broadcaster)
    client = app.test_client()
    response = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "multipart/x-mixed-replace"
    assert "no-store" in response.headers["Cache-Control"]
    parts = read_parts(response, 3)
    frames = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert all(f is not None and f.shape == (270, 480, 3) for f in frames)
    assert not np.array_equal(frames[0], frames[2])  # the video moves
    stats = client.get("/stats?source=demo&device-name=CPU").get_json()
    assert stats["state"] == "running" and stats["viewers"] == 1 and stats["error"] is None
    assert stats["frame_size"] == [480, 270] and stats["inference_ms"] > 0
    stream = manager.stream("demo", "CPU")
    response.close()  # the browser goes away
    assert stream.viewers == 0  # unsubscribed at once
    left_at = stream.broadcaster.frames
    assert wait_for(lambda: stream.state == "stopped")
    assert manager.running() == []
    # watched from the first frame: each frame encoded exactly once until the viewer left, none after
    last = max(encoded.calls)
    assert encoded.counts == collections.Counter(range(1, last + 1)) and 3 <= last <= left_at
    assert len(encoded.calls) == stream.broadcaster.encodes


@pytest.mark.slow
def test_stats_count_the_one_signer_as_one_person(make_app, video_path):
    """asl-walk.mkv at the default input height: /stats says 1 person on every frame it is asked about (the
    decoder's fragments, as on bf16 hosts, are not people; see tests/test_people.py)."""
    app = make_app(DEMO_VIDEO=str(video_path("asl-walk")), INPUT_HEIGHT=256)
    client = app.test_client()
    response = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    read_parts(response, 1)
    seen = {}  # frame number -> people
    deadline = time.monotonic() + 60
    while len(seen) < 40 and time.monotonic() < deadline:
        stats = client.get("/stats?source=demo&device-name=CPU").get_json()
        assert stats["state"] == "running", stats
        seen[stats["frames"]] = stats["people"]
        time.sleep(0.02)
    response.close()
    assert len(seen) >= 40, seen  # forty different frames looked at
    assert set(seen.values()) == {1}, seen


def test_an_unread_response_still_unsubscribes_when_closed(make_app):
    app = make_app(STREAM_GRACE=60)
    manager = app.extensions["pose_fast_streams"]
    response = app.test_client().get("/video_feed?source=demo&device-name=CPU", buffered=False)
    stream = manager.stream("demo", "CPU")
    assert stream.viewers == 1
    response.close()  # never iterated: the generator never started
    assert stream.viewers == 0


def test_viewers_share_one_pipeline_and_a_new_viewer_within_grace_keeps_it(make_app):
    app = make_app(STREAM_GRACE=30)
    manager = app.extensions["pose_fast_streams"]
    client = app.test_client()
    first = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    second = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    read_parts(first, 1)
    read_parts(second, 1)
    assert manager.started == 1 and manager.stream("demo", "CPU").viewers == 2
    stream = manager.stream("demo", "CPU")
    first.close()
    second.close()
    third = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    read_parts(third, 1)
    assert manager.started == 1 and manager.stream("demo", "CPU") is stream and stream.state == "running"
    third.close()


def test_viewers_beyond_the_limit_get_a_503_and_the_first_keeps_watching(make_app):
    app = make_app(MAX_VIEWERS=1)
    client = app.test_client()
    first = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    read_parts(first, 1)
    second = client.get("/video_feed?source=demo&device-name=CPU")
    assert second.status_code == 503 and "too many viewers (1)" in second.get_json()["error"]
    stats = client.get("/stats?source=demo&device-name=CPU").get_json()
    assert stats["watching"] == stats["max_viewers"] == 1  # what the page tells the user
    assert len(read_parts(first, 2)) == 2
    first.close()
    third = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    assert third.status_code == 200  # the place is free again
    third.close()


@pytest.fixture()
def slow_release(monkeypatch):
    """``slow_release(manager)``: its sources (``camera`` is the demo video) close only once ``gate`` is set, like
    a camera slow to let go; ``opened`` counts open() calls, ``most`` the most sources open at once."""
    state = {"gate": threading.Event(), "open": 0, "most": 0, "opened": 0}
    lock = threading.Lock()

    def install(manager):
        real_open = manager.open_source

        def open_source(name):
            source = real_open("demo" if name == "camera" else name)
            real_close = source.close

            def close():
                state["gate"].wait(60)
                with lock:
                    state["open"] -= 1
                real_close()

            source.close = close
            with lock:
                state["opened"] += 1
                state["open"] += 1
                state["most"] = max(state["most"], state["open"])
            return source

        monkeypatch.setattr(manager, "open_source", open_source)
        return state

    yield install
    state["gate"].set()


def test_a_new_stream_waits_until_the_stopping_one_has_closed_its_source(make_app, slow_release):
    manager = make_app(STREAM_GRACE=0).extensions["pose_fast_streams"]
    held = slow_release(manager)
    sub = manager.subscribe("demo", "CPU")
    old = sub.stream
    sub.close()  # no grace: stopping at once, but its source stays open until the gate opens
    assert wait_for(lambda: old.state == "stopped") and not old.released.is_set()
    again = manager.subscribe("demo", "CPU", wait=False)
    assert again.stream is not old
    assert not wait_for(lambda: held["opened"] > 1, timeout=2)  # it waits instead of opening a second time
    held["gate"].set()
    assert again.stream.wait_ready(120) and again.stream.state == "running"
    assert old.released.is_set() and held["most"] == 1
    again.close()


def test_snapshot_is_the_latest_frame(make_app):
    client = make_app().test_client()
    response = client.get("/snapshot.jpg?source=demo&device-name=CPU")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (270, 480, 3)


def test_after_nobody_watched_a_new_viewer_and_a_snapshot_get_a_new_frame_not_the_cached_one(make_app):
    app = make_app(STREAM_GRACE=60)
    manager = app.extensions["pose_fast_streams"]
    client = app.test_client()
    query = "source=demo&device-name=CPU"
    first = client.get(f"/video_feed?{query}", buffered=False)
    read_parts(first, 1)
    first.close()  # nobody watches: the stream runs on (grace) but encodes nothing
    b = manager.stream("demo", "CPU").broadcaster
    stale, stale_seq, frames = b.jpeg, b.seq, b.frames
    assert wait_for(lambda: b.frames >= frames + 3)
    assert b.seq == stale_seq  # the cached JPEG is now frames old
    snapshot = client.get(f"/snapshot.jpg?{query}")
    assert snapshot.status_code == 200 and snapshot.data != stale and b.seq > stale_seq
    frames, seq = b.frames, b.seq
    assert wait_for(lambda: b.frames >= frames + 3) and b.seq == seq
    with manager.subscribe("demo", "CPU") as viewer:
        jpeg = next(viewer.frames())
        assert viewer.sequence > seq and jpeg != b"" and manager.started == 1


def test_events_of_web_streams_reach_detections(make_app):
    app = make_app()
    manager = app.extensions["pose_fast_streams"]
    client = app.test_client()
    response = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    stream = manager.stream("demo", "CPU")
    read_parts(response, 1)
    assert wait_for(lambda: stream.broadcaster.frames >= 20, timeout=120)
    response.close()
    assert wait_for(lambda: stream.state == "stopped")
    manager.close()  # commits the events (exits included: the tracker closes with the stream)
    body = client.get("/detections?per-page=100").get_json()
    kinds = [e["kind"] for e in body["results"]]
    assert "enter" in kinds and kinds.count("enter") == kinds.count("exit")
    assert {e["source"] for e in body["results"]} == {"store-aisle-detection.mp4"}
    assert {e["device"] for e in body["results"]} == {"CPU"}


# -- the broadcaster, on real frames ----------------------------------------------------------------------------------
def _result(frame, index):
    from pose_fast.pipeline import FrameResult
    from pose_fast.poses import Poses

    return FrameResult(index=index, timestamp=time.time(), frame=frame, poses=Poses.empty(), track_ids=None,
                       timings={}, fps=5.0, inference_ms=100.0, people=0)


def test_broadcaster_encodes_once_per_frame_only_while_watched_and_slow_viewers_skip(read_frames, count_encodes):
    frames = read_frames("store-aisle", count=6)
    b = MjpegBroadcaster(quality=70)
    encoded = count_encodes(lambda: b)
    b.write(_result(frames[0], 0))
    assert encoded.calls == [] and b.jpeg is None  # nobody watches: no encode
    for _ in range(3):
        b.add_viewer()
    for i, frame in enumerate(frames[1:4], 1):
        b.write(_result(frame, i))
    assert encoded.calls == [2, 3, 4]  # three viewers, one encode per frame
    assert b.encodes == 3 == b.frames_watched and b.frames == 4
    jpeg, seq = b.wait_newer(0, timeout=0)  # a slow viewer gets the newest frame, skipping the others
    assert seq == 3
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(decoded.astype(int) - frames[3]).mean() < 8
    assert b.wait_newer(seq, timeout=0) == (None, seq)  # nothing newer yet
    assert b.wait_newer(b.start_seq(), timeout=0) == (jpeg, 3)  # a new viewer gets the current JPEG at once
    for _ in range(3):
        b.remove_viewer()
    b.write(_result(frames[4], 4))  # unwatched: the cached JPEG is now stale
    b.add_viewer()
    start = b.start_seq()
    assert b.wait_newer(start, timeout=0) == (None, start)  # a new viewer does not get it: it waits
    b.write(_result(frames[5], 5))
    jpeg, seq = b.wait_newer(start, timeout=0)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert seq == 4 and np.abs(decoded.astype(int) - frames[5]).mean() < 8
    with pytest.raises(ValueError, match="quality"):
        MjpegBroadcaster(quality=0)


# -- the Host header (DNS rebinding) ----------------------------------------------------------------------------------
@pytest.mark.parametrize("host, status", [("evil.example", 400), ("evil.example:5000", 400), ("localhost:5000", 200),
                                          ("127.0.0.1:5000", 200), ("[::1]:5000", 200), ("192.168.1.20:5000", 200),
                                          ("pose.home.arpa", 200), ("POSE.home.arpa:8080", 200)])
def test_only_known_names_in_host(make_app, host, status, tmp_path):
    """A page on another site reaches 127.0.0.1 through a rebinding name only with that name in Host: refused.
    Before, Host: evil.example got a 200 and Link URLs pointing at http://evil.example/..."""
    from pose_fast.events import EventStore

    with EventStore(tmp_path / "events.sqlite3") as store:  # the database make_app configures
        for i in range(3):
            store.add("enter", i, i, 1_764_050_400.0 + i, 1, "cam", "CPU")
    client = make_app(ALLOWED_HOSTS="pose.home.arpa").test_client()
    for path in ("/detections", "/stats?source=demo&device-name=CPU", "/", "/nowhere"):
        response = client.get(path, headers={"Host": host})
        if status == 400:
            assert response.status_code == 400 and response.is_json, path
            assert "unknown host 'evil.example'" in response.get_json()["error"]
        else:
            assert response.status_code in (200, 404), (path, response.status_code)
    if status == 200:
        link = client.get("/detections?per-page=1", headers={"Host": host}).headers.get("Link", "")
        assert "evil" not in link


def test_allowed_hosts_come_from_the_environment(tmp_path):
    settings = load_config(None, {"POSE_FAST_ALLOWED_HOSTS": "a.lan, b.lan", "POSE_FAST_DB": str(tmp_path / "e.db")})
    assert settings["ALLOWED_HOSTS"] == ("a.lan", "b.lan")


def test_head_video_feed_starts_no_stream(make_app):
    """Before, HEAD /video_feed started a pipeline and answered a chunked 0."""
    app = make_app()
    manager = app.extensions["pose_fast_streams"]
    response = app.test_client().head("/video_feed?source=demo&device-name=CPU")
    assert response.status_code == 200 and response.mimetype == "multipart/x-mixed-replace"
    assert manager.started == 0 and manager.running() == []
    assert app.test_client().head("/video_feed?source=nowhere").status_code == 400


def test_motion_gate_setting_reaches_the_stream_manager(make_app):
    """MOTION_GATE (POSE_FAST_MOTION_GATE, --motion-gate/--no-motion-gate): unset leaves the pipelines' default (on
    for the camera, off for the demo video); 1/0 force it; anything else is a one-line error."""
    assert load_config(None, {})["MOTION_GATE"] is None
    assert load_config(None, {"POSE_FAST_MOTION_GATE": "1"})["MOTION_GATE"] is True
    assert load_config({"MOTION_GATE": False}, {"POSE_FAST_MOTION_GATE": "1"})["MOTION_GATE"] is False
    with pytest.raises(ConfigError, match="MOTION_GATE"):
        load_config(None, {"POSE_FAST_MOTION_GATE": "sometimes"})
    assert make_app(MOTION_GATE="0").extensions["pose_fast_streams"].motion_gate is False
    assert make_app().extensions["pose_fast_streams"].motion_gate is None
