"""Helpers the tests and benchmarks share: waiting for a condition, a real waitress server on a free port.

Importable from any test module as ``from support import ...`` (the root conftest puts ``tests/`` on the path).
"""
from __future__ import annotations

import contextlib
import threading
import time

__all__ = ["wait_for", "running_server", "make_v1_database", "free_port", "RtspServer", "rtsp_unavailable"]

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with the GObject bindings (python3-gi) gst-rtsp-server needs



def wait_for(predicate, timeout: float = 30.0, step: float = 0.05):
    """Poll until ``predicate()`` is true; return its last value (a wait, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


@contextlib.contextmanager
def running_server(app, threads: int = 12, **options):
    """``with running_server(app) as (base_url, port):`` the app on a real waitress server (``pose-fast web``'s
    :func:`make_server`) on a free 127.0.0.1 port; closed, and the app's streams stopped, on leaving."""
    from pose_fast.cli.web import make_server

    server = make_server(app, "127.0.0.1", 0, threads=threads, **options)
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    port = int(server.effective_port)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.close()
        thread.join(5)
        app.extensions["pose_fast_streams"].close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rtsp_unavailable() -> str:
    """Why the RTSP tests cannot run here ('' when they can): GStreamer's RTSP server from Debian's packages."""
    import subprocess

    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst; Gst.init(None); "
             "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')")
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no {SYSTEM_PYTHON} for GStreamer's RTSP server ({exc})"
    if done.returncode:
        return ("GStreamer's RTSP server is not installed (bash .ci/test-setup.sh installs gir1.2-gst-rtsp-server-1.0 "
                "python3-gi gstreamer1.0-plugins-good/-bad/-ugly gstreamer1.0-libav)")
    return ""


class RtspServer:
    """GStreamer's RTSP server (``tests/rtsp_server.py``) serving ``video`` at ``url``; :meth:`stop` kills it
    (as a crash or a power cut would: SIGKILL), :meth:`start` brings it back on the same port."""

    def __init__(self, video, mount: str = "door", port: int = 0):
        self.video = str(video)
        self.mount = mount
        self.port = port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/{mount}"
        self.proc = None

    def start(self, timeout: float = 30.0) -> RtspServer:
        import subprocess
        from pathlib import Path

        script = Path(__file__).with_name("rtsp_server.py")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(script), str(self.port), self.mount, self.video],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "ready", or nothing when it failed
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the RTSP server did not start: {self.proc.stderr.read()[-500:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def make_v1_database(path, rows) -> None:
    """An events database as round 1 wrote it (schema version 1), holding ``rows`` of (kind, person_id, timestamp
    text, source, frame_index, people_count, device)."""
    import apsw

    from pose_fast.events import schema

    conn = apsw.Connection(str(path))
    try:
        conn.execute(schema.MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.executemany("INSERT INTO events (kind, person_id, timestamp, source, frame_index, people_count, "
                         "device) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()
