"""RemoteEngine against a real KServe v2 gRPC server (PyPI kserve running the IR through OpenVINO).

The server runs in its own process from its own virtualenv (``source .ci/remote.sh`` makes it and sets
``POSE_FAST_KSERVE_PYTHON``): kserve's protobufs clash with tritonclient's inside one process.
"""
from __future__ import annotations

import json
import logging
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from kserve_server import ServerProcess, server_python  # tests/ is on sys.path

from pose_fast.engines.remote import STATUS_OK, STATUS_RECONNECTING, RemoteEngine, parse_server_url
from pose_fast.errors import EngineError

pytestmark = pytest.mark.remote
ROOT = Path(__file__).resolve().parents[1]
NET_W, NET_H = 456, 256  # the stock IR's fixed input


@pytest.fixture(scope="session")
def kserve_python():
    try:
        return server_python()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def server(model_xml, kserve_python):
    """The stock model (fixed 1x3x256x456 input) on a free loopback port."""
    with ServerProcess(model_xml, python=kserve_python) as proc:
        yield proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def collect(engine, frames, userdata=None) -> dict:
    """Submit every frame; return {userdata: (heatmaps copy or None, pafs copy or None)}."""
    results = {}
    lock = threading.Lock()

    def on_result(heatmaps, pafs, data, infer_ms):
        assert infer_ms >= 0
        with lock:
            results[data] = (None, None) if heatmaps is None else (heatmaps.copy(), pafs.copy())

    engine.set_callback(on_result)
    for index, frame in enumerate(frames):
        engine.submit(frame, index if userdata is None else userdata + index)
    engine.wait_all()
    return results


# -- the URL ---------------------------------------------------------------------------------------------------------
def test_server_url_forms():
    assert parse_server_url("grpc://10.1.2.3:9000") == ("10.1.2.3", 9000, "human-pose-estimation-0001")
    assert parse_server_url("grpc://pose.example:8001/my-pose") == ("pose.example", 8001, "my-pose")
    assert parse_server_url("localhost:9000/") == ("localhost", 9000, "human-pose-estimation-0001")
    assert parse_server_url("grpc://[::1]:9000/m") == ("::1", 9000, "m")
    with pytest.raises(EngineError, match=r"needs a host and a port: use --server grpc://HOST:PORT\[/MODEL\]"):
        parse_server_url("grpc://pose.example")
    with pytest.raises(EngineError, match="only the KServe v2 gRPC API"):
        parse_server_url("http://pose.example:8080")
    with pytest.raises(EngineError, match="more than a model name"):
        parse_server_url("grpc://pose.example:9000/models/pose")


# -- same heatmaps as the local engine -----------------------------------------------------------------------------
def test_same_heatmaps_as_local_engine_at_network_size(server, engine_for, read_frames):
    """Frames already at the network size need no resize on either side: the bytes must match exactly."""
    import cv2

    frames = [cv2.resize(f, (NET_W, NET_H), interpolation=cv2.INTER_AREA) for f in read_frames("store-aisle", 3)]
    local = engine_for(NET_W, NET_H)
    with RemoteEngine(server.url) as remote:
        for frame in frames:
            heat, paf = remote.infer(frame)
            assert remote.network_size == local.network_size == (NET_W, NET_H)
            assert remote.output_size == local.output_size == (57, 32)
            want_heat, want_paf = local.infer(frame)
            np.testing.assert_array_equal(heat, want_heat)
            np.testing.assert_array_equal(paf, want_paf)


def test_same_heatmaps_as_local_engine_on_source_frames(server, engine_for, read_frames):
    """480x270 frames: the client resizes them to the server's 456x256 (the local engine resizes inside the
    model); only the interpolation differs (measured: max 0.04, mean 0.0003 on the shared videos)."""
    frames = read_frames("store-aisle", 4, start=20)
    height, width = frames[0].shape[:2]
    local = engine_for(width, height)
    with RemoteEngine(server.url, num_requests=2, mode="throughput") as remote:
        got = collect(remote, frames)
        assert remote.num_requests == 2 and remote.dropped_frames == 0 and remote.status == STATUS_OK
    assert sorted(got) == list(range(len(frames)))
    for index, frame in enumerate(frames):
        want_heat, want_paf = local.infer(frame)
        heat, paf = got[index]
        assert heat.shape == want_heat.shape == (19, 32, 57) and paf.shape == want_paf.shape == (38, 32, 57)
        assert np.abs(heat - want_heat).max() < 0.08 and np.abs(heat - want_heat).mean() < 0.001
        assert np.abs(paf - want_paf).max() < 0.1 and np.abs(paf - want_paf).mean() < 0.001
        # each clear keypoint peaks in the same heatmap cell (or its neighbour, where two cells nearly tie)
        strong = want_heat[:18].max(axis=(1, 2)) > 0.5
        shape = want_heat.shape[1:]
        want_yx = np.array(np.unravel_index(want_heat[:18].reshape(18, -1).argmax(axis=1), shape))[:, strong]
        got_yx = np.array(np.unravel_index(heat[:18].reshape(18, -1).argmax(axis=1), shape))[:, strong]
        assert strong.sum() >= 5 and np.abs(got_yx - want_yx).max() <= 1


def test_dynamic_width_server_follows_the_source_aspect_like_the_local_engine(model_xml, kserve_python,
                                                                              engine_for, read_frames):
    frames = read_frames("asl-walk", 2)
    height, width = frames[0].shape[:2]
    local = engine_for(width, height)
    with ServerProcess(model_xml, dynamic_width=True, python=kserve_python) as proc, RemoteEngine(proc.url) as remote:
        remote.prepare(width, height)
        assert remote.network_size == local.network_size == (344, 256)
        assert remote.output_size == local.output_size == (43, 32)
        for frame in frames:
            heat, _ = remote.infer(frame)
            want, _ = local.infer(frame)
            assert heat.shape == want.shape == (19, 32, 43)
            assert np.abs(heat - want).max() < 0.08 and np.abs(heat - want).mean() < 0.001


def test_submit_keeps_several_requests_in_flight_and_matches_infer(server, read_frames):
    frames = read_frames("people-walking", 3)
    results, held = {}, []
    all_submitted = threading.Event()

    def on_result(heatmaps, pafs, userdata, infer_ms):
        if userdata == 0:  # hold the first request's slot until every frame is submitted
            held.append(all_submitted.wait(60))
        results[userdata] = (heatmaps.copy(), pafs.copy())

    with RemoteEngine(server.url, num_requests=3) as remote:
        remote.set_callback(on_result)
        for index, frame in enumerate(frames):
            remote.submit(frame, index)
        all_submitted.set()
        remote.wait_all()
        assert held == [True]  # three requests were in flight at once
        assert sorted(results) == [0, 1, 2]
        for index, frame in enumerate(frames):
            heat, paf = remote.infer(frame)
            np.testing.assert_array_equal(results[index][0], heat)
            np.testing.assert_array_equal(results[index][1], paf)


def test_submit_without_callback_and_wrong_frames(server):
    with RemoteEngine(server.url, frame_size=(480, 270)) as remote:
        with pytest.raises(EngineError, match="set_callback"):
            remote.submit(np.zeros((270, 480, 3), np.uint8))
        with pytest.raises(ValueError, match="prepared for 480x270"):
            remote.infer(np.zeros((100, 100, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            remote.infer(np.zeros((270, 480, 3), np.float32))


# -- errors at start ---------------------------------------------------------------------------------------------
def test_wrong_model_name_names_the_models_the_server_has(server):
    with pytest.raises(EngineError) as info:
        RemoteEngine(f"grpc://127.0.0.1:{server.port}/no-such-model")
    message = str(info.value)
    assert "\n" not in message
    assert f"the server at 127.0.0.1:{server.port} has no model 'no-such-model'" in message
    assert "the server has: human-pose-estimation-0001" in message


def test_refused_connection_is_one_line():
    port = free_port()  # nothing listens there
    with pytest.raises(EngineError) as info:
        RemoteEngine(f"grpc://127.0.0.1:{port}", connect_timeout_s=3)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach the inference server at 127.0.0.1:{port} (")
    assert message.endswith("start the model server or fix --server")


def test_a_model_that_is_not_the_pose_model_is_refused(tmp_path, kserve_python):
    import openvino as ov
    from openvino import opset8 as ops

    data = ops.parameter([1, 3, 8, 8], np.float32, name="data")
    relu = ops.relu(data)
    relu.output(0).get_tensor().set_names({"features"})
    ov.save_model(ov.Model([relu], [data], "not-pose"), tmp_path / "not-pose.xml")
    with ServerProcess(tmp_path / "not-pose.xml", name="not-pose", python=kserve_python) as proc:
        with pytest.raises(EngineError) as info:
            RemoteEngine(proc.url)
    message = str(info.value)
    assert "\n" not in message
    assert f"model 'not-pose' at 127.0.0.1:{proc.port} is not human-pose-estimation-0001" in message
    assert "output 'Mconv7_stage2_L1' is missing" in message and "outputs: features FP32[1x3x8x8]" in message
    assert "the server has: not-pose" in message


def test_cli_unreachable_server_exits_2_with_one_line(video_path):
    port = free_port()
    proc = subprocess.run([sys.executable, str(ROOT / "demo.py"), "--server", f"grpc://127.0.0.1:{port}",
                           "--no-show", "--no-db", "--video-url", str(video_path("store-aisle")), "--limit", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot reach the inference server at 127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("case", ["refused", "wrong model"])
def test_web_command_checks_the_server_at_start(server, case):
    url = (f"grpc://127.0.0.1:{free_port()}" if case == "refused" else
           f"grpc://127.0.0.1:{server.port}/no-such-model")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--server", url, "--port", "0", "--camera",
                           "none"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "serving on" not in proc.stdout and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    want = "cannot reach the inference server at 127.0.0.1:" if case == "refused" else "has no model 'no-such-model'"
    assert len(lines) == 1 and want in lines[0], proc.stderr


@pytest.mark.parametrize("command, flags", [("demo.py", ["--device-name", "GPU"]),
                                            ("demo.py", ["--model", "x.xml", "--precision", "FP32"]),
                                            ("main.py", ["--device-name", "CPU"])])
def test_local_only_options_are_refused_with_a_server(command, flags, video_path):
    """Before, --device-name, --model and --precision were dropped silently with --server; now one line says why,
    before any connection (the port here has no server: the refusal comes first)."""
    url = f"grpc://127.0.0.1:{free_port()}"
    args = [sys.executable, str(ROOT / command), "--server", url, *flags]
    args += ["--no-show", "--no-db", "-i", str(video_path("store-aisle"))] if command == "demo.py" else \
        ["--port", "0", "--camera", "none"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not apply with --server" in lines[0] and "cannot reach" not in lines[0], lines
    for flag in flags:
        if flag.startswith("--"):
            assert flag in lines[0]


# -- faults mid-stream -----------------------------------------------------------------------------------------------
def test_a_request_that_times_out_is_dropped_not_waited_for(model_xml, kserve_python, read_frames):
    frames = read_frames("store-aisle", 2)
    with ServerProcess(model_xml, delay_ms=3000, python=kserve_python) as proc:
        with RemoteEngine(proc.url, timeout_s=0.5, num_requests=2) as remote:
            got = collect(remote, frames)
            assert got == {0: (None, None), 1: (None, None)}
            assert remote.dropped_frames == 2 and remote.timed_out == 2
            assert remote.status == STATUS_OK  # slow is not lost (until TIMEOUTS_BEFORE_LOST in a row)
            assert remote.infer(frames[0]) == (None, None)
            assert remote.timed_out == 3
            # The third timeout in a row marks the server lost. It still answers "ready" at once (it is only slow),
            # so the reconnection may already have succeeded by now: either state shows the loss was noticed.
            with remote._lock:  # the reconnection thread changes the three together, under this lock
                status, message, reconnects = remote.status, remote.status_message, remote.reconnects
            assert (status, message, reconnects) in {(STATUS_RECONNECTING, "server lost, retrying (1 dropped)", 0),
                                                     (STATUS_OK, "", 1)}


def _reject_every_request(remote) -> None:
    """Send an input the server refuses (INVALID_ARGUMENT), as after the model on the server was swapped."""
    def fill(slot, frame):
        data = remote._grpc.InferInput("data", [1, 3, 8, 8], "FP32")
        data.set_data_from_numpy(np.zeros((1, 3, 8, 8), np.float32))
        return [data]

    remote._fill = fill


def test_a_rejected_request_still_reaches_the_callback_then_raises_one_line(server, read_frames):
    frames = read_frames("store-aisle", 1)
    calls = []
    with RemoteEngine(server.url, num_requests=2) as remote:
        _reject_every_request(remote)
        remote.set_callback(lambda heatmaps, pafs, data, infer_ms: calls.append((data, heatmaps, pafs)))
        remote.submit(frames[0], 7)
        with pytest.raises(EngineError) as info:
            remote.wait_all()
        assert calls == [(7, None, None)]  # the frame completes as a drop: nobody waits for it
        assert remote.dropped_frames == 1 and remote.status == STATUS_OK
        remote.wait_all()  # raised once
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"the server at 127.0.0.1:{server.port} rejected a frame (invalid input data ")


def test_a_pipeline_stops_with_the_error_when_the_server_rejects_frames(server, video_path):
    from pose_fast.frames import open_source
    from pose_fast.pipeline import Pipeline

    source = open_source(str(video_path("store-aisle")))
    remote = RemoteEngine(server.url)
    _reject_every_request(remote)
    pipe = Pipeline(source, remote, mode="latency", renderer=False).start()
    try:
        with pytest.raises(EngineError, match="rejected a frame"):
            pipe.join(timeout=60)  # a hang returns after 60 s without raising
        stats = pipe.stats()
        assert stats["stop_reason"] == "error" and stats["engine_dropped"] == 1 and remote.dropped_frames == 1
    finally:
        pipe.stop()
        remote.close()
        source.close()


def test_server_killed_mid_run_and_restarted_client_recovers(model_xml, kserve_python, read_frames, engine_for,
                                                            caplog):
    caplog.set_level(logging.WARNING, logger="pose_fast.engines.remote")
    frames = read_frames("store-aisle", 3)
    height, width = frames[0].shape[:2]
    proc = ServerProcess(model_xml, python=kserve_python).start()
    try:
        remote = RemoteEngine(proc.url, num_requests=2, timeout_s=5, reconnect_wait_s=0.2, max_backoff_s=0.5)
        before = collect(remote, frames)
        assert all(heat is not None for heat, _ in before.values())

        proc.kill()  # SIGKILL: no goodbye
        lost = collect(remote, frames, userdata=10)
        assert lost == {10: (None, None), 11: (None, None), 12: (None, None)}
        assert remote.dropped_frames == 3
        assert remote.status == STATUS_RECONNECTING
        assert remote.status_message == "server lost, retrying (3 dropped)"
        assert remote.infer(frames[0]) == (None, None)  # the sync path drops too, no exception
        assert remote.status_message == "server lost, retrying (4 dropped)"
        lost = [r.getMessage() for r in caplog.records if " lost (" in r.getMessage()]
        assert len(lost) == 1 and lost[0].startswith(f"inference server 127.0.0.1:{proc.port} lost (")

        proc = ServerProcess(model_xml, port=proc.port, python=kserve_python).start()
        deadline = time.monotonic() + 60
        back = {}
        userdata = 100
        while time.monotonic() < deadline and not any(h is not None for h, _ in back.values()):
            back = collect(remote, frames[:1], userdata=userdata)
            userdata += 1
        heat, _ = next(iter(back.values()))
        assert heat is not None, proc.log()[-2000:]
        assert remote.status == STATUS_OK and remote.status_message == "" and remote.reconnects == 1
        assert remote.dropped_frames >= 4
        assert [r.getMessage() for r in caplog.records if " is back after " in r.getMessage()]
        want, _ = engine_for(width, height).infer(frames[0])
        assert np.abs(heat - want).max() < 0.08
        remote.close()
        assert remote.status == "closed"
    finally:
        proc.stop()


# -- the demo CLI ----------------------------------------------------------------------------------------------------
def run_demo(video, out: Path, *extra) -> list:
    proc = subprocess.run([sys.executable, str(ROOT / "demo.py"), *extra, "--no-show", "--no-db", "--json", str(out),
                           "--video-url", str(video), "--limit", "6"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_demo_with_server_gives_exactly_the_local_people_at_network_size(server, model_xml, read_frames,
                                                                         tmp_path):
    """A video already at the network size (456x256) is not resized on either side: same heatmaps, so the
    very same people, keypoint for keypoint."""
    import cv2

    video = tmp_path / "aisle-456x256.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12.5, (NET_W, NET_H))
    for frame in read_frames("store-aisle", 6, start=10):
        writer.write(cv2.resize(frame, (NET_W, NET_H), interpolation=cv2.INTER_AREA))
    writer.release()
    local = run_demo(video, tmp_path / "local.jsonl", "--model", str(model_xml))
    remote = run_demo(video, tmp_path / "remote.jsonl", "--server", server.url)
    assert len(local) == len(remote) == 6
    assert sum(len(r["people"]) for r in local) >= 6
    for want, got in zip(local, remote):
        assert (got["index"], got["people"]) == (want["index"], want["people"])


def test_demo_with_server_finds_the_local_people_on_a_shared_video(server, model_xml, video_path, tmp_path):
    """On the 480x270 source the client resizes (the local engine resizes inside the model): the heatmaps differ
    by a few hundredths, which may split or join a borderline person, so compare the keypoints found per frame:
    each one found by one run is found by the other within a few pixels."""
    video = video_path("store-aisle")
    local = run_demo(video, tmp_path / "local.jsonl", "--model", str(model_xml))
    remote = run_demo(video, tmp_path / "remote.jsonl", "--server", server.url)
    assert len(local) == len(remote) == 6
    found = matched = 0
    for want, got in zip(local, remote):
        assert got["index"] == want["index"]
        a, b = _keypoints(want["people"]), _keypoints(got["people"])
        assert len(a) and abs(len(a) - len(b)) <= 0.1 * len(a)
        for first, second in ((a, b), (b, a)):
            for kind, x, y in first:
                found += 1
                same = second[second[:, 0] == kind]
                matched += bool(len(same)) and np.hypot(same[:, 1] - x, same[:, 2] - y).min() <= 6.0
    assert matched >= 0.95 * found


def _keypoints(people) -> np.ndarray:
    """(kind, x, y) of every keypoint found in a frame, whoever it belongs to."""
    rows = [(kind, x, y) for person in people for kind, (x, y, score) in enumerate(person["keypoints"]) if score > 0]
    return np.array(rows, float).reshape(-1, 3)


# -- deployment files ------------------------------------------------------------------------------------------------
def test_deploy_files_serve_the_model_the_client_expects():
    import re

    config = json.loads((ROOT / "deploy" / "ovms" / "config.json").read_text())
    (entry,) = config["model_config_list"]
    assert entry["config"]["name"] == parse_server_url("grpc://h:1")[2]
    assert entry["config"]["shape"] == {"data": "(1,3,256,-1)"}  # height 256 like the local engine, any width
    manifest = (ROOT / "deploy" / "kserve" / "inferenceservice.yaml").read_text()
    assert re.search(r"^kind: InferenceService$", manifest, re.M)
    assert re.search(r"^  name: human-pose-estimation-0001$", manifest, re.M)
    assert int(re.search(r"^    minReplicas: (\d+)$", manifest, re.M).group(1)) >= 2
    assert re.search(r"^      protocolVersion: grpc-v2$", manifest, re.M)
    assert '--shape={"data":"(1,3,256,-1)"}' in manifest


@pytest.mark.slow
def test_demo_survives_a_server_outage(model_xml, kserve_python, video_path, tmp_path):
    """Server killed mid-run and restarted: the demo keeps going (frames meanwhile shown without people and
    counted), logs the loss and the recovery, and finishes normally."""
    out = tmp_path / "out.jsonl"
    proc = ServerProcess(model_xml, python=kserve_python).start()
    demo = subprocess.Popen([sys.executable, str(ROOT / "demo.py"), "--server", proc.url, "--no-show",
                             "--db", str(tmp_path / "events.db"), "--json", str(out),
                             "--video-url", str(video_path("store-aisle")), "--loop", "--limit", "80"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and demo.poll() is None and \
                (not out.exists() or len(out.read_text().splitlines()) < 10):
            time.sleep(0.2)
        proc.kill()
        time.sleep(2.0)  # frames are dropped meanwhile
        proc = ServerProcess(model_xml, port=proc.port, python=kserve_python).start()
        _, stderr = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
        proc.stop()
    assert demo.returncode == 0, stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 80 and [r["index"] for r in rows] == sorted(r["index"] for r in rows)
    assert f"inference server 127.0.0.1:{proc.port} lost (" in stderr and " is back after " in stderr
    assert sum(1 for r in rows if not r["people"]) >= 1
    assert sum(1 for r in rows[-10:] if r["people"]) >= 5  # people again after the recovery
    # no lost events: the store has them, and every person who entered has a later exit (and no exit without one)
    db = sqlite3.connect(f"file:{tmp_path / 'events.db'}?mode=ro", uri=True)
    try:
        events = db.execute("SELECT kind, person_id FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    entered, exited = [], []
    for kind, person in events:
        if kind == "enter":
            assert person not in entered, events
            entered.append(person)
        else:
            assert person in entered and person not in exited, events
            exited.append(person)
    assert entered and sorted(exited) == sorted(entered), events


def test_web_app_streams_through_the_server(server, video_path, tmp_path):
    """`pose-fast web --server`: the page's stream is inferred remotely, unchanged for the browser."""
    from pose_fast.webapp import create_app

    app = create_app({"SERVER": server.url, "DATABASE": str(tmp_path / "events.db"), "CAMERA": "none",
                      "DEMO_VIDEO": str(video_path("store-aisle")), "DEVICE": "CPU"})
    client = app.test_client()
    response = client.get("/video_feed?source=demo&device-name=CPU", buffered=False)
    try:
        assert response.status_code == 200
        body, chunks, deadline = b"", iter(response.response), time.monotonic() + 60
        while body.count(b"\xff\xd8") < 3 and time.monotonic() < deadline:
            body += next(chunks)
        assert body.count(b"\xff\xd8") >= 3, "three JPEG frames arrive through the remote engine"
        stats = client.get("/stats?source=demo&device-name=CPU").get_json()
        assert stats["engine"].startswith(f"remote {server.url}") and stats["error"] is None
        assert stats["engine_dropped"] == 0
    finally:
        response.close()
    page = client.get("/").get_data(as_text=True)
    assert '<select id="device">' not in page  # no device to choose: the server has its own
    assert f"on the model server {server.url}" in page


def test_web_stats_count_the_frames_a_lost_server_dropped(model_xml, kserve_python, video_path, tmp_path):
    from pose_fast.webapp import create_app

    proc = ServerProcess(model_xml, python=kserve_python).start()
    app = create_app({"SERVER": proc.url, "DATABASE": str(tmp_path / "events.db"), "CAMERA": "none",
                      "DEMO_VIDEO": str(video_path("store-aisle")), "DEVICE": "CPU"})
    client = app.test_client()
    query = "source=demo&device-name=CPU"
    response = client.get(f"/video_feed?{query}", buffered=False)
    try:
        assert response.status_code == 200
        assert b"\xff\xd8" in next(iter(response.response))
        assert client.get(f"/stats?{query}").get_json()["engine_dropped"] == 0
        proc.kill()
        deadline = time.monotonic() + 60
        stats = client.get(f"/stats?{query}").get_json()
        while stats["engine_dropped"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            stats = client.get(f"/stats?{query}").get_json()
        assert stats["engine_dropped"] >= 2 and stats["state"] == "running", stats
    finally:
        response.close()
        app.extensions["pose_fast_streams"].close()
        proc.stop()


def test_an_ipv6_server_is_dialled_in_brackets(server):
    """grpc://[::1]:PORT/m: before, the client dialled '::1:PORT', an unrelated address. The test server listens on
    127.0.0.1 only, so [::1] is refused: the point is which address the one-line error names."""
    port = free_port()
    with pytest.raises(EngineError, match=rf"cannot reach the inference server at \[::1\]:{port} "):
        RemoteEngine(f"grpc://[::1]:{port}/m", connect_timeout_s=2)
    with pytest.raises(EngineError, match=r"does not parse .*in brackets"):
        RemoteEngine("grpc://[::1:9000/m")
