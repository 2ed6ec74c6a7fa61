"""``/metrics`` on a real server (waitress) and ``pose-fast demo --metrics-port``, parsed with prometheus-client's
own parser: the camera's frames, latency histograms, people, events by kind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, wait_for


def scrape(url: str) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape."""
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_web_metrics_show_the_camera(live_server):
    base, _, app = live_server(STREAM_GRACE=5)
    with requests.get(f"{base}/video_feed?source=demo&device-name=CPU", stream=True, timeout=120) as feed:
        chunks = feed.iter_content(4096)
        assert next(chunks)
        assert wait_for(lambda: value(scrape(f"{base}/metrics"), "pose_fast_frames_total", camera="demo") >= 10, 60)
        samples = scrape(f"{base}/metrics")
    frames = value(samples, "pose_fast_frames_total", camera="demo")
    for histogram in ("pose_fast_inference_seconds", "pose_fast_decode_seconds",
                      "pose_fast_capture_to_overlay_seconds"):
        count = value(samples, f"{histogram}_count", camera="demo")
        assert frames - 2 <= count <= frames + 2  # one observation per frame (the scrape is not atomic)
        assert value(samples, f"{histogram}_bucket", camera="demo", le="+Inf") == count
        assert value(samples, f"{histogram}_sum", camera="demo") > 0
    assert value(samples, "pose_fast_viewers", camera="demo") == 1
    assert value(samples, "pose_fast_jpeg_encodes_total", camera="demo") >= 1
    assert ("pose_fast_frames_dropped_total", frozenset({"camera": "demo", "reason": "stale"}.items())) in samples
    assert value(samples, "pose_fast_fps", camera="demo") > 0


def test_demo_metrics_port_serves_the_run(model_dir, video_path, tmp_path):
    port = free_port()
    db = tmp_path / "events.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pose_fast.cli.main", "demo", "-i", str(video_path("people-walking")), "--no-show",
         "--loop", "--limit", "100000", "--input-height", "128", "--db", str(db), "--metrics-port", str(port),
         "--line", "mid=0.5,0 0.5,1"],
        env={**os.environ, "POSE_FAST_MODEL_DIR": str(model_dir)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    url = f"http://127.0.0.1:{port}/metrics"

    def events_counted():
        try:
            samples = scrape(url)
        except requests.ConnectionError:
            return None
        enters = value(samples, "pose_fast_events_total", camera="people-walking", kind="enter")
        return samples if enters >= 2 else None

    try:
        samples = wait_for(events_counted, 120, 0.5)
        assert samples, "no enter events counted in /metrics"
        assert value(samples, "pose_fast_frames_total", camera="people-walking") > 0
        assert value(samples, "pose_fast_inference_seconds_count", camera="people-walking") > 0
        crossings = sum(value(samples, "pose_fast_line_crossings_total", camera="people-walking", line="mid",
                              direction=d) for d in ("in", "out"))
        stored = value(samples, "pose_fast_events_total", camera="people-walking", kind="line_cross")
        assert stored <= crossings  # the live count runs ahead of the database's commits
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
