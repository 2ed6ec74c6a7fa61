"""One live stream: :class:`Stream` runs the pipeline of one (source, device) in its own thread; a
:class:`Subscription` is one viewer of it (:class:`MjpegBody`: that viewer as a WSGI response body)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator, List, Optional, Protocol

from pose_fast.errors import PoseFastError, first_line

from .broadcaster import MjpegBroadcaster, mjpeg_part

log = logging.getLogger(__name__)

__all__ = ["Stream", "Subscription", "MjpegBody", "StreamError", "StreamOwner", "RELEASE_TIMEOUT"]

_WAIT = 0.25  # s: how often a waiting viewer checks that its connection and its stream are still alive
#: s a new stream waits for a stopping one to close the same source or device (a remote request ends within 10 s).
RELEASE_TIMEOUT = 15.0


class StreamError(PoseFastError, RuntimeError):
    """A stream cannot start or has stopped with an error; the message is one line for people. ``status``: the
    HTTP status that says it (503 unavailable, 409 in conflict with another viewer's choice)."""

    def __init__(self, message: str, status: int = 503):
        super().__init__(message)
        self.status = status


class StreamOwner(Protocol):
    """What a :class:`Stream` and its :class:`Subscription` ask of the registry that made them
    (:class:`~pose_fast.webapp.streams.StreamManager`)."""

    jpeg_quality: int

    def open_source(self, source: str): ...

    def open_engine(self, device: str, source: str = ""): ...

    def make_pipeline(self, stream: Stream, source, engine): ...

    def unsubscribe(self, stream: Stream, subscription: Optional[Subscription] = None) -> None: ...

    def _ended(self, stream: Stream) -> None: ...  # the stream's thread has closed its source and engine


class Stream:
    """One pipeline for one (source, device): opened, run and closed in its own threads.

    A ``pinned`` stream is a camera's: it runs from start-up whether or not anyone watches, and keeps itself
    running: a camera that cannot be opened, or a pipeline that fails, is tried again with backoff (state
    ``reconnecting``, ``error`` says why) until :meth:`stop`; a stream that stalls is reopened by its
    :class:`~pose_fast.supervisor.SupervisedSource` without the pipeline stopping.
    """

    def __init__(self, manager: StreamOwner, source: str, device: str, pinned: bool = False):
        self.manager = manager
        self.source = source
        self.device = device
        self.key = (source, device)
        self.pinned = bool(pinned)
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
        return self.state in ("starting", "running", "reconnecting")

    def _fail(self, message: str) -> None:
        self.error = message
        self.state = "failed"
        log.warning("stream %s on %s failed: %s", self.source, self.device, message)

    def _run(self) -> None:
        if self.pinned:
            self._run_always()
            return
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
                engine = self.manager.open_engine(self.device, self.source)
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
            _close(engine)
            _close(source)
            self.released.set()
            self._ready.set()
            self.manager._ended(self)

    def _run_always(self) -> None:
        """A camera's stream: (re)open, run, and on any failure wait (backoff) and start again, until stopped."""
        from pose_fast.supervisor import Backoff

        backoff = Backoff()
        engine = None
        try:
            self._wait_for_release()
            while not self._stop.is_set():
                source = None
                try:
                    source = self.manager.open_source(self.source)
                    if engine is None and not self._stop.is_set():
                        engine = self.manager.open_engine(self.device, self.source)
                    if not self._stop.is_set():
                        self.pipeline = self.manager.make_pipeline(self, source, engine)
                        self.engine_text = engine.describe() if hasattr(engine, "describe") else self.device
                except Exception as exc:  # noqa: BLE001 - a camera that is down now may be back later
                    self._down(first_line(exc))
                    _close(source)
                    self._stop.wait(backoff.next())
                    continue
                if self._stop.is_set():
                    _close(source)
                    break
                backoff.reset()
                if self.state == "reconnecting":
                    log.warning("camera %s is running (after: %s)", self.source, self.error)
                self.state, self.error = "running", None
                if self.ready_s is None:
                    self.ready_s = time.time() - self.started_at
                self._ready.set()
                try:
                    self.pipeline.run()
                except Exception as exc:  # noqa: BLE001 - e.g. the device went away: start again with a new engine
                    self._down(f"the pipeline stopped: {first_line(exc)}")
                    _close(engine)
                    engine = None
                finally:
                    _close(source)
                if not self._stop.is_set():
                    self._stop.wait(backoff.next())
        finally:
            self.state = "stopped"
            self.stopped_at = time.time()
            self.broadcaster.close()
            _close(engine)
            self.released.set()
            self._ready.set()
            self.manager._ended(self)

    def _down(self, message: str) -> None:
        if message != self.error:  # once per cause, not at every retry
            log.warning("camera %s is not running: %s; trying again", self.source, message)
        self.error = message
        self.state = "reconnecting"
        self._ready.set()  # a viewer waiting for it gets the reason now

    def health(self) -> dict:
        """``state`` (running, reconnecting, starting, stopped, failed), ``error``, and for a camera's stream its
        source's numbers: ``last_frame_s`` (seconds since its last frame), ``losses``, ``reconnects``."""
        out = {"state": self.state, "error": self.error, "last_frame_s": None, "losses": 0, "reconnects": 0}
        pipe = self.pipeline
        source_health = getattr(pipe.source, "health", None) if pipe is not None else None
        if source_health is not None and self.state == "running":
            health = source_health()
            out.update(last_frame_s=health["last_frame_s"], losses=health["losses"],
                       reconnects=health["reconnects"])
            if health["state"] == "reconnecting":
                out.update(state="reconnecting", error=health["last_error"])
        return out

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
        health = self.health()
        return {
            "source": self.source,
            "device": self.device,
            "state": health["state"],
            "error": health["error"],
            "always_on": self.pinned,
            "last_frame_s": health["last_frame_s"],
            "reconnects": health["reconnects"],
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


def _close(thing) -> None:
    if thing is not None:
        try:
            thing.close()
        except Exception:  # noqa: BLE001 - closing what already failed
            pass


class Subscription:
    """One viewer of a stream: iterate :meth:`frames`; :meth:`close` unsubscribes (idempotent).

    ``client`` is the viewer's address (slots are shared fairly between addresses); ``hang_up``, when the server
    offers one, closes the viewer's connection from another thread: :meth:`evict` uses it to take the slot (and
    the server thread) back from a viewer that stopped reading."""

    def __init__(self, manager: StreamOwner, stream: Stream, client: str = "",
                 hang_up: Optional[Callable[[], None]] = None):
        self.manager = manager
        self.stream = stream
        self.client = client
        self.hang_up = hang_up
        self.sent = 0
        self.sequence = 0  # the broadcaster's number of the last frame given
        self.since = time.monotonic()
        self.handed_at: Optional[float] = None  # a frame was handed to the server and not yet taken by the viewer
        self.evicted = False
        self._closed = False
        self._lock = threading.Lock()

    def stalled_for(self, now: float) -> float:
        """Seconds the viewer has not taken the frame handed to it (0 while it keeps up)."""
        handed = self.handed_at
        return 0.0 if handed is None else now - handed

    def evict(self) -> None:
        """Take the slot back: close the connection (the blocked server thread then ends this subscription)."""
        self.evicted = True
        if self.hang_up is not None:
            self.hang_up()

    def frames(self, disconnected: Optional[Callable[[], bool]] = None) -> Iterator[bytes]:
        """JPEG frames as they come: each newer than the last one given; ends when the stream ends or
        ``disconnected()`` says the client has gone."""
        b = self.stream.broadcaster
        seq = b.start_seq()
        try:
            while not self._closed and not self.evicted:
                jpeg, seq = b.wait_newer(seq, _WAIT)
                if disconnected is not None and disconnected():
                    return
                if jpeg is None:
                    if not self.stream.alive or b.closed:
                        return
                    continue
                self.sent += 1
                self.sequence = seq
                self.handed_at = time.monotonic()
                yield jpeg  # returns once the server has taken it; a viewer that stops reading blocks it
                self.handed_at = None
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
        self.manager.unsubscribe(self.stream, self)

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
