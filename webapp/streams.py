"""Live streams for the web app: one pipeline per (source, device), shared by every viewer, MJPEG broadcast.

::

    StreamManager ── subscribe("demo", "CPU") ──► Stream (started on the first viewer)
                                                    FrameSource → Engine → Pipeline → MjpegBroadcaster (a sink)
    viewer 1 ◄── Subscription.frames() ◄──┐            │ one JPEG per frame, only while someone watches
    viewer 2 ◄── Subscription.frames() ◄──┴── Condition ┘

- A :class:`Stream` starts when its first viewer arrives and stops ``grace`` seconds after the last one leaves
  (a reload or a quick switch back does not recompile the model).
- :class:`MjpegBroadcaster` is a pipeline sink: it JPEG-encodes each annotated frame once, whatever the number of
  viewers, and only while at least one watches. Viewers wait on a condition for a frame newer than the last they
  sent; a slow viewer skips frames and never holds up the pipeline or the other viewers. A new viewer (or a
  snapshot) gets the cached JPEG only if it shows the newest frame; after a spell with nobody watching it waits for
  the next frame (the annotated frame lives in a ring slot that is reused, so it cannot be encoded later).
- Everything runs in this process, in threads: an OpenVINO device (an NCS2 above all) cannot be shared between
  processes. A stream that is stopping still holds its source and engine until its thread closes them; a new stream
  on the same source or device waits for that (up to ``RELEASE_TIMEOUT``), so a camera or an NCS2 is not opened
  twice.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import cv2

from pose_fast.errors import PoseFastError, first_line

log = logging.getLogger(__name__)

__all__ = ["MjpegBroadcaster", "Stream", "StreamManager", "Subscription", "StreamError", "SOURCES",
           "BOUNDARY", "mjpeg_part"]

#: Sources a browser may ask for; the server maps them to what it was configured with (never a path or URL).
SOURCES = ("camera", "demo")
BOUNDARY = "frame"
_WAIT = 0.25  # s: how often a waiting viewer checks that its connection and its stream are still alive
#: s a new stream waits for a stopping one to close the same source or device (a remote request ends within 10 s).
RELEASE_TIMEOUT = 15.0


class StreamError(PoseFastError, RuntimeError):
    """A stream cannot start or has stopped with an error; the message is one line for people."""


def mjpeg_part(jpeg: bytes, sequence: int = 0) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` MJPEG body (``X-Frame-Sequence``: the broadcaster's frame
    number, so a client can see the frames it skipped)."""
    return (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
            + str(len(jpeg)).encode() + b"\r\nX-Frame-Sequence: " + str(sequence).encode() + b"\r\n\r\n"
            + jpeg + b"\r\n")


class MjpegBroadcaster:
    """A pipeline sink keeping the latest annotated frame as JPEG for any number of viewers.

    Parameters
    ----------
    quality : int
        JPEG quality, 1-100.

    Attributes
    ----------
    frames : int
        Frames the pipeline delivered.
    frames_watched : int
        Frames delivered while at least one viewer was subscribed.
    encodes : int
        JPEG encodes done: one per watched frame, whatever the number of viewers (fewer only if one fails).
    """

    def __init__(self, quality: int = 80):
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be 1-100, got {quality}")
        self.params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
        self.cond = threading.Condition()
        self.viewers = 0
        self.jpeg: Optional[bytes] = None
        self.seq = 0  # number of the latest encoded frame (increases by one per encode)
        self.jpeg_frame = 0  # the value of ``frames`` when ``jpeg`` was encoded: current if still equal
        self.frames = 0
        self.frames_watched = 0
        self.encodes = 0
        self.encode_ms = 0.0
        self.fps = 0.0
        self.inference_ms = 0.0
        self.people = 0
        self.frame_index = -1
        self.last_frame_at: Optional[float] = None
        self.size: Optional[Tuple[int, int]] = None
        self.closed = False

    # -- sink side (the pipeline's delivery thread) ------------------------------------------------------------
    def write(self, result) -> None:
        self.frames += 1
        number = self.frames
        self.fps = float(result.fps)
        self.inference_ms = float(result.inference_ms)
        self.people = int(result.people)
        self.frame_index = int(result.index)
        self.last_frame_at = time.time()
        frame = result.frame
        self.size = (int(frame.shape[1]), int(frame.shape[0]))
        if not self.viewers:  # nobody watches: no encode (a racy read is fine, the next frame catches up)
            return
        self.frames_watched += 1
        start = time.perf_counter()
        ok, buf = cv2.imencode(".jpg", frame, self.params)  # the only per-frame copy, done once for everyone
        if not ok:
            return
        jpeg = buf.tobytes()
        with self.cond:
            self.encodes += 1
            self.encode_ms = (time.perf_counter() - start) * 1000.0
            self.jpeg = jpeg
            self.jpeg_frame = number
            self.seq += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- viewer side -------------------------------------------------------------------------------------------
    def add_viewer(self) -> None:
        with self.cond:
            self.viewers += 1

    def remove_viewer(self) -> None:
        with self.cond:
            self.viewers = max(0, self.viewers - 1)
            self.cond.notify_all()

    def start_seq(self) -> int:
        """Where a new viewer starts: before the latest JPEG if it shows the newest delivered frame, else after it
        (a JPEG left from before nobody watched is stale: wait for the next one)."""
        with self.cond:
            current = self.jpeg is not None and self.jpeg_frame == self.frames
            return self.seq - 1 if current else self.seq

    def wait_newer(self, seq: int, timeout: float) -> Tuple[Optional[bytes], int]:
        """The latest JPEG if it is newer than ``seq`` (waiting up to ``timeout`` s for one), else (None, seq)."""
        with self.cond:
            if self.seq <= seq and not self.closed:
                self.cond.wait(timeout)
            if self.seq > seq and self.jpeg is not None:
                return self.jpeg, self.seq
            return None, seq


class Stream:
    """One pipeline for one (source, device): opened, run and closed in its own threads."""

    def __init__(self, manager: StreamManager, source: str, device: str):
        self.manager = manager
        self.source = source
        self.device = device
        self.key = (source, device)
        self.broadcaster = MjpegBroadcaster(quality=manager.jpeg_quality)
        self.state = "starting"  # starting -> running -> stopped | failed
        self.error: Optional[str] = None
        self.viewers = 0  # guarded by the manager's lock
        self.started_at = time.time()
        self.ready_s: Optional[float] = None  # seconds from start to the first frame
        self.stopped_at: Optional[float] = None
        self.engine_text = ""
        self.pipeline = None
        self.released = threading.Event()  # set once this stream's thread has closed its source and engine
        self.blockers: List[Stream] = []  # stopping streams on the same source or device, waited for before opening
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._stop_timer: Optional[threading.Timer] = None
        self._thread = threading.Thread(target=self._run, name=f"stream-{source}-{device}", daemon=True)

    # -- life cycle --------------------------------------------------------------------------------------------
    def start(self) -> Stream:
        self._thread.start()
        return self

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Wait until the stream is running or has failed; False on time-out."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Ask the stream to stop (returns at once; :meth:`join` waits)."""
        self._stop.set()
        pipe = self.pipeline
        if pipe is not None:
            pipe.stop()
        self.broadcaster.close()

    def join(self, timeout: Optional[float] = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "running")

    def _fail(self, message: str) -> None:
        self.error = message
        self.state = "failed"
        log.warning("stream %s on %s failed: %s", self.source, self.device, message)

    def _run(self) -> None:
        from pose_fast.errors import EngineError
        from pose_fast.frames import SourceError

        source = engine = None
        try:
            self._wait_for_release()
            try:
                if self._stop.is_set():
                    return
                source = self.manager.open_source(self.source)
                if self._stop.is_set():
                    return
                engine = self.manager.open_engine(self.device)
                if self._stop.is_set():
                    return
                self.pipeline = self.manager.make_pipeline(self, source, engine)
                self.engine_text = engine.describe() if hasattr(engine, "describe") else self.device
            except (SourceError, EngineError, StreamError, OSError, ValueError) as exc:
                self._fail(first_line(exc))
                return
            except Exception as exc:  # noqa: BLE001 - any failure must reach the page, not hang it
                self._fail(f"the stream could not start ({first_line(exc)})")
                return
            if self._stop.is_set():
                return
            self.state = "running"
            self.ready_s = time.time() - self.started_at
            self._ready.set()
            try:
                self.pipeline.run()
            except Exception as exc:  # noqa: BLE001
                self._fail(f"the stream stopped: {first_line(exc)}")
            else:
                if not self._stop.is_set():
                    self._fail("the source ended")
        finally:
            if self.state != "failed":
                self.state = "stopped"
            self.stopped_at = time.time()
            self.broadcaster.close()
            for thing in (engine, source):
                if thing is not None:
                    try:
                        thing.close()
                    except Exception:  # noqa: BLE001
                        pass
            self.released.set()
            self._ready.set()
            self.manager._ended(self)

    def _wait_for_release(self) -> None:
        """Wait until the stopping streams on this source or device have closed them (a camera or an NCS2 opens
        once), at most ``RELEASE_TIMEOUT`` s; then open anyway (a failure to open reaches the page)."""
        deadline = time.monotonic() + RELEASE_TIMEOUT
        for old in self.blockers:
            while not old.released.wait(_WAIT) and not self._stop.is_set():
                if time.monotonic() > deadline:
                    log.warning("stream %s on %s still holds its source or engine after %g s; opening anyway",
                                old.source, old.device, RELEASE_TIMEOUT)
                    break
        self.blockers = []

    # -- numbers -----------------------------------------------------------------------------------------------
    def stats(self) -> dict:
        b = self.broadcaster
        running = self.state == "running"
        return {
            "source": self.source,
            "device": self.device,
            "state": self.state,
            "error": self.error,
            "fps": round(b.fps, 2) if running else 0.0,
            "inference_ms": round(b.inference_ms, 1) if running else 0.0,
            "people": b.people if running else 0,
            "viewers": self.viewers,
            "frames": b.frames,
            "frames_watched": b.frames_watched,
            "encodes": b.encodes,
            "encode_ms": round(b.encode_ms, 2),
            "frame_size": list(b.size) if b.size else None,
            "engine": self.engine_text,
            "ready_s": None if self.ready_s is None else round(self.ready_s, 3),
            "dropped": self.pipeline.dropped if self.pipeline is not None else 0,
            "engine_dropped": self.pipeline.engine_dropped if self.pipeline is not None else 0,
        }


class Subscription:
    """One viewer of a stream: iterate :meth:`frames` (or :meth:`mjpeg`); :meth:`close` unsubscribes (idempotent)."""

    def __init__(self, manager: StreamManager, stream: Stream):
        self.manager = manager
        self.stream = stream
        self.sent = 0
        self.sequence = 0  # the broadcaster's number of the last frame given
        self._closed = False
        self._lock = threading.Lock()

    def frames(self, disconnected: Optional[Callable[[], bool]] = None) -> Iterator[bytes]:
        """JPEG frames as they come: each newer than the last one given; ends when the stream ends or
        ``disconnected()`` says the client has gone."""
        b = self.stream.broadcaster
        seq = b.start_seq()
        try:
            while not self._closed:
                jpeg, seq = b.wait_newer(seq, _WAIT)
                if disconnected is not None and disconnected():
                    return
                if jpeg is None:
                    if not self.stream.alive or b.closed:
                        return
                    continue
                self.sent += 1
                self.sequence = seq
                yield jpeg
        finally:
            self.close()

    def latest(self, timeout: float) -> Optional[bytes]:
        """The JPEG of the newest frame: the cached one if current, else the next one encoded (waiting up to
        ``timeout`` s)."""
        b = self.stream.broadcaster
        deadline = time.monotonic() + timeout
        start = b.start_seq()
        jpeg, _ = b.wait_newer(start, 0)
        while jpeg is None and self.stream.alive and time.monotonic() < deadline:
            jpeg, _ = b.wait_newer(start, min(_WAIT, max(0.0, deadline - time.monotonic())))
        return jpeg

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.manager.unsubscribe(self.stream)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MjpegBody:
    """A WSGI body iterable of MJPEG parts whose ``close()`` unsubscribes even if iteration never started."""

    def __init__(self, subscription: Subscription, disconnected: Optional[Callable[[], bool]] = None):
        self.subscription = subscription
        self._frames = subscription.frames(disconnected)

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        jpeg = next(self._frames)
        return mjpeg_part(jpeg, self.subscription.sequence)

    def close(self) -> None:
        self._frames.close()
        self.subscription.close()


class StreamManager:
    """Starts, shares and stops the streams of one web app.

    Parameters
    ----------
    demo_video : path, optional
        The video file behind ``source=demo`` (looped); None: no demo source.
    camera : int, optional
        The camera index behind ``source=camera``; None: no camera source.
    model : path, optional
        Model ``.xml``; default: found by :func:`pose_fast.model.resolve_model`.
    input_height : int
        Network input height.
    database : path, optional
        Events database; None: no events recorded.
    grace : float
        Seconds a stream keeps running after its last viewer leaves.
    realtime : bool
        Play the demo video at its own frame rate (like a camera) instead of as fast as inference goes.
    server : str, optional
        A remote engine (``grpc://...``), see :func:`pose_fast.engines.open_engine`.
    max_viewers : int
        Viewers of all streams together; one more gets a :class:`StreamError` (each holds a server thread).
    min_pose_score : float
        The lowest pose score that counts as a person (:class:`pose_fast.people.PersonFilter`).
    """

    def __init__(self, demo_video=None, camera: Optional[int] = 0, model=None, input_height: int = 256,
                 database=None, grace: float = 2.0, realtime: bool = True, jpeg_quality: int = 80,
                 server: Optional[str] = None, precision: Optional[str] = None, start_timeout: float = 120.0,
                 max_viewers: int = 24, min_pose_score: Optional[float] = None):
        self.demo_video = Path(demo_video) if demo_video else None
        self.camera = camera
        self.model = model
        self.input_height = int(input_height)
        self.database = database
        self.grace = float(grace)
        self.realtime = bool(realtime)
        self.jpeg_quality = int(jpeg_quality)
        self.server = server
        self.precision = precision
        self.start_timeout = float(start_timeout)
        self.max_viewers = int(max_viewers)
        self.min_pose_score = min_pose_score
        self._lock = threading.Lock()
        self._streams: Dict[Tuple[str, str], Stream] = {}
        self._last: Dict[Tuple[str, str], Stream] = {}  # the latest stream per key, also once ended
        self._holding: List[Stream] = []  # streams whose thread has not yet closed its source and engine
        self._core = None
        self._devices: Optional[List[str]] = None
        self._store = None
        self._store_error: Optional[str] = None
        self._camera_probe: Tuple[float, Optional[bool], Optional[str]] = (0.0, None, None)
        self._probe_lock = threading.Lock()
        self.started = 0  # streams started (for tests and the benchmark)
        self._closed = False

    # -- what this server offers -------------------------------------------------------------------------------
    @property
    def core(self):
        if self._core is None:
            from pose_fast._ov import Core

            with self._lock:
                if self._core is None:
                    self._core = Core()
        return self._core

    def devices(self) -> List[str]:
        """``AUTO`` and the devices this machine has (``CPU``, ``GPU.0``, ``MYRIAD``...)."""
        if self._devices is None:
            from pose_fast._ov import available_devices

            found = [d for d in available_devices(self.core) if d.upper() != "AUTO"]
            self._devices = ["AUTO"] + found
        return list(self._devices)

    def device_names(self) -> Dict[str, str]:
        """Every accepted ``device-name`` (upper case) -> the device it means. ``GPU`` stands for ``GPU.0``."""
        names = {}
        for device in self.devices():
            names[device.upper()] = device
            family = device.split(".")[0].upper()
            names.setdefault(family, device if family == device.upper() else family)
        return names

    def sources(self) -> List[str]:
        """The sources this server was configured with."""
        out = []
        if self.camera is not None:
            out.append("camera")
        if self.demo_video is not None:
            out.append("demo")
        return out

    def describe_sources(self, probe: bool = True) -> Dict[str, dict]:
        """``{"camera": {"available", "error", "label"}, "demo": {...}}`` for the configured sources."""
        out = {}
        if self.camera is not None:
            available, error = self.camera_available() if probe else (None, None)
            out["camera"] = {"available": available, "error": error, "label": f"camera {self.camera}"}
        if self.demo_video is not None:
            ok = self.demo_video.is_file()
            out["demo"] = {"available": ok, "label": self.demo_video.name,
                           "error": None if ok else f"the demo video {self.demo_video.name} is missing on the server"}
        return out

    def camera_available(self, max_age: float = 10.0) -> Tuple[Optional[bool], Optional[str]]:
        """Whether the camera opens (a running camera stream counts), probed at most every ``max_age`` s."""
        if self.camera is None:
            return False, "no camera is configured on this server"
        with self._lock:
            for stream in self._holding:  # running, or stopping and still holding it: never open the camera twice
                if stream.source == "camera" and stream.state != "failed":
                    return True, None
        with self._probe_lock:
            at, ok, error = self._camera_probe
            if ok is not None and time.monotonic() - at < max_age:
                return ok, error
            from pose_fast.frames import SourceError

            try:
                self.open_source("camera").close()
                ok, error = True, None
            except SourceError:
                ok, error = False, self._no_camera()
            self._camera_probe = (time.monotonic(), ok, error)
            return ok, error

    def _no_camera(self) -> str:
        return (f"no camera on the server: camera {self.camera} cannot be opened (none is connected, it is in "
                f"use, or access is denied); watch the demo video instead")

    # -- building a stream (called in the stream's thread) ---------------------------------------------------------
    def open_source(self, source: str):
        from pose_fast.frames import SourceError, open_source

        if source == "camera":
            if self.camera is None:
                raise StreamError("no camera is configured on this server")
            try:
                return open_source(str(self.camera))
            except SourceError:
                raise SourceError(self._no_camera()) from None
        if source == "demo":
            if self.demo_video is None:
                raise StreamError("no demo video is configured on this server (start it with --demo-video FILE)")
            try:
                return open_source(str(self.demo_video), realtime=self.realtime)
            except SourceError as exc:
                raise SourceError(f"the demo video cannot be played: {exc}") from None
        raise StreamError(f"unknown source {source!r}: use {' or '.join(SOURCES)}")

    def open_engine(self, device: str):
        from pose_fast.engines import open_engine

        if self.server:  # the server runs its own model on its own device
            return open_engine(server=self.server, input_height=self.input_height, mode="latency")
        return open_engine(model=self.model, device=device, precision=self.precision, input_height=self.input_height,
                           mode="latency", core=self.core)

    def make_pipeline(self, stream: Stream, source, engine):
        from pose_fast.people import MIN_POSE_SCORE, PersonFilter
        from pose_fast.pipeline import Pipeline
        from pose_fast.tracking import Tracker

        recorder = self._recorder(stream, source)
        tracker = Tracker(on_event=recorder)
        people = PersonFilter(MIN_POSE_SCORE if self.min_pose_score is None else self.min_pose_score)
        return Pipeline(source, engine, tracker=tracker, sinks=[stream.broadcaster], mode="latency", loop=True,
                        person_filter=people)

    def _recorder(self, stream: Stream, source):
        if not self.database:
            return None
        from pose_fast.events import EventRecorder, EventStore, EventStoreError

        with self._lock:
            if self._store is None and self._store_error is None:
                try:
                    self._store = EventStore(self.database)
                except EventStoreError as exc:
                    self._store_error = first_line(exc)
                    log.warning("events are not recorded: %s", self._store_error)
            store = self._store
        if store is None:
            return None
        name = f"camera {self.camera}" if stream.source == "camera" else self.demo_video.name
        recorder = EventRecorder(store, source=name, device=stream.device)

        def record(*args):
            try:
                recorder.record(*args)
            except EventStoreError as exc:  # a full disk must not stop the live view
                self._store_error = first_line(exc)

        return record

    @property
    def events_error(self) -> Optional[str]:
        error = self._store_error
        if error is None and self._store is not None and self._store.error is not None:
            error = first_line(self._store.error)
        return error

    # -- viewers -----------------------------------------------------------------------------------------------
    def subscribe(self, source: str, device: str, wait: bool = True) -> Subscription:
        """Join (or start) the stream of ``source`` on ``device``. With ``wait``, return once it runs; raise
        :class:`StreamError` (one line) if it fails to start."""
        with self._lock:
            if self._closed:
                raise StreamError("the server is shutting down")
            watching = sum(s.viewers for s in self._streams.values())
            if watching >= self.max_viewers:  # each viewer holds a server thread: keep some for the page
                raise StreamError(f"too many viewers ({watching}): close another tab, or start the server with "
                                  f"more --threads")
            key = (source, device)
            stream = self._streams.get(key)
            if stream is None or not stream.alive:
                stream = Stream(self, source, device)
                stream.blockers = [old for old in self._holding if (old.source == source or old.device == device)
                                   and not (old.alive and self._streams.get(old.key) is old)]
                self._holding.append(stream)
                self._streams[key] = self._last[key] = stream
                self.started += 1
                stream.start()
            stream.viewers += 1
            stream.broadcaster.add_viewer()
            if stream._stop_timer is not None:
                stream._stop_timer.cancel()
                stream._stop_timer = None
        sub = Subscription(self, stream)
        if wait:
            if not stream.wait_ready(self.start_timeout):
                sub.close()
                raise StreamError(f"{source} on {device} did not start within {self.start_timeout:g} s; "
                                  f"try another device")
            if stream.state != "running":
                error = stream.error or "the stream stopped"
                sub.close()
                raise StreamError(error)
        return sub

    def unsubscribe(self, stream: Stream) -> None:
        with self._lock:
            stream.viewers = max(0, stream.viewers - 1)
            stream.broadcaster.remove_viewer()
            if stream.viewers or not stream.alive or self._streams.get(stream.key) is not stream:
                return
            if self.grace <= 0:
                self._stop_stream(stream)
                return
            timer = threading.Timer(self.grace, self._stop_if_unwatched, (stream,))
            timer.daemon = True
            stream._stop_timer = timer
            timer.start()

    def _stop_if_unwatched(self, stream: Stream) -> None:
        with self._lock:
            if stream.viewers or self._streams.get(stream.key) is not stream:
                return
            self._stop_stream(stream)

    def _stop_stream(self, stream: Stream) -> None:  # with self._lock held
        self._streams.pop(stream.key, None)
        if stream._stop_timer is not None:
            stream._stop_timer.cancel()
            stream._stop_timer = None
        stream.stop()

    def _ended(self, stream: Stream) -> None:
        with self._lock:
            if self._streams.get(stream.key) is stream:
                del self._streams[stream.key]
            if stream in self._holding:
                self._holding.remove(stream)

    # -- looking ---------------------------------------------------------------------------------------------------
    def stream(self, source: str, device: str) -> Optional[Stream]:
        """The current (or last) stream of this key, or None if it never ran."""
        with self._lock:
            return self._streams.get((source, device)) or self._last.get((source, device))

    def running(self) -> List[Stream]:
        with self._lock:
            return [s for s in self._streams.values() if s.alive]

    def stats(self, source: str, device: str) -> dict:
        stream = self.stream(source, device)
        if stream is None:
            out = {"source": source, "device": device, "state": "idle", "error": None, "fps": 0.0,
                   "inference_ms": 0.0, "people": 0, "viewers": 0, "frames": 0, "frames_watched": 0,
                   "encodes": 0, "dropped": 0, "engine_dropped": 0}
        else:
            out = stream.stats()
        out["events_error"] = self.events_error
        with self._lock:
            out["watching"] = sum(s.viewers for s in self._streams.values())
        out["max_viewers"] = self.max_viewers
        return out

    # -- shutting down ---------------------------------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Stop every stream, wait for them (and those already stopping) to close, commit the recorded events."""
        with self._lock:
            self._closed = True
            for stream in list(self._streams.values()):
                self._stop_stream(stream)
            streams = list(self._holding)
        for stream in streams:
            stream.join(timeout)
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def reopen(self) -> None:
        """Accept viewers again after :meth:`close` (tests)."""
        with self._lock:
            self._closed = False
