"""Helpers the tests and benchmarks share: waiting for a condition, a real waitress server on a free port.

Importable from any test module as ``from support import ...`` (the root conftest puts ``tests/`` on the path).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time

__all__ = ["wait_for", "running_server", "make_v1_database", "free_port", "RtspServer", "rtsp_unavailable",
           "VideoHttpServer", "Mosquitto", "MOSQUITTO"]

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
        """Start the server and wait until it answers a DESCRIBE (a client's first request) for ``url``."""
        import subprocess
        from pathlib import Path

        script = Path(__file__).with_name("rtsp_server.py")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(script), str(self.port), self.mount, self.video],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "ready", or nothing when it failed
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the RTSP server did not start: {self.proc.stderr.read()[-500:]}")
        # "ready" means listening; the first DESCRIBE also loads and prerolls the decoder and encoder plugins, which
        # on a fresh machine (no GStreamer registry cache yet) under load takes longer than a client's open timeout
        status = self._describe(timeout)
        if status != "200":
            self.stop()
            raise RuntimeError(f"the RTSP server did not answer DESCRIBE {self.url} within {timeout:g} s: {status}")
        return self

    def _describe(self, timeout: float) -> str:
        """The status code of a DESCRIBE for ``url`` (or why there is none)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(f"DESCRIBE {self.url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n".encode())
                reply = sock.recv(4096).decode("latin-1")
        except OSError as exc:
            return str(exc)
        words = reply.split(None, 2)
        return words[1] if len(words) > 1 and words[0].startswith("RTSP/") else repr(reply[:80])

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


#: Debian's mosquitto (``.ci/test-setup.sh`` installs it); None when it is not installed.
MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)


class Mosquitto:
    """A real MQTT broker (Debian's mosquitto) on a free 127.0.0.1 port, in ``folder``: ``start()``, ``stop()``
    (SIGTERM, or ``kill=True``), ``start()`` again on the same port. ``users={"name": "password"}`` turns
    anonymous access off (a password file made with ``mosquitto_passwd``); ``persistence`` keeps sessions and
    queued messages across restarts. Use as a context manager (stopped on leaving)."""

    def __init__(self, folder, users=None, persistence: bool = False, port: int = 0, tls: bool = False):
        self.folder = str(folder)
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.process = None
        import getpass

        # as root, mosquitto would switch to the user "mosquitto", who cannot write the persistence file here
        lines = [f"listener {self.port} 127.0.0.1", f"user {getpass.getuser()}", "log_dest stderr",
                 "log_type error", "log_type warning",
                 "max_queued_messages 0", "max_inflight_messages 0"]
        if users:
            pwfile = os.path.join(self.folder, "passwd")
            open(pwfile, "w").close()
            for name, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", pwfile, name, password], check=True, timeout=10,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        if persistence:
            lines += ["persistence true", f"persistence_location {self.folder}/", "autosave_interval 0"]
        else:
            lines.append("persistence false")
        if tls:  # a second listener, mqtts:// on tls_port, with a certificate for 127.0.0.1 from a new CA (self.ca)
            self.tls_port = free_port()
            self.ca = self._certificates()
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.ca}",
                      f"certfile {self.folder}/server.crt", f"keyfile {self.folder}/server.key"]
        self.config = os.path.join(self.folder, "mosquitto.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _certificates(self) -> str:
        d = self.folder
        with open(f"{d}/san.ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        for args in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt",
                      "-days", "2", "-subj", "/CN=pose_fast test CA"],
                     ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr",
                      "-subj", "/CN=127.0.0.1"],
                     ["x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
                      "-CAcreateserial", "-out", f"{d}/server.crt", "-days", "2", "-extfile", f"{d}/san.ext"]):
            subprocess.run(["openssl", *args], check=True, timeout=30, capture_output=True)
        return f"{d}/ca.crt"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.log = open(os.path.join(self.folder, "mosquitto.log"), "ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", self.config], stdout=self.log, stderr=self.log)

        def listening():
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.process.returncode}); see {self.folder}/mosquitto.log")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        if not wait_for(listening, timeout, 0.02):
            raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait(10)
        self.process = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
