"""Helpers the tests and benchmarks share: waiting for a condition, a real waitress server on a free port.

Importable from any test module as ``from support import ...`` (the root conftest puts ``tests/`` on the path).
"""
from __future__ import annotations

import contextlib
import threading
import time

__all__ = ["wait_for", "running_server", "make_v1_database", "free_port", "RtspServer", "rtsp_unavailable",
           "VideoHttpServer"]

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


class VideoHttpServer:
    """A real HTTP server on a free 127.0.0.1 port serving one shared video in the ways streams break.

    ``/live.mjpg``: the video's frames as an MJPEG stream (``multipart/x-mixed-replace``, what IP cameras serve) at
    ``fps``, continuing where the last connection stopped (a camera does not rewind); after ``stall_after`` frames
    in all it stops sending for ``stall_s`` seconds, once, keeping the connection open; after ``drop_after`` frames
    it closes the connection, once. ``/cut``: the file with its full ``Content-Length`` whose connection drops after
    half of its bytes. ``connections`` counts the requests for ``/live.mjpg``.
    """

    def __init__(self, video, fps: float = 10.0, stall_after: int = 0, stall_s: float = 30.0,
                 drop_after: int = 0):
        import cv2

        cap = cv2.VideoCapture(str(video))
        self.jpegs = []
        while len(self.jpegs) < 400:
            ok, frame = cap.read()
            if not ok:
                break
            self.jpegs.append(cv2.imencode(".jpg", frame)[1].tobytes())
        cap.release()
        self.video = video
        self.fps, self.stall_after, self.stall_s, self.drop_after = fps, stall_after, stall_s, drop_after
        self.sent = 0
        self.connections = 0
        self.stalled = self.dropped = False
        self._stop = threading.Event()
        self.httpd = None

    def start(self) -> VideoHttpServer:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                try:
                    if self.path == "/live.mjpg":
                        owner._live(self)
                    elif self.path == "/cut":
                        owner._cut(self)
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, name="video-http", daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def _live(self, handler) -> None:
        self.connections += 1
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.end_headers()
        while not self._stop.is_set():
            if self.stall_after and self.sent >= self.stall_after and not self.stalled:
                self.stalled = True
                self._stop.wait(self.stall_s)
            if self.drop_after and self.sent >= self.drop_after and not self.dropped:
                self.dropped = True
                return  # the handler closes the connection
            jpeg = self.jpegs[self.sent % len(self.jpegs)]
            handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
            handler.wfile.flush()
            self.sent += 1
            self._stop.wait(1.0 / self.fps)

    def _cut(self, handler) -> None:
        from pathlib import Path

        data = Path(self.video).read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Type", "video/mp4")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        handler.close_connection = True

    def stop(self) -> None:
        self._stop.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self) -> VideoHttpServer:
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
