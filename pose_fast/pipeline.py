"""Threads and back-pressure between capture, inference, decoding, overlay and the sinks.

::

    capture thread ──► FrameRing slot ──► feeder thread ──► engine.submit(slot)     (N requests in flight)
                                                              │ OpenVINO callback thread: decode → Poses
    run() (the calling thread) ◄── results, reordered ◄───────┘
        tracker → render on the slot → every sink's write() → release the slot

Every queue is bounded: the ring has a fixed number of slots, the feeder holds at most N requests in flight, and a
slot comes back to capture only after the last sink has written it. No frame is copied: the engine reads the slot,
the renderer draws on it and the sinks show or encode it.

Modes
-----
``throughput``
    Every frame, in order, with as many requests in flight as the engine has: for files.
``latency``
    One request in flight (several on a Neural Compute Stick 2, ``engine.latency_requests``: the stick pipelines
    them, and each is still given the newest frame). A live source (camera, stream) is read continuously and the
    newest frame wins: a frame that is not picked up before the next one arrives is dropped
    (``stats()["dropped"]``). A file is read on demand, just before its inference, so its frames are never stale
    and none is dropped.

Motion gate
-----------
On a live source (``motion_gate``; on by default for cameras and streams) the feeder asks a
:class:`~pose_fast.motion.MotionGate` about each frame before submitting it: while nobody is in view (no pose on
the last inferred frame, nobody tracked) and nothing moves, the frame skips inference and goes to the sinks at
once, in order, without people and with the overlay status ``idle: no motion``; the tracker is not fed such
frames (nobody is there to lose). Motion, or a second without inference, runs it again.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .capture import Capture
from .engines.contract import MODES, InferenceEngine
from .errors import PipelineError
from .frames import FrameRing, FrameSlot, FrameSource
from .motion import IDLE_STATUS, MotionGate
from .people import PersonFilter
from .poses import Poses
from .render import Renderer, order_numbers
from .sinks import StopPipeline

__all__ = ["Pipeline", "FrameResult", "MODES", "STAGES", "PipelineError"]

#: Per-frame timings (ms) in every FrameResult and in stats(); ``latency`` is capture done -> overlay done.
STAGES = ("capture", "inference", "decode", "render", "latency")
_POLL = 0.1  # s: how often blocked threads look at the stop flag
_HISTORY = 1 << 15  # frames of timings kept for percentiles (a fixed array: memory stays flat)
_IDLE = object()  # a result entry's poses: the motion gate skipped inference on this frame


@dataclass
class FrameResult:
    """One processed frame, handed to every sink in order. ``frame`` is the annotated ring slot: valid only during
    ``write()``; copy or encode it there, keep no reference. ``poses`` are the people (``people`` of them);
    ``fragments`` the decoded poses that are not (see :mod:`pose_fast.people`); ``inferred`` is False on a frame the
    motion gate let through without inference."""

    index: int
    timestamp: float
    frame: np.ndarray
    poses: Poses
    track_ids: Optional[np.ndarray]
    timings: Dict[str, float]
    fps: float
    inference_ms: float
    people: int
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slot: Optional[FrameSlot] = None
    sequence: int = 0
    fragments: Poses = field(default_factory=Poses.empty)
    inferred: bool = True  # False: the motion gate skipped inference (nobody in view, nothing moved)


class _Series:
    """Fixed-size history of per-frame timings for p50/p99 (oldest overwritten after ``_HISTORY`` frames)."""

    def __init__(self, stages: Sequence[str], capacity: int = _HISTORY):
        self.stages = tuple(stages)
        self.data = np.zeros((len(self.stages), capacity), np.float64)
        self.sums = np.zeros(len(self.stages), np.float64)
        self.count = 0

    def add(self, timings: Dict[str, float]) -> None:
        col = self.count % self.data.shape[1]
        for i, stage in enumerate(self.stages):
            value = float(timings.get(stage, 0.0))
            self.data[i, col] = value
            self.sums[i] += value
        self.count += 1

    def summary(self) -> Dict[str, Dict[str, float]]:
        n = min(self.count, self.data.shape[1])
        out = {}
        for i, stage in enumerate(self.stages):
            if n:
                p50, p99 = np.percentile(self.data[i, :n], (50, 99))
                out[stage] = {"p50": float(p50), "p99": float(p99), "mean": float(self.sums[i] / self.count)}
            else:
                out[stage] = {"p50": 0.0, "p99": 0.0, "mean": 0.0}
        return out


class Pipeline:
    """Capture → inference → decode → tracker → overlay → sinks, overlapped, in frame order.

    Parameters
    ----------
    source : FrameSource
    engine : pose_fast.engines.contract.InferenceEngine
        Prepared here for the source's frame size.
    decoder : callable, optional
        ``decoder(heatmaps, pafs, frame_size=(w, h)) -> Poses``; default :class:`pose_fast.decoding.Decoder` (one
        per OpenVINO callback thread). A given decoder is called under a lock, and its results are copied (it may
        reuse its buffers, and the tracker smooths keypoints in place) unless it has ``fresh_arrays = True``, as
        ``Decoder`` has: new keypoint and score arrays on every call.
    tracker : pose_fast.tracking.Tracker, optional
        When given, ``update()`` runs on every frame in order; its ids are drawn and passed on as ``track_ids``,
        and ``close()`` runs at the end.
    sinks : list
        Objects with ``write(result)``; the pipeline does not close them.
    mode : {"throughput", "latency"}
    renderer : Renderer, optional
        Default ``Renderer()``; ``False`` draws nothing.
    limit : int, optional
        Stop after this many processed frames.
    loop : bool
        Restart files at their end (until ``limit`` or :meth:`stop`).
    ring_size : int, optional
        Slots in the frame ring; default: requests in flight + 4.
    person_filter : PersonFilter, optional
        Which decoded poses are people (counted, tracked, passed on as ``poses``); the others are drawn faintly
        and passed on as ``fragments``. Default ``PersonFilter()``.
    events : pose_fast.events.EventRecorder, optional
        The recorder the tracker's ``on_event`` feeds: it becomes the last sink (each event gets its frame, drawn,
        as a snapshot), and the exits the pipeline forces get their reason: ``stream lost`` when a
        :class:`~pose_fast.supervisor.SupervisedSource` loses its stream (the tracks end then, and new people get
        new ids after the reconnect), ``run ended`` at the end.
    motion_gate : bool or MotionGate, optional
        Skip inference while nobody is in view and nothing moves (see *Motion gate* above). Default (None): on
        for cameras and streams; ``True``: on for any live source (also a file played at its own rate), ignored
        on one that is not live; ``False``: off. A :class:`~pose_fast.motion.MotionGate` sets its parameters.
    """

    def __init__(self, source: FrameSource, engine: InferenceEngine, decoder=None, tracker=None, sinks: Sequence = (),
                 mode: str = "throughput", renderer: Optional[Renderer] = None, limit: Optional[int] = None,
                 loop: bool = False, ring_size: Optional[int] = None,
                 person_filter: Optional[PersonFilter] = None, events=None, motion_gate=None):
        if mode not in MODES:
            raise PipelineError(f"unknown mode {mode!r}: use latency or throughput")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise PipelineError(f"limit must be a positive number of frames, got {limit!r}")
        self.source = source
        self.engine = engine
        self.tracker = tracker
        self.sinks = list(sinks)
        self.events = events
        if events is not None:
            self.sinks.append(events.attach())
        self._epoch = getattr(source, "epoch", 0)  # a SupervisedSource's losses so far
        self.mode = mode
        self.renderer = Renderer() if renderer is None else renderer
        self.person_filter = PersonFilter() if person_filter is None else person_filter
        self.limit = limit
        self.loop = bool(loop)
        self._user_decoder = decoder
        self._copy_results = decoder is not None and getattr(decoder, "fresh_arrays", False) is not True
        self._decoder_lock = threading.Lock()
        self._local = threading.local()
        engine.prepare(source.width, source.height)  # compiles; the request count is known only after this
        if mode == "latency":  # one request, or the few a Neural Compute Stick 2 pipelines
            self.in_flight = max(1, int(engine.latency_requests))
        else:
            self.in_flight = max(1, int(engine.num_requests))
        self.ring = FrameRing(ring_size or self.in_flight + 4, source.shape)
        if motion_gate is None:
            motion_gate = source.kind != "file"
        if not source.live or motion_gate is False:
            self.motion_gate: Optional[MotionGate] = None
        else:
            self.motion_gate = motion_gate if isinstance(motion_gate, MotionGate) else MotionGate(source.shape)
        # someone in view on the last inferred frame (the motion gate infers every frame then); the first frame
        # is always inferred, and the frames that follow it are compared with it until its result is in
        self._occupied = False
        # the gate's clock: media time for a file (read at any pace), the capture time for cameras and streams
        self._media_fps = source.fps if source.kind == "file" and source.fps else None
        self._warm_up()
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._error_lock = threading.Lock()
        self._slots_in_flight = threading.Semaphore(self.in_flight)
        if mode == "throughput":
            capture_mode = "in order"
        else:  # latency: the newest frame of a live source; a file's next frame just in time
            capture_mode = "newest" if source.live else "on demand"
        self.capture = Capture(source, self.ring, self._stop, capture_mode, loop=self.loop, limit=limit, poll=_POLL)
        self._results: Dict[int, tuple] = {}
        self._results_cond = threading.Condition()
        self._submitted = 0
        self._feeder_done = False
        self._threads: List[threading.Thread] = []
        self._runner: Optional[threading.Thread] = None
        self._series = _Series(STAGES)
        self._recent = collections.deque(maxlen=32)
        self._started_at = None
        self._finished_at = None
        self.frames_delivered_seq = 0
        self.frames = 0
        self.engine_dropped = 0  # frames the engine could not infer (a remote server lost or too slow)
        self.people_total = 0
        self.people_max = 0
        self.last_people = 0
        self.last_index = -1
        self.last_timestamp = 0.0
        self.stop_reason = None
        self._ran = False

    # -- control ---------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to end (any thread): no new frames are submitted; those in flight are still delivered."""
        if self.stop_reason is None:
            self.stop_reason = "stopped"
        self._stop.set()
        interrupt = getattr(self.source, "interrupt", None)  # a SupervisedSource waiting to reconnect
        if interrupt is not None:
            interrupt()
        self.capture.wake()
        with self._results_cond:
            self._results_cond.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _fail(self, exc: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = exc
        self.stop_reason = "error"
        self.stop()

    def start(self) -> Pipeline:
        """Run in a background thread; see :meth:`join` and :meth:`stop`."""
        def target():
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - kept for join()
                with self._error_lock:
                    if self._error is None:
                        self._error = exc

        self._runner = threading.Thread(target=target, name="pipeline", daemon=True)
        self._runner.start()
        return self

    def join(self, timeout: Optional[float] = None) -> dict:
        """Wait for a :meth:`start`-ed run; re-raise its error; return :meth:`stats`."""
        if self._runner is not None:
            self._runner.join(timeout)
            if self._runner.is_alive():
                return self.stats()
        if self._error is not None:
            raise self._error
        return self.stats()

    # -- the run ---------------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Process the source until its end, ``limit``, :meth:`stop` or an error (re-raised here); return stats.

        KeyboardInterrupt (or SystemExit) stops the run cleanly (frames in flight are delivered) and is re-raised.
        """
        if self._ran:
            raise PipelineError("a Pipeline runs once: make a new one")
        self._ran = True
        self.engine.set_callback(self._on_result)
        if self.capture.threaded:
            self._spawn(self.capture.run, "capture")
        self._spawn(self._feed, "feeder")
        self._started_at = time.perf_counter()
        interrupted = None
        try:
            self._deliver()
        except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C, or SIGTERM under events.exit_on_sigterm()
            interrupted = exc
            self.stop_reason = "interrupted"
            self.stop()
            try:
                self._deliver()  # frames already in flight
            except BaseException:  # noqa: BLE001
                pass
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            self._finish()
        if interrupted is not None:
            raise interrupted
        if self._error is not None:
            raise self._error
        return self.stats()

    def _spawn(self, target, name: str) -> None:
        def guarded():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by run()
                self._fail(exc)
            finally:
                if name == "feeder":
                    with self._results_cond:
                        self._feeder_done = True
                        self._results_cond.notify_all()

        thread = threading.Thread(target=guarded, name=f"pipeline-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _finish(self) -> None:
        try:
            self._stop.set()
            self.ring.close()
            self.capture.wake()
            for thread in self._threads:
                thread.join(timeout=10)
            try:
                self.engine.wait_all()
            except BaseException as exc:  # noqa: BLE001
                self._fail(exc)
            # give back whatever is still held (results of a stopped run, frames never submitted)
            with self._results_cond:
                leftovers = [entry[0] for entry in self._results.values()]
                self._results.clear()
            leftovers += self.capture.leftovers()
            for slot in leftovers:
                if slot.refs > 0:
                    self.ring.release(slot)
        finally:  # even when Ctrl-C or SIGTERM interrupts the joins: everyone still in view exits
            if self.tracker is not None and self.frames:
                try:
                    self._close_tracks("run ended", self.last_timestamp)
                except BaseException as exc:  # noqa: BLE001
                    self._fail(exc)
            if self.events is not None:
                try:
                    self.events.flush()
                except BaseException as exc:  # noqa: BLE001
                    self._fail(exc)
            self._finished_at = time.perf_counter()
            if self.stop_reason is None:
                self.stop_reason = "limit" if self.limit is not None and self.frames >= self.limit else "end"

    # -- inference -------------------------------------------------------------------------------------------------
    def _feed(self) -> None:
        while not self._stop.is_set():
            if self.limit is not None and self._submitted >= self.limit:
                break
            while not self._slots_in_flight.acquire(timeout=_POLL):
                if self._stop.is_set():
                    return
            slot = self.capture.next()
            if slot is None:
                self._slots_in_flight.release()
                break
            if self._stop.is_set():
                self._slots_in_flight.release()
                self.ring.release(slot)
                break
            seq = self._submitted
            if self.motion_gate is not None and not self._gate(slot):
                with self._results_cond:  # straight to the sinks, in order: no inference, no decode
                    self._results[seq] = (slot, _IDLE, 0.0, 0.0, None)
                    self._submitted += 1
                    self._results_cond.notify_all()
                self._slots_in_flight.release()
                continue
            try:
                self.engine.submit(slot.array, (seq, slot))
            except BaseException:
                self._slots_in_flight.release()
                self.ring.release(slot)
                raise
            with self._results_cond:
                self._submitted += 1

    def _gate(self, slot: FrameSlot) -> bool:
        """The motion gate's answer for this slot: True to infer."""
        now = slot.frame_index / self._media_fps if self._media_fps else slot.captured_at
        return self.motion_gate.should_infer(slot.array, now, self._occupied)

    def _warm_up(self) -> None:
        """Pay the first calls before frame 0, not on it: OpenCV's font and anti-aliasing (the renderer), the
        decoder's import and its kernel for this output size (the default decoder, on an all-zero output)."""
        if self.renderer:
            self.renderer.warm_up(self.source.shape)
        if self._user_decoder is None and self.engine.output_size:
            width, height = self.engine.output_size
            self._decoder()(np.zeros((19, height, width), np.float32), np.zeros((38, height, width), np.float32),
                            frame_size=self.source.size)

    def _decoder(self):
        if self._user_decoder is not None:
            return self._user_decoder
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            from .decoding import Decoder

            decoder = self._local.decoder = Decoder()
        return decoder

    def _on_result(self, heatmaps, pafs, userdata, infer_ms) -> None:
        """OpenVINO callback thread: decode now (the output arrays are valid only during this call)."""
        seq, slot = userdata
        try:
            start = time.perf_counter()
            if heatmaps is None:  # a remote engine dropped the frame (server lost, request timed out)
                poses = None
            elif self._user_decoder is not None:
                with self._decoder_lock:
                    poses = self._user_decoder(heatmaps, pafs, frame_size=self.source.size)
            else:
                poses = self._decoder()(heatmaps, pafs, frame_size=self.source.size)
            if poses is not None and self._copy_results:  # own the arrays (see the decoder parameter)
                poses = Poses(np.array(poses.keypoints, np.float32), np.array(poses.scores, np.float32))
            decode_ms = (time.perf_counter() - start) * 1000.0
            entry = (slot, poses, float(infer_ms), decode_ms, None)
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            entry = (slot, None, float(infer_ms), 0.0, exc)
        with self._results_cond:
            self._results[seq] = entry
            self._results_cond.notify_all()
        self._slots_in_flight.release()

    # -- output ----------------------------------------------------------------------------------------------------
    def _deliver(self) -> None:
        """In the calling thread: take results in order; track, draw, write to every sink, release the slot."""
        while True:
            with self._results_cond:
                seq = self.frames_delivered_seq
                while seq not in self._results:
                    if self._feeder_done and seq >= self._submitted:
                        return
                    if self._error is not None:
                        return
                    if seq >= self._submitted and getattr(self.source, "epoch", 0) != self._epoch:
                        break  # the stream was lost and every frame before is delivered: end the tracks now
                    self._results_cond.wait(_POLL)
                if seq not in self._results:
                    self._stream_lost()
                    continue
                # count it first: were Ctrl-C or SIGTERM to land between the two, the next _deliver() (frames in
                # flight) would otherwise wait forever for a frame already taken
                self.frames_delivered_seq = seq + 1
                entry = self._results.pop(seq)
            slot, poses, infer_ms, decode_ms, exc = entry
            try:
                if exc is not None:
                    raise exc
                self._deliver_one(seq, slot, poses, infer_ms, decode_ms)
            except StopPipeline:  # a sink quits (q in the window): now, frames in flight are not shown
                self.stop_reason = "quit"
                self.stop()
                return
            finally:
                self.ring.release(slot)

    def _stream_lost(self) -> None:
        """The source lost its stream (and may be back): the people in view exit at the loss."""
        self._epoch = getattr(self.source, "epoch", 0)
        if self.tracker is not None and self.frames:
            self._close_tracks("stream lost", getattr(self.source, "lost_at", None) or time.time())

    def _close_tracks(self, reason: str, timestamp: float) -> None:
        if self.events is None:
            self.tracker.close(self.last_index, timestamp)
            return
        with self.events.ending(reason):
            self.tracker.close(self.last_index, timestamp)

    def _deliver_one(self, seq: int, slot: FrameSlot, poses: Optional[Poses], infer_ms: float,
                     decode_ms: float) -> None:
        if slot.epoch > self._epoch:  # the first frame after a reconnection
            self._stream_lost()
        status = self.engine.status_message or getattr(self.source, "status_message", None) or None
        inferred = True
        if poses is _IDLE:  # the motion gate skipped it: nobody was in view; the tracker is not fed
            poses = fragments = Poses.empty()
            labels = np.zeros(0, np.int64)
            track_ids = None if self.tracker is None else labels
            status = f"{status}  {IDLE_STATUS}" if status else IDLE_STATUS
            inferred = False
        elif poses is None:  # dropped by the engine: shown without people; the tracker skips it (no false exits)
            self.engine_dropped += 1
            poses = fragments = Poses.empty()
            labels = np.zeros(0, np.int64)
            track_ids = None if self.tracker is None else labels
        else:
            self._occupied = len(poses) > 0  # read by the motion gate in the feeder thread
            poses, fragments = self.person_filter.split(poses)
            if self.tracker is not None:
                track_ids = labels = np.asarray(self.tracker.update(poses, slot.frame_index, slot.timestamp,
                                                                         media_time=slot.media_time))
                self._occupied = self._occupied or self.tracker.people_count > 0
            else:
                track_ids, labels = None, order_numbers(poses.keypoints)
        now = time.perf_counter()
        self._recent.append(now)
        fps = self._fps()
        people = len(poses)
        start = time.perf_counter()
        if self.renderer:
            self.renderer.draw(slot.array, poses, labels, inference_ms=infer_ms if inferred else None, fps=fps,
                               people=people, status=status, fragments=fragments)
        done = time.perf_counter()
        timings = {"capture": slot.capture_ms, "inference": infer_ms, "decode": decode_ms,
                   "render": (done - start) * 1000.0, "latency": (done - slot.captured_at) * 1000.0}
        result = FrameResult(index=slot.frame_index, timestamp=slot.timestamp, frame=slot.array, poses=poses,
                             track_ids=track_ids, timings=timings, fps=fps, inference_ms=infer_ms, people=people,
                             labels=labels, slot=slot, sequence=seq, fragments=fragments, inferred=inferred)
        self._series.add(timings)
        self.people_total += people
        self.people_max = max(self.people_max, people)
        self.last_people = people
        self.last_index, self.last_timestamp = slot.frame_index, slot.timestamp
        for sink in self.sinks:
            sink.write(result)
        self.frames += 1  # once every sink has it: Ctrl-C or SIGTERM mid-write leaves the count equal to the files'

    def _fps(self) -> float:
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else 0.0

    # -- numbers ---------------------------------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Frames of a live source replaced by a newer one before inference (latency mode)."""
        return self.capture.dropped

    def stats(self) -> dict:
        """frames, dropped, elapsed_s, fps (mean), inference_ms (mean), people (last frame), people_max,
        people_mean, stages ({stage: {p50, p99, mean}}), and flat ``<stage>_p50`` / ``<stage>_p99`` (ms)."""
        end = self._finished_at or time.perf_counter()
        elapsed = (end - self._started_at) if self._started_at else 0.0
        stages = self._series.summary()
        out = {
            "frames": self.frames,
            "dropped": self.dropped,
            "engine_dropped": self.engine_dropped,
            "elapsed_s": elapsed,
            "fps": self.frames / elapsed if elapsed > 0 else 0.0,
            "inference_ms": stages["inference"]["mean"],
            "people": self.last_people,
            "people_max": self.people_max,
            "people_mean": self.people_total / self.frames if self.frames else 0.0,
            "mode": self.mode,
            "in_flight": self.in_flight,
            "stop_reason": self.stop_reason,
            "inference_skipped": self.motion_gate.skipped if self.motion_gate is not None else 0,
            "stages": stages,
        }
        for stage, values in stages.items():
            out[f"{stage}_p50"] = values["p50"]
            out[f"{stage}_p99"] = values["p99"]
        return out
