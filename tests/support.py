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

__all__ = ["wait_for", "running_server", "make_v1_database", "Mosquitto", "MOSQUITTO", "free_port"]


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
