"""The engine contract: what the pipeline, the web app and the benchmarks need of an inference engine.

Two engines implement it, as siblings that never import each other (OpenVINO model_api's adapter contract):
:class:`pose_fast.engines.local.Engine` (OpenVINO in this process) and
:class:`pose_fast.engines.remote.RemoteEngine` (a KServe v2 model server). :func:`pose_fast.engines.open_engine`
picks one.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Protocol, Tuple

import numpy as np

from ..errors import EngineError

__all__ = ["InferenceEngine", "EngineBase", "EngineError", "MODES", "STRIDE", "DEFAULT_INPUT_HEIGHT", "ResultCallback",
           "STATUS_OK", "STATUS_RECONNECTING", "STATUS_CLOSED", "check_frame", "network_size_for"]

#: ``latency``: few requests, the newest frame; ``throughput``: several requests in flight, every frame.
MODES = ("latency", "throughput")
#: The model's output stride: heatmap pixels per network input pixel.
STRIDE = 8
DEFAULT_INPUT_HEIGHT = 256
#: ``status`` values: serving, trying to get a lost server back, closed.
STATUS_OK = "ok"
STATUS_RECONNECTING = "reconnecting"
STATUS_CLOSED = "closed"

#: ``callback(heatmaps (19, h, w) or None, pafs (38, h, w) or None, userdata, infer_ms)``; the arrays are views,
#: valid only during the call; None, None: the engine dropped the frame (a remote server lost or too slow).
ResultCallback = Callable[[Optional[np.ndarray], Optional[np.ndarray], object, float], None]


class EngineBase:
    """What both engines share besides the contract: the context manager, the network size in words, and the
    first error a callback raised in a worker thread, kept for the submitting thread (``_lock`` guards it)."""

    network_size: Optional[Tuple[int, int]] = None
    _callback_error: Optional[BaseException] = None
    _lock: threading.Lock

    def _keep_error(self, exc: BaseException) -> None:
        """Remember the first error of a worker thread for ``submit()`` / ``wait_all()`` to raise."""
        with self._lock:
            if self._callback_error is None:
                self._callback_error = exc

    def _raise_callback_error(self) -> None:
        with self._lock:
            exc, self._callback_error = self._callback_error, None
        if exc is not None:
            raise exc

    def close(self) -> None:  # pragma: no cover - each engine has its own
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _size_text(self) -> str:
        return f"{self.network_size[0]}x{self.network_size[1]}" if self.network_size else "not prepared"


class InferenceEngine(Protocol):
    """What every engine offers. Frames are H×W×3 uint8 BGR as OpenCV reads them, never copied by the caller."""

    mode: str                                   #: one of :data:`MODES`
    device: str                                 #: what it runs on, for people (``CPU``, ``remote host:port``)
    frame_size: Optional[Tuple[int, int]]       #: (w, h) it was prepared for
    network_size: Optional[Tuple[int, int]]     #: (w, h) of the network input
    output_size: Optional[Tuple[int, int]]      #: (w, h) of the heatmaps
    status: str                                 #: one of the ``STATUS_*`` values
    status_message: str                         #: a problem to show on the overlay, or ""

    @property
    def num_requests(self) -> int:
        """Requests :meth:`submit` keeps in flight in throughput mode."""

    @property
    def latency_requests(self) -> int:
        """Requests the pipeline's latency mode keeps in flight (1, or what the device pipelines)."""

    def prepare(self, frame_width: int, frame_height: int) -> None:
        """Get ready for frames of this size (a no-op for the size it has)."""

    def infer(self, frame: np.ndarray) -> tuple:
        """(heatmaps, pafs) of one frame, synchronously."""

    def set_callback(self, callback: ResultCallback) -> None:
        """Where :meth:`submit`'s results go."""

    def submit(self, frame: np.ndarray, userdata=None) -> None:
        """Start one frame; blocks while every request is busy."""

    def wait_all(self) -> None:
        """Wait until every submitted frame has reached the callback."""

    def close(self) -> None:
        """Release the device or the connection."""

    def describe(self) -> str:
        """One line for the summary: device, precision, network size, requests."""


def network_size_for(frame_width: int, frame_height: int, input_height: int = DEFAULT_INPUT_HEIGHT) -> tuple:
    """Network input (width, height) for a source: fixed height, width a multiple of 8 keeping the aspect."""
    if frame_width <= 0 or frame_height <= 0:
        raise ValueError(f"frame size must be positive, got {frame_width}x{frame_height}")
    if input_height <= 0 or input_height % STRIDE:
        raise ValueError(f"input height must be a positive multiple of {STRIDE}, got {input_height}")
    width = max(STRIDE, int(round(input_height * frame_width / frame_height / STRIDE)) * STRIDE)
    return width, input_height


def check_frame(frame, engine) -> None:
    """Refuse anything but an OpenCV BGR frame; prepare ``engine`` for the first frame's size."""
    if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
        raise ValueError("empty frame: the source gave no image (check the camera or the video file)")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 BGR as OpenCV reads it, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H x W x 3 (BGR), got shape {frame.shape}")
    height, width = frame.shape[:2]
    if engine.frame_size is None:
        engine.prepare(width, height)
    elif engine.frame_size != (width, height):
        raise ValueError(f"frame is {width}x{height} but the engine was prepared for "
                         f"{engine.frame_size[0]}x{engine.frame_size[1]}: call prepare() for the new source")
