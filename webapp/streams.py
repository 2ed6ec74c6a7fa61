"""Live streams for the web app: one pipeline per (source, device), shared by every viewer, MJPEG broadcast.

::

    StreamManager ── start_cameras() ──────────► Stream per camera (pinned: always on, watched or not)
                 └── subscribe("demo", "CPU") ──► Stream (started on the first viewer)
                                                    FrameSource → Engine → Pipeline → MjpegBroadcaster (a sink)
    viewer 1 ◄── Subscription.frames() ◄──┐            │ one JPEG per frame, only while someone watches
    viewer 2 ◄── Subscription.frames() ◄──┴── Condition ┘

- Each configured camera's :class:`Stream` runs from start-up, records its events whether or not anyone watches,
  and keeps itself running (:mod:`pose_fast.supervisor`); viewers attach to it. Asking for it on another device
  restarts it there when nobody else watches it, and is refused (409) when someone does.
- The demo video's :class:`Stream` starts when its first viewer arrives and stops ``grace`` seconds after the last
  one leaves (a reload or a quick switch back does not recompile the model).
- :class:`MjpegBroadcaster` is a pipeline sink: it JPEG-encodes each annotated frame once, whatever the number of
  viewers, and only while at least one watches. Viewers wait on a condition for a frame newer than the last they
  sent; a slow viewer skips frames and never holds up the pipeline or the other viewers. A new viewer (or a
  snapshot) gets the cached JPEG only if it shows the newest frame; after a spell with nobody watching it waits for
  the next frame (the annotated frame lives in a ring slot that is reused, so it cannot be encoded later).
- Everything runs in this process, in threads: an OpenVINO device (an NCS2 above all) cannot be shared between
  processes. A stream that is stopping still holds its source and engine until its thread closes them; a new stream
  on the same source or device waits for that (up to ``RELEASE_TIMEOUT``), so a camera or an NCS2 is not opened
  twice.

This module is the registry, :class:`StreamManager`; :mod:`~pose_fast.webapp.stream` has :class:`Stream` and
:class:`Subscription`, :mod:`~pose_fast.webapp.broadcaster` has :class:`MjpegBroadcaster`. The names they export
are importable from here too.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from pose_fast.errors import EventStoreError, first_line

from .broadcaster import BOUNDARY, MjpegBroadcaster, mjpeg_part
from .responses import public_text
from .stream import RELEASE_TIMEOUT, MjpegBody, Stream, StreamError, Subscription

log = logging.getLogger(__name__)

__all__ = ["MjpegBroadcaster", "Stream", "StreamManager", "Subscription", "StreamError", "DEMO",
           "BOUNDARY", "mjpeg_part", "MjpegBody", "RELEASE_TIMEOUT"]

#: The demo video's source name; the others a browser may ask for are the configured cameras' names (never a path
#: or URL).
DEMO = "demo"


class StreamManager:
    """Starts, shares and stops the streams of one web app.

    Parameters
    ----------
    demo_video : path, optional
        The video file behind ``source=demo`` (looped); None: no demo source.
    cameras : list of pose_fast.cameras.CameraConfig
        The named cameras (``source=NAME``); their streams run from :meth:`start_cameras` on.
    device : str
        The device the cameras start on.
    stall_timeout : float
        Seconds without a frame after which a camera's stream is reopened.
    snapshot_keep : int
        Event snapshots kept beside the database (0: none).
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
        Viewers of all streams together (each holds a server thread). When all slots are taken, a newcomer gets
        the slot of a viewer that has not taken a frame for ``viewer_timeout`` s, else of the oldest viewer of
        the address holding more than its fair share of slots, else a :class:`StreamError`.
    viewer_timeout : float
        Seconds a viewer may leave a frame untaken before it loses its slot and its connection (checked every
        second, and whenever the slots are full).
    min_pose_score : float
        The lowest pose score that counts as a person (:class:`pose_fast.people.PersonFilter`).
    motion_gate : bool, optional
        The pipelines' ``motion_gate`` (None: on for the camera, off for the demo video).
    """

    def __init__(self, demo_video=None, cameras: Sequence = (), model=None, input_height: int = 256,
                 database=None, grace: float = 2.0, realtime: bool = True, jpeg_quality: int = 80,
                 server: Optional[str] = None, precision: Optional[str] = None, start_timeout: float = 120.0,
                 max_viewers: int = 24, min_pose_score: Optional[float] = None, viewer_timeout: float = 5.0,
                 device: str = "AUTO", stall_timeout: float = 10.0, snapshot_keep: int = 10000,
                 motion_gate: Optional[bool] = None):
        self.demo_video = Path(demo_video) if demo_video else None
        self.cameras = {camera.name: camera for camera in cameras}
        self.device = device
        self.stall_timeout = float(stall_timeout)
        self.snapshot_keep = int(snapshot_keep)
        self._pinned: Dict[str, Stream] = {}  # camera name -> its always-on stream
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
        self.viewer_timeout = float(viewer_timeout)
        self._subscriptions: List[Subscription] = []
        self._watchdog: Optional[threading.Thread] = None
        self.evicted = 0  # viewers that lost their slot for not reading, or to a fairer share
        self.min_pose_score = min_pose_score
        self.motion_gate = motion_gate
        self._lock = threading.Lock()
        self._streams: Dict[Tuple[str, str], Stream] = {}
        self._last: Dict[Tuple[str, str], Stream] = {}  # the latest stream per key, also once ended
        self._holding: List[Stream] = []  # streams whose thread has not yet closed its source and engine
        self._core = None
        self._devices: Optional[List[str]] = None
        self._store = None
        self._store_error: Optional[str] = None
        self.started = 0  # streams started for viewers (for tests and the benchmark)
        self.cameras_started = 0  # cameras' always-on streams started (at start-up, after a device change)
        self._closed = False
        self.integrations = None  # webapp.integrations.WebIntegrations, set by create_app

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
        """The sources this server was configured with: the cameras' names, then ``demo``."""
        return list(self.cameras) + ([DEMO] if self.demo_video is not None else [])

    def find_source(self, name: str) -> Optional[str]:
        """The configured source ``name`` means (exact, else ignoring case), or None."""
        if name in self.cameras or (name == DEMO and self.demo_video is not None):
            return name
        folded = [s for s in self.sources() if s.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def describe_sources(self) -> Dict[str, dict]:
        """``{name: {"kind", "available", "error", "label", "state"}}`` for the configured sources: each camera as its
        always-on stream is now, the demo video as its file."""
        out = {}
        for name in self.cameras:
            stream = self._pinned.get(name)
            health = stream.health() if stream is not None else {"state": "stopped", "error": None}
            out[name] = {"kind": "camera", "available": health["state"] == "running", "error": health["error"],
                         "label": f"camera {name}", "state": health["state"]}
        if self.demo_video is not None:
            ok = self.demo_video.is_file()
            out[DEMO] = {"kind": "demo", "available": ok, "label": self.demo_video.name, "state": None,
                         "error": None if ok else f"the demo video {self.demo_video.name} is missing on the server"}
        return out

    def health(self) -> Dict[str, dict]:
        """Each camera's :meth:`Stream.health`."""
        with self._lock:
            pinned = {name: self._pinned.get(name) for name in self.cameras}
        return {name: (stream.health() if stream is not None else
                       {"state": "stopped", "error": "not started", "last_frame_s": None, "losses": 0,
                        "reconnects": 0}) for name, stream in pinned.items()}

    # -- building a stream (called in the stream's thread) ---------------------------------------------------------
    def open_source(self, source: str):
        from pose_fast.frames import SourceError, open_source
        from pose_fast.supervisor import SupervisedSource

        camera = self.cameras.get(source)
        if camera is not None:
            first = open_source(camera.spec, read_timeout_ms=int(self.stall_timeout * 1000))
            return SupervisedSource(camera.spec, name=f"camera {camera.name}", stall_timeout=self.stall_timeout,
                                    first=first)
        if source == DEMO:
            if self.demo_video is None:
                raise StreamError("no demo video is configured on this server (start it with --demo-video FILE)")
            try:
                return open_source(str(self.demo_video), realtime=self.realtime)
            except SourceError as exc:
                raise SourceError(f"the demo video cannot be played: {exc}") from None
        raise StreamError(f"unknown source {source!r}: use {' or '.join(self.sources()) or 'none'}")

    def open_engine(self, device: str, source: str = ""):
        from pose_fast.engines import open_engine

        camera = self.cameras.get(source)
        height = camera.input_height if camera is not None and camera.input_height else self.input_height
        if self.server:  # the server runs its own model on its own device
            return open_engine(server=self.server, input_height=height, mode="latency")
        return open_engine(model=self.model, device=device, precision=self.precision, input_height=height,
                           mode="latency", core=self.core)

    def make_pipeline(self, stream: Stream, source, engine):
        from pose_fast.people import MIN_POSE_SCORE, PersonFilter
        from pose_fast.pipeline import Pipeline
        from pose_fast.tracking import Tracker

        recorder = self._recorder(stream)
        tracker = Tracker(on_event=recorder.record if recorder is not None else None)
        sinks = [stream.broadcaster]
        if self.integrations is not None:  # zones, metrics, MQTT people counts (webapp/integrations.py)
            tracker, sinks = self.integrations.wrap(stream, source, tracker, sinks, recorder)
        people = PersonFilter(MIN_POSE_SCORE if self.min_pose_score is None else self.min_pose_score)
        return Pipeline(source, engine, tracker=tracker, sinks=sinks, mode="latency", loop=stream.source == DEMO,
                        person_filter=people, events=recorder, motion_gate=self.motion_gate)

    def source_names(self) -> Dict[str, str]:
        """Each configured source -> the name its events are stored under (a camera's own; the demo's file)."""
        names = {name: name for name in self.cameras}
        if self.demo_video is not None:
            names[DEMO] = self.demo_video.name
        return names

    def _recorder(self, stream: Stream):
        """A new run's recorder for this stream (events under the camera's name, or the demo video's file name)."""
        if not self.database:
            return None
        from pose_fast.events import EventRecorder, EventStore, EventStoreError

        with self._lock:
            if self._store is None and self._store_error is None:
                try:
                    self._store = EventStore(self.database, snapshot_keep=self.snapshot_keep)
                except EventStoreError as exc:
                    self._store_error = first_line(exc)
                    log.warning("events are not recorded: %s", self._store_error)
            store = self._store
        if store is None:
            return None
        name = self.demo_video.name if stream.source == DEMO else stream.source

        def failed(exc):  # a full disk must not stop the live view
            self._store_error = first_line(exc)

        return EventRecorder(store, source=name, device=stream.device, on_error=failed)

    @property
    def events_error(self) -> Optional[str]:
        error = self._store_error
        if error is None and self._store is not None and self._store.error is not None:
            error = first_line(self._store.error)
        return error

    # -- viewers -----------------------------------------------------------------------------------------------
    def subscribe(self, source: str, device: str, wait: bool = True, client: str = "",
                  hang_up: Optional[Callable[[], None]] = None) -> Subscription:
        """Join (or start) the stream of ``source`` on ``device`` as the viewer at address ``client`` (``hang_up``
        closes its connection, see :class:`Subscription`). With ``wait``, return once it runs; raise
        :class:`StreamError` (one line) if it fails to start or no slot can be had."""
        with self._lock:
            if self._closed:
                raise StreamError("the server is shutting down")
            if not self._make_room(client):  # each viewer holds a server thread: keep some for the page
                raise StreamError(f"too many viewers ({self.max_viewers}): close another tab, or start the server "
                                  f"with more --threads")
            if source in self.cameras:
                stream = self._camera_on(source, device)
            else:
                key = (source, device)
                stream = self._streams.get(key)
                if stream is None or not stream.alive:
                    stream = self._start(source, device)
            stream.viewers += 1
            stream.broadcaster.add_viewer()
            if stream._stop_timer is not None:
                stream._stop_timer.cancel()
                stream._stop_timer = None
            sub = Subscription(self, stream, client, hang_up)
            self._subscriptions.append(sub)
            self._start_watchdog()
        if wait:
            if not stream.wait_ready(self.start_timeout):
                sub.close()
                raise StreamError(f"{source} on {device} did not start within {self.start_timeout:g} s; "
                                  f"try another device")
            if stream.state != "running":
                error = stream.error or "the stream stopped"
                sub.close()
                if stream.pinned:
                    error = f"camera {source} is not running now ({error}); it is retried until it is back"
                raise StreamError(error)
        return sub

    def _start(self, source: str, device: str, pinned: bool = False) -> Stream:  # with self._lock held
        stream = Stream(self, source, device, pinned=pinned)
        stream.blockers = [old for old in self._holding if (old.source == source or old.device == device)
                           and not (old.alive and self._streams.get(old.key) is old)]
        self._holding.append(stream)
        self._streams[stream.key] = self._last[stream.key] = stream
        if pinned:
            self._pinned[source] = stream
            self.cameras_started += 1
        else:
            self.started += 1
        stream.start()
        return stream

    def start_cameras(self) -> None:
        """Start every camera's always-on stream on :attr:`device` (those not running yet)."""
        if not self.cameras:
            return
        device = self.device if self.server else self.device_names().get(self.device.upper(), self.device)
        with self._lock:
            if self._closed:
                return
            for name in self.cameras:
                stream = self._pinned.get(name)
                if stream is None or not stream.alive:
                    self._start(name, device, pinned=True)

    def _camera_on(self, name: str, device: str) -> Stream:  # with self._lock held
        """The camera's always-on stream, on ``device``: moved there if nobody else watches it."""
        stream = self._pinned.get(name)
        if stream is not None and stream.alive and stream.device == device:
            return stream
        if stream is not None and stream.alive:
            if stream.viewers:
                raise StreamError(f"camera {name} is being watched on {stream.device} by another viewer; watch it "
                                  f"on {stream.device}, or choose {device} once nobody else watches", status=409)
            log.warning("camera %s moves from %s to %s (asked by a viewer); its events go on under its name",
                        name, stream.device, device)
            self._stop_stream(stream)
        return self._start(name, device, pinned=True)

    def _make_room(self, client: str) -> bool:  # with self._lock held
        """Whether a slot is free for a viewer from ``client``, after evicting a stalled or an unfair one."""
        holding = [s for s in self._subscriptions if not s.evicted]
        if len(holding) < self.max_viewers:
            return True
        now = time.monotonic()
        stalled = max(holding, key=lambda s: s.stalled_for(now))
        if stalled.stalled_for(now) >= self.viewer_timeout:
            self._evict(stalled, "stopped reading")
            return True
        by_client: Dict[str, List[Subscription]] = {}
        for sub in holding:
            by_client.setdefault(sub.client, []).append(sub)
        fair = self.max_viewers / (len(by_client) + (client not in by_client))
        greedy = max(by_client.values(), key=len)
        if len(greedy) > fair and greedy[0].client != client:
            self._evict(min(greedy, key=lambda s: s.since), "more than a fair share of the viewer slots")
            return True
        return False

    def _evict(self, sub: Subscription, why: str) -> None:  # with self._lock held
        log.warning("viewer %s of %s on %s loses its slot: %s", sub.client or "?", sub.stream.source,
                    sub.stream.device, why)
        self.evicted += 1
        sub.evict()

    def _start_watchdog(self) -> None:  # with self._lock held
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch_viewers, name="viewer-watchdog", daemon=True)
            self._watchdog.start()

    def _watch_viewers(self) -> None:
        """Every second: a viewer that has not taken its frame for ``viewer_timeout`` s loses its slot and thread."""
        while True:
            time.sleep(min(1.0, self.viewer_timeout / 2))
            with self._lock:
                if self._closed or not self._subscriptions:
                    self._watchdog = None
                    return
                now = time.monotonic()
                for sub in self._subscriptions:
                    if not sub.evicted and sub.stalled_for(now) >= self.viewer_timeout:
                        self._evict(sub, "stopped reading")
                watched = {id(s.stream): s.stream for s in self._subscriptions if s.stream.pinned}
            for stream in watched.values():  # a camera that gives no frames: its viewers are told why
                health = stream.health()
                if health["state"] == "reconnecting":
                    seen = health["last_frame_s"]
                    stream.broadcaster.show_status([
                        f"camera {stream.source}: reconnecting",
                        public_text(health["error"] or "")[:80],
                        f"last frame {seen:.0f} s ago" if seen is not None else "no frame yet"])

    def unsubscribe(self, stream: Stream, subscription: Optional[Subscription] = None) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            stream.viewers = max(0, stream.viewers - 1)
            stream.broadcaster.remove_viewer()
            if stream.pinned or stream.viewers or not stream.alive or self._streams.get(stream.key) is not stream:
                return  # a camera runs on unwatched
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
        if self._pinned.get(stream.source) is stream:
            del self._pinned[stream.source]
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
        """The current (or last) stream of this key (a camera: its always-on stream, on whichever device), or None
        if it never ran."""
        with self._lock:
            if source in self._pinned:
                return self._pinned[source]
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
            out["viewers_evicted"] = self.evicted
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
            try:
                store.close()
            except EventStoreError as exc:  # e.g. kept in the journal for the next start: say so, no traceback
                log.warning("events: %s", first_line(exc))
        if self.integrations is not None:  # after the store's last commit: MQTT publishes it
            self.integrations.close()

    def reopen(self) -> None:
        """Accept viewers again after :meth:`close` (tests)."""
        with self._lock:
            self._closed = False
