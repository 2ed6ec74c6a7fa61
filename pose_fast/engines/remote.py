"""Remote inference on a KServe v2 ("Open Inference Protocol") gRPC server: OpenVINO Model Server, Triton, KServe.

:class:`RemoteEngine` implements :class:`pose_fast.engines.contract.InferenceEngine` as the local engine does, so
the pipeline, decoder, tracker and web app run unchanged while inference happens on a model server that scales out.
Capture, decode and tracking stay at the edge.

The client (``tritonclient[grpc]``, the ``remote`` extra) reads the model's metadata, checks that it is the pose
model, resizes each frame on the client into a preallocated buffer and keeps several requests in flight.

Faults:

* server unreachable, wrong model name or not the pose model at start: :class:`EngineError` with one line;
* a request that fails or times out is dropped: its callback gets ``heatmaps=None, pafs=None`` (``infer()`` returns
  ``(None, None)``) and :attr:`RemoteEngine.dropped_frames` counts it;
* a request the server rejects (``INVALID_ARGUMENT``: every next frame would be rejected too) is dropped the same
  way, and then :class:`EngineError` (one line) is raised by the next ``submit()`` or ``wait_all()`` (by ``infer()``
  at once), so a pipeline stops with it instead of waiting;
* server lost mid-stream: :attr:`RemoteEngine.status` becomes ``"reconnecting"`` (with a short
  :attr:`RemoteEngine.status_message` for the overlay; the loss and the recovery are logged as warnings on the
  ``pose_fast.engines.remote`` logger, with the reason and the outage), a background thread probes the server with
  exponential backoff, frames submitted meanwhile are dropped after waiting at most ``reconnect_wait_s``, and the
  engine resumes by itself when the model is ready again.

Frame-size mapping: when the server's input has a fixed size (the stock 256x456 IR), frames are resized to it
without keeping the aspect ratio; the decoder maps heatmap coordinates to the source frame per axis
(``frame_size``), so keypoints still land in source pixels. When the server's input width (or height) is dynamic,
the network size follows the source's aspect ratio exactly as the local engine does (height 256, width a multiple
of 8).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional
from urllib.parse import urlsplit

import numpy as np

from ..errors import EngineError, first_line
from ..model import HEATMAP_OUTPUT, INPUT_NAME, MODEL_NAME, PAF_OUTPUT
from .contract import (
    DEFAULT_INPUT_HEIGHT,
    MODES,
    STATUS_CLOSED,
    STATUS_OK,
    STATUS_RECONNECTING,
    STRIDE,
    EngineBase,
    ResultCallback,
    check_frame,
    network_size_for,
)

log = logging.getLogger(__name__)

__all__ = ["RemoteEngine", "parse_server_url", "DEFAULT_MODEL", "STATUS_OK", "STATUS_RECONNECTING", "STATUS_CLOSED"]

DEFAULT_MODEL = MODEL_NAME
DEFAULT_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
THROUGHPUT_REQUESTS = 4
#: Consecutive timed-out requests after which the server counts as lost (a hung server answers nothing).
TIMEOUTS_BEFORE_LOST = 3
HEATMAP_CHANNELS = 19
PAF_CHANNELS = 38
#: Wire datatypes this client can fill (KServe v2 names) and their numpy types.
DATATYPES = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8}
#: gRPC status codes that mean "the server (or the model on it) is not there right now".
LOST_CODES = ("UNAVAILABLE", "NOT_FOUND", "CANCELLED", "UNKNOWN", "INTERNAL", "RESOURCE_EXHAUSTED", "ABORTED")



def parse_server_url(url: str) -> tuple:
    """``grpc://HOST:PORT[/MODEL]`` -> ``(host, port, model)``; the model defaults to human-pose-estimation-0001."""
    text = (url or "").strip()
    if "://" not in text:
        text = "grpc://" + text
    usage = "use --server grpc://HOST:PORT[/MODEL], e.g. grpc://127.0.0.1:9000/" + DEFAULT_MODEL
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise EngineError(f"server URL {url!r} does not parse ({exc}): {usage}; an IPv6 address goes in brackets, "
                          f"grpc://[::1]:9000") from None
    if parts.scheme != "grpc":
        raise EngineError(f"unsupported server URL {url!r} (scheme {parts.scheme}://, only the KServe v2 gRPC API "
                          f"is spoken): {usage}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise EngineError(f"server URL {url!r} needs a host and a port: {usage}")
    model = parts.path.strip("/") or DEFAULT_MODEL
    if "/" in model:
        raise EngineError(f"server URL {url!r} has more than a model name after the port: {usage}")
    return parts.hostname, port, model


def _import_client():
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise EngineError("remote inference needs the KServe v2 client: pip install -e .[remote] "
                          "(tritonclient[grpc])") from None
    return grpcclient, InferenceServerException


def _code(exc) -> str:
    """``"UNAVAILABLE"`` from tritonclient's ``"StatusCode.UNAVAILABLE"`` (or ``""``)."""
    status = exc.status() if hasattr(exc, "status") else None
    return (status or "").rsplit(".", 1)[-1]


def _message(exc) -> str:
    text = exc.message() if hasattr(exc, "message") else str(exc)
    return first_line(RuntimeError(text)) if text and text.strip() else type(exc).__name__


def _describe_tensors(tensors) -> str:
    return ", ".join(f"{t.name} {t.datatype}[{'x'.join(str(d) for d in t.shape)}]" for t in tensors)


class _Slot:
    """One in-flight request's preallocated buffers."""

    __slots__ = ("source", "resized", "tensor", "result")

    def __init__(self, frame_w: int, frame_h: int, net_w: int, net_h: int, layout: str, dtype):
        # Float wire types are resized in float32 like the local engine's in-model preprocessing (convert, then
        # resize), so both see the same pixels; a UINT8 input is resized in uint8.
        work = np.uint8 if dtype == np.uint8 else np.float32
        self.source = np.empty((frame_h, frame_w, 3), work) if work != np.uint8 else None
        self.resized = np.empty((net_h, net_w, 3), work)
        shape = (1, 3, net_h, net_w) if layout == "NCHW" else (1, net_h, net_w, 3)
        self.tensor = np.empty(shape, dtype)
        self.result = None  # keeps the response's memory alive while the caller reads the views


class RemoteEngine(EngineBase):
    """The pose model on a KServe v2 gRPC server, with the interface of :class:`pose_fast.engines.local.Engine`.

    Parameters
    ----------
    server_url : str
        ``grpc://HOST:PORT[/MODEL]``; the model name defaults to ``human-pose-estimation-0001``.
    frame_size : (width, height), optional
        Prepare for this source size right away (else on the first frame).
    num_requests : int, optional
        Requests kept in flight by :meth:`submit`; default 1 in latency mode, 4 in throughput mode.
    timeout_s : float
        A request not answered within this time is dropped (counted in :attr:`dropped_frames` and
        :attr:`timed_out`).
    mode : {"latency", "throughput"}
        Only chooses the default number of requests (the server owns its performance hints).
    input_height : int
        Network height used when the server's input height is dynamic.
    connect_timeout_s : float
        How long to wait for the server's metadata at start.
    reconnect_wait_s : float
        While the server is lost, how long a frame waits for it to come back before being dropped.
    max_backoff_s : float
        Longest pause between two probes of a lost server.
    """

    def __init__(self, server_url: str, frame_size: Optional[tuple] = None, num_requests: Optional[int] = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, mode: str = "latency",
                 input_height: int = DEFAULT_INPUT_HEIGHT, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 reconnect_wait_s: float = 1.0, max_backoff_s: float = 5.0):
        if mode not in MODES:
            raise EngineError(f"unknown mode {mode!r}: use latency or throughput")
        if num_requests is not None and num_requests < 1:
            raise EngineError(f"the number of requests must be at least 1, got {num_requests}")
        if timeout_s <= 0:
            raise EngineError(f"the request timeout must be positive, got {timeout_s}")
        if input_height <= 0 or input_height % STRIDE:
            raise EngineError(f"--input-height must be a positive multiple of {STRIDE}, got {input_height}")
        self.host, self.port, self.model_name = parse_server_url(server_url)
        #: host:port as gRPC dials it (an IPv6 address in brackets)
        self.address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        self.server_url = f"grpc://{self.address}/{self.model_name}"
        self.mode = mode
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.reconnect_wait_s = float(reconnect_wait_s)
        self.max_backoff_s = float(max_backoff_s)
        self.input_height = input_height
        self._num_requests = num_requests or (THROUGHPUT_REQUESTS if mode == "throughput" else 1)
        # Engine-compatible descriptive attributes.
        self.device = f"remote {self.address}"
        self.precision = "server"
        self.model_path = self.server_url
        self.frame_size = None
        self.network_size = None
        self.output_size = None
        self.last_infer_ms = 0.0
        # Fault state, readable by the pipeline (overlay, log, stats).
        self.status = STATUS_OK
        self.status_message = ""
        self.dropped_frames = 0
        self.timed_out = 0
        self.reconnects = 0

        self._grpc, self._ServerError = _import_client()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._callback: Optional[ResultCallback] = None
        self._callback_error: Optional[BaseException] = None
        self._connected = threading.Event()
        self._closed = threading.Event()
        self._consecutive_timeouts = 0
        self._lost_reason = ""
        self._lost_since = 0.0
        self._dropped_at_loss = 0
        self._reconnector: Optional[threading.Thread] = None
        self._free: queue.Queue = queue.Queue()
        self._sync_slot: Optional[_Slot] = None
        self._drops = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pose-fast-remote-drop")
        self._client = self._grpc.InferenceServerClient(f"{self.address}", channel_args=[
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.max_receive_message_length", 2**31 - 1),
            # Reconnect quickly after a server restart instead of gRPC's default backoff of up to two minutes.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ])
        try:
            self._read_metadata()
        except BaseException:
            self._shutdown_client()
            raise
        self._connected.set()
        if frame_size is not None:
            self.prepare(*frame_size)

    # -- set-up --------------------------------------------------------------------------------------------------
    def _read_metadata(self) -> None:
        try:
            meta = self._client.get_model_metadata(self.model_name, client_timeout=self.connect_timeout_s)
        except self._ServerError as exc:
            code = _code(exc)
            if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                raise EngineError(f"cannot reach the inference server at {self.address} "
                                  f"({_message(exc)}): start the model server or fix --server") from None
            text = _message(exc)
            if code == "NOT_FOUND" or any(w in text.lower() for w in ("not found", "does not exist", "unknown")):
                raise EngineError(f"the server at {self.address} has no model {self.model_name!r} "
                                  f"({self._server_models()}): use --server grpc://{self.address}/<model>"
                                  ) from None
            raise EngineError(f"the server at {self.address} refused the metadata of model "
                              f"{self.model_name!r} ({code or 'error'}: {text}): check the server's log") from None
        inputs = list(meta.inputs)
        outputs = {t.name: t for t in meta.outputs}
        problem = self._check_signature(inputs, outputs)
        if problem:
            raise EngineError(f"model {self.model_name!r} at {self.address} is not {DEFAULT_MODEL} "
                              f"({problem}; inputs: {_describe_tensors(inputs)}; outputs: "
                              f"{_describe_tensors(meta.outputs)}): point --server at the pose model "
                              f"({self._server_models()})")

    def _server_models(self) -> str:
        """``"the server has: a, b"``, or why the list is unknown (KServe and OVMS do not list models)."""
        try:
            index = self._client.get_model_repository_index(client_timeout=self.connect_timeout_s)
        except self._ServerError as exc:
            if _code(exc) == "UNIMPLEMENTED":
                return "the server does not list its models; ask its operator for the model name"
            return f"could not list the server's models: {_message(exc)}"
        names = sorted({m.name for m in index.models})
        return "the server has: " + (", ".join(names) if names else "no models")

    def _check_signature(self, inputs, outputs) -> str:
        """Remember the input layout/datatype/size; return what is wrong, or ``""``."""
        if len(inputs) != 1:
            return f"expected one input {INPUT_NAME!r}, found {len(inputs)}"
        tensor = inputs[0]
        if tensor.name != INPUT_NAME:
            return f"the input is {tensor.name!r}, not {INPUT_NAME!r}"
        shape = [int(d) for d in tensor.shape]
        if len(shape) != 4 or shape[0] not in (1, -1):
            return f"input {INPUT_NAME!r} should be 1x3xHxW"
        if shape[1] == 3:
            layout, height, width = "NCHW", shape[2], shape[3]
        elif shape[3] == 3:
            layout, height, width = "NHWC", shape[1], shape[2]
        else:
            return f"input {INPUT_NAME!r} has no 3-channel (BGR) axis"
        if tensor.datatype not in DATATYPES:
            return f"input datatype {tensor.datatype} is not one of {', '.join(DATATYPES)}"
        for name, channels in ((PAF_OUTPUT, PAF_CHANNELS), (HEATMAP_OUTPUT, HEATMAP_CHANNELS)):
            out = outputs.get(name)
            if out is None:
                return f"output {name!r} is missing"
            dims = [int(d) for d in out.shape]
            if len(dims) != 4 or dims[1] != channels:
                return f"output {name!r} should have {channels} channels"
        self._input_name = tensor.name
        self._input_datatype = tensor.datatype
        self._input_dtype = DATATYPES[tensor.datatype]
        self._layout = layout
        self._fixed_size = (width if width > 0 else None, height if height > 0 else None)
        out_dims = [int(d) for d in outputs[HEATMAP_OUTPUT].shape]
        self._fixed_output = (out_dims[3], out_dims[2]) if min(out_dims[2:]) > 0 else None
        return ""

    @property
    def num_requests(self) -> int:
        return self._num_requests

    @property
    def latency_requests(self) -> int:
        """One: a server gives the newest frame its full attention."""
        return 1

    def prepare(self, frame_width: int, frame_height: int) -> None:
        """Choose the network input size for this source and allocate the request buffers; idempotent."""
        if self.frame_size == (frame_width, frame_height):
            return
        if frame_width <= 0 or frame_height <= 0:
            raise ValueError(f"frame size must be positive, got {frame_width}x{frame_height}")
        self.wait_all()
        fixed_w, fixed_h = self._fixed_size
        net_h = fixed_h or self.input_height
        net_w = fixed_w or network_size_for(frame_width, frame_height, net_h)[0]
        self.network_size = (net_w, net_h)
        self.output_size = self._fixed_output or (net_w // STRIDE, net_h // STRIDE)
        self.frame_size = (frame_width, frame_height)
        self._free = queue.Queue()
        for _ in range(self._num_requests):
            self._free.put(_Slot(frame_width, frame_height, net_w, net_h, self._layout, self._input_dtype))
        self._sync_slot = _Slot(frame_width, frame_height, net_w, net_h, self._layout, self._input_dtype)

    # -- inference ---------------------------------------------------------------------------------------------
    def _fill(self, slot: _Slot, frame: np.ndarray):
        """Resize ``frame`` into the slot's buffers and wrap them as the request's input."""
        import cv2

        net_w, net_h = self.network_size
        if frame.shape[1] == net_w and frame.shape[0] == net_h:
            image = frame
        else:
            if slot.source is not None:
                np.copyto(slot.source, frame, casting="unsafe")
                frame = slot.source
            image = cv2.resize(frame, (net_w, net_h), dst=slot.resized, interpolation=cv2.INTER_LINEAR)
        if self._layout == "NCHW":
            np.copyto(slot.tensor[0], image.transpose(2, 0, 1), casting="unsafe")
        else:
            np.copyto(slot.tensor[0], image, casting="unsafe")
        data = self._grpc.InferInput(self._input_name, list(slot.tensor.shape), self._input_datatype)
        data.set_data_from_numpy(slot.tensor)
        return [data]

    def _outputs(self) -> list:
        return [self._grpc.InferRequestedOutput(HEATMAP_OUTPUT), self._grpc.InferRequestedOutput(PAF_OUTPUT)]

    @staticmethod
    def _views(result) -> tuple:
        return result.as_numpy(HEATMAP_OUTPUT)[0], result.as_numpy(PAF_OUTPUT)[0]

    def infer(self, frame: np.ndarray) -> tuple:
        """Run one frame synchronously; return (heatmaps (19,h,w), pafs (38,h,w)) views valid until the next
        ``infer()``, or ``(None, None)`` when the frame was dropped (server lost, request timed out)."""
        check_frame(frame, self)
        slot = self._sync_slot
        if not self._connected.wait(self.reconnect_wait_s):
            self._count_drop()
            return None, None
        start = time.perf_counter()  # like the local engine's, the time includes the resize
        inputs = self._fill(slot, frame)
        try:
            slot.result = self._client.infer(self.model_name, inputs, outputs=self._outputs(),
                                             client_timeout=self.timeout_s)
        except self._ServerError as exc:
            self.last_infer_ms = (time.perf_counter() - start) * 1000.0
            self._failed(exc)
            return None, None
        self.last_infer_ms = (time.perf_counter() - start) * 1000.0
        self._succeeded()
        return self._views(slot.result)

    def set_callback(self, callback: ResultCallback) -> None:
        """``callback(heatmaps, pafs, userdata, infer_ms)`` in a worker thread after each :meth:`submit`;
        ``heatmaps`` and ``pafs`` are ``None`` when the frame was dropped."""
        self._callback = callback

    def submit(self, frame: np.ndarray, userdata=None) -> None:
        """Send ``frame``; blocks while every request is busy (and, while the server is lost, up to
        ``reconnect_wait_s`` before dropping the frame). The frame may change once this returns; the request
        slot is held until the callback has run."""
        self._raise_callback_error()
        if self._callback is None:
            raise EngineError("set_callback() must be called before submit()")
        check_frame(frame, self)
        slot = self._free.get()
        with self._lock:
            self._pending += 1
        start = time.perf_counter()
        if not self._connected.wait(self.reconnect_wait_s):
            self._drops.submit(self._finish, slot, userdata, start, None, None)
            return
        try:
            inputs = self._fill(slot, frame)
            self._client.async_infer(self.model_name, inputs, lambda result, error: self._finish(
                slot, userdata, start, result, error), outputs=self._outputs(), client_timeout=self.timeout_s)
        except BaseException as exc:
            if isinstance(exc, self._ServerError):
                self._drops.submit(self._finish, slot, userdata, start, None, exc)
                return
            self._release(slot)
            raise

    def _finish(self, slot: _Slot, userdata, start: float, result, error) -> None:
        """Deliver one submitted frame (or its drop) to the callback, then free its slot."""
        infer_ms = (time.perf_counter() - start) * 1000.0
        heatmaps = pafs = None
        try:
            if result is not None and error is None:
                self.last_infer_ms = infer_ms
                self._succeeded()
                heatmaps, pafs = self._views(result)
            elif error is not None:
                try:
                    self._failed(error)
                except EngineError as exc:  # a rejected frame: dropped here, the error stops the next submit()
                    self._keep_error(exc)
            else:
                self._count_drop()
            self._callback(heatmaps, pafs, userdata, infer_ms)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
            self._keep_error(exc)
        finally:
            self._release(slot)

    def _release(self, slot: _Slot) -> None:
        self._free.put(slot)
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def wait_all(self) -> None:
        """Wait for every submitted frame's callback (each ends within ``timeout_s``); re-raise the first error
        a callback raised."""
        with self._lock:
            while self._pending:
                self._idle.wait()
        self._raise_callback_error()

    # -- faults ------------------------------------------------------------------------------------------------
    def _count_drop(self) -> None:
        with self._lock:
            self.dropped_frames += 1
            if self.status == STATUS_RECONNECTING:
                self.status_message = self._lost_message()

    def _succeeded(self) -> None:
        self._consecutive_timeouts = 0

    def _failed(self, exc) -> None:
        """A request failed: drop its frame (counted). A rejected request (INVALID_ARGUMENT: the model on the
        server changed, or a client bug) raises :class:`EngineError`, as every next frame would be rejected too;
        anything else is the server's fault, and the server is marked lost when it is gone or keeps timing out."""
        code = _code(exc)
        if code == "INVALID_ARGUMENT":
            self._count_drop()
            raise EngineError(f"the server at {self.address} rejected a frame ({_message(exc)}): check "
                              f"that --server names the pose model and the server's log")
        with self._lock:
            self.dropped_frames += 1
            lost = code in LOST_CODES
            if code == "DEADLINE_EXCEEDED":
                self.timed_out += 1
                self._consecutive_timeouts += 1
                lost = self._consecutive_timeouts >= TIMEOUTS_BEFORE_LOST
            if not lost:
                log.warning("inference request to %s dropped (%s)", self.server_url, _message(exc))
                return
            if self.status != STATUS_OK or self._closed.is_set():
                if self.status == STATUS_RECONNECTING:
                    self.status_message = self._lost_message()
                return
            self.status = STATUS_RECONNECTING
            self._lost_reason = _message(exc) if code != "DEADLINE_EXCEEDED" else "requests time out"
            self._lost_since = time.monotonic()
            self._dropped_at_loss = self.dropped_frames - 1
            self.status_message = self._lost_message()
            self._connected.clear()
            self._reconnector = threading.Thread(target=self._reconnect, name="pose-fast-remote-reconnect",
                                                 daemon=True)
            self._reconnector.start()
        log.warning("inference server %s lost (%s); retrying with backoff (up to every %.1f s), frames are "
                    "dropped meanwhile", self.address, self._lost_reason, self.max_backoff_s)

    def _lost_message(self) -> str:
        """Short enough for the overlay of a 480-pixel-wide frame; the log has the details."""
        return f"server lost, retrying ({self.dropped_frames - self._dropped_at_loss} dropped)"

    def _reconnect(self) -> None:
        delay = 0.25
        while not self._closed.is_set():
            try:
                ready = self._client.is_model_ready(self.model_name, client_timeout=min(2.0, self.timeout_s))
            except self._ServerError:
                ready = False
            except ValueError:  # the client was closed under us
                return
            if ready:
                with self._lock:
                    if self._closed.is_set():
                        return
                    outage = time.monotonic() - self._lost_since
                    dropped = self.dropped_frames - self._dropped_at_loss
                    self.status = STATUS_OK
                    self.status_message = ""
                    self.reconnects += 1
                    self._consecutive_timeouts = 0
                    self._connected.set()
                log.warning("inference server %s is back after %.1f s; %d frame(s) dropped meanwhile",
                            self.address, outage, dropped)
                return
            if self._closed.wait(delay):
                return
            delay = min(delay * 2.0, self.max_backoff_s)

    # -- life cycle --------------------------------------------------------------------------------------------
    def _shutdown_client(self) -> None:
        self._closed.set()
        self._connected.set()  # wake submitters waiting for a reconnection
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing twice or after a failed start
            pass
        self._drops.shutdown(wait=False)

    def close(self) -> None:
        """Wait for the requests in flight (each ends within ``timeout_s``), then close the connection."""
        if self.status == STATUS_CLOSED:
            return
        with self._lock:
            while self._pending:
                self._idle.wait()
        self._shutdown_client()
        if self._reconnector is not None:
            self._reconnector.join(timeout=self.max_backoff_s + 2.5)
        self.status = STATUS_CLOSED
        self.status_message = ""

    def describe(self) -> str:
        return (f"remote {self.server_url} ({self._input_datatype} {self._layout}), {self._size_text()}, "
                f"{self.num_requests} request(s) in flight, timeout {self.timeout_s:g} s")
