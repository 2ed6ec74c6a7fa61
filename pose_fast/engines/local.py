"""The OpenVINO engine: device validation, preprocessing inside the model, sync and async inference.

The engine takes frames as OpenCV gives them (H×W×3 uint8 BGR) without copying them: the compiled model does the
resize, layout change and type conversion (``PrePostProcessor``), and the network is reshaped once to the
source's aspect ratio instead of stretching frames. Output tensors are handed out as views into the request's
memory, valid until that request runs again.

Resizing on the host instead (``cv2.resize`` into preallocated network-size buffers, the model converting only)
was measured and dropped: 2-4 % less CPU time per frame in the pipeline, but OpenCV's worker threads, woken for
every resize beside OpenVINO's, raised the latency mode's involuntary context switches from 20-60 to about 900
per frame, and its frame rate fell (two alternating pairs: 27.7 → 16.6 and 12.2 → 8.4 FPS, 480×270).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import _ov
from .._ov import AsyncInferQueue, Core, Layout, PrePostProcessor, ResizeAlgorithm, Type
from ..errors import EngineError, ModelError
from ..errors import first_line as _first_line
from ..folders import user_cache_dir
from ..model import HEATMAP_OUTPUT, INPUT_NAME, PAF_OUTPUT, check_precision, default_precision, resolve_model
from .contract import (
    DEFAULT_INPUT_HEIGHT,
    MODES,
    STATUS_OK,
    STRIDE,
    EngineBase,
    ResultCallback,
    check_frame,
    network_size_for,
)

__all__ = ["Engine", "EngineError", "validate_device", "default_cache_dir", "CPU_PRECISIONS", "DEFAULT_CPU_PRECISION",
           "MYRIAD_REQUESTS", "DEVICE_FAMILIES", "VIRTUAL_PREFIXES"]

DEVICE_FAMILIES = ("CPU", "GPU", "NPU", "MYRIAD", "AUTO")
VIRTUAL_PREFIXES = ("AUTO", "MULTI", "HETERO", "BATCH")
MYRIAD_REQUESTS = 4  # the stick pipelines several requests
#: Arithmetic the CPU plugin may be asked for (``INFERENCE_PRECISION_HINT``); see :class:`Engine`.
CPU_PRECISIONS = ("f32", "bf16")
DEFAULT_CPU_PRECISION = "f32"

def validate_device(core: Core, device: str) -> str:
    """Return the device name if this machine can run it, else raise EngineError listing what it has."""
    name = (device or "").strip().upper()  # OpenVINO's names are upper case; people type cpu
    if not name:
        raise EngineError("no device given: use --device-name CPU, GPU, NPU, MYRIAD or AUTO")
    available = _ov.available_devices(core)
    have = ", ".join(available) or "none"
    prefix, _, rest = name.partition(":")
    if rest or prefix.upper() in VIRTUAL_PREFIXES:
        if prefix.upper() not in VIRTUAL_PREFIXES:
            raise EngineError(f"unknown device {name!r}: use CPU, GPU, GPU.0, NPU, MYRIAD, AUTO or "
                              f"AUTO:/MULTI:/HETERO: lists; this machine has: {have}")
        for part in filter(None, rest.split(",")):
            _check_physical(core, part.split("(")[0].strip(), available, have)
        return prefix + (":" + rest if rest else "")
    _check_physical(core, name, available, have)
    return name


def _check_physical(core: Core, name: str, available: list, have: str) -> None:
    family = name.split(".")[0].upper()
    if family == "MYRIAD":
        _check_myriad(core, available, have)
        return
    if family not in DEVICE_FAMILIES:
        raise EngineError(f"unknown device {name!r}: use CPU, GPU, GPU.0, NPU, MYRIAD or AUTO; "
                          f"this machine has: {have}")
    if name.upper() == "AUTO":
        return
    upper = [d.upper() for d in available]
    if name.upper() in upper or (("." not in name) and any(d.startswith(name.upper() + ".") for d in upper)):
        return
    if name.upper() == family + ".0" and family in upper:  # a lone GPU (or NPU) is listed without its ".0"
        return
    raise EngineError(f"device {name} is not available on this machine (it has: {have}); "
                      f"use --device-name {available[0] if available else 'CPU'} or AUTO")


def _check_myriad(core: Core, available: list, have: str) -> None:
    if not _ov.HAS_MYRIAD_SUPPORT:
        raise EngineError(f"the Neural Compute Stick 2 (MYRIAD) needs OpenVINO 2022.3 LTS, but this is OpenVINO "
                          f"{_ov.VERSION.split('-')[0]}: install openvino==2022.3.* (Python 3.7-3.10) or choose "
                          f"another device (this machine has: {have})")
    if any(d.upper().startswith("MYRIAD") for d in available):
        return
    try:
        core.get_property("MYRIAD", "FULL_DEVICE_NAME")
    except Exception as exc:  # noqa: BLE001
        if "not registered" in str(exc):
            raise EngineError("this OpenVINO has no MYRIAD plugin (Device with \"MYRIAD\" name is not "
                              "registered): install the OpenVINO 2022.3 runtime archive that includes it (the "
                              "PyPI wheel does not), e.g. the Raspberry Pi archive, and source its setupvars.sh; "
                              f"this machine has: {have}") from None
        if "cannot load library" in str(exc).lower():  # "Cannot load library 'libopenvino_intel_myriad_plugin.so'"
            raise EngineError(f"the MYRIAD plugin is registered but does not load ({_first_line(exc)}): source "
                              "the 2022.3 runtime archive's setupvars.sh in this shell (it sets LD_LIBRARY_PATH) "
                              f"and install libusb-1.0-0; this machine has: {have}") from None
    raise EngineError("no Neural Compute Stick 2 found (the MYRIAD plugin is installed but sees no stick): attach "
                      "the stick, install the udev rules (install_NCS_udev_rules.sh from the OpenVINO archive) "
                      f"and re-plug it; this machine has: {have}")


def default_cache_dir() -> Path:
    """Where compiled models are cached: ``compiled/`` in the per-user cache (``~/.cache/pose_fast`` on Linux)."""
    return user_cache_dir("compiled")


class Engine(EngineBase):
    """An OpenVINO compiled model for human-pose-estimation-0001 with preallocated infer requests.

    Parameters
    ----------
    model : path, optional
        An ``.xml``; default: resolved by :func:`pose_fast.model.resolve_model`.
    device : str
        ``CPU``, ``GPU``, ``GPU.0``, ``NPU``, ``MYRIAD``, ``AUTO`` or an ``AUTO:``/``MULTI:``/``HETERO:`` list.
    precision : str, optional
        ``FP32``, ``FP16`` or ``FP16-INT8``; default FP16 on MYRIAD, FP16-INT8 elsewhere.
    input_height : int
        Network input height (multiple of 8); lower is faster and less accurate.
    mode : {"latency", "throughput"}
        The OpenVINO performance hint, and the default number of requests (1, or the device's optimum).
    num_requests : int, optional
        Infer requests kept for :meth:`submit`.
    cache_dir : path, optional
        Compiled-model cache; ``""`` disables it. Default :func:`default_cache_dir`.
    progress : callable, optional
        ``progress(bytes_done, bytes_total)`` while the model is downloaded (first use only).
    cpu_precision : {"f32", "bf16"} or None
        The arithmetic of the layers the IR leaves in floating point, on the CPU (also under ``AUTO``, ``MULTI``
        and ``HETERO``). ``f32`` (default): the same people on every x86-64 host, AVX2 to AMX. ``bf16``: what
        OpenVINO picks by itself on CPUs with AVX-512 BF16 or AMX; no faster for the INT8 model here, and it
        splits people into fragments more often. ``None``: leave it to OpenVINO.
    """

    def __init__(self, model=None, device: str = "CPU", precision: Optional[str] = None,
                 input_height: int = DEFAULT_INPUT_HEIGHT, mode: str = "latency",
                 num_requests: Optional[int] = None, cache_dir=None, core: Optional[Core] = None,
                 progress: Optional[Callable[[int, Optional[int]], None]] = None,
                 cpu_precision: Optional[str] = DEFAULT_CPU_PRECISION):
        if mode not in MODES:
            raise EngineError(f"unknown mode {mode!r}: use latency or throughput")
        if num_requests is not None and num_requests < 1:
            raise EngineError(f"the number of requests must be at least 1, got {num_requests}")
        if input_height <= 0 or input_height % STRIDE:
            raise EngineError(f"--input-height must be a positive multiple of {STRIDE}, got {input_height}")
        if cpu_precision is not None and cpu_precision not in CPU_PRECISIONS:
            raise EngineError(f"unknown CPU precision {cpu_precision!r}: use {' or '.join(CPU_PRECISIONS)}")
        self.core = core or Core()
        self.device = validate_device(self.core, device)
        self.cpu_precision = cpu_precision
        try:
            self.precision = check_precision(precision or default_precision(self.device))
        except ModelError as exc:
            raise EngineError(str(exc)) from None
        try:
            self.model_path = resolve_model(model, self.precision, self.device, progress=progress)
        except ModelError as exc:
            raise EngineError(str(exc)) from None
        self.mode = mode
        self.input_height = input_height
        self._requested = num_requests
        self._set_cache(cache_dir)
        try:
            self._model = self.core.read_model(str(self.model_path))
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"OpenVINO cannot read {self.model_path} ({_first_line(exc)}): the model files "
                              f"are damaged; fetch them again with `pose-fast fetch-model`") from None
        names = {name for port in self._model.outputs for name in port.get_names()}
        if not {PAF_OUTPUT, HEATMAP_OUTPUT} <= names or INPUT_NAME not in self._model.inputs[0].get_names():
            raise EngineError(f"{self.model_path} is not human-pose-estimation-0001 (outputs: "
                              f"{', '.join(sorted(names))})")
        self.frame_size = None
        self.network_size = None
        self.output_size = None
        self.last_infer_ms = 0.0
        self.compiled = None
        self._request = None
        self._queue = None
        self._callback: Optional[ResultCallback] = None
        self._callback_error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self.status = STATUS_OK  # a local device does not come and go
        self.status_message = ""

    # -- set-up --------------------------------------------------------------------------------------------------
    def _set_cache(self, cache_dir) -> None:
        if cache_dir == "":
            return
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
            self.core.set_property({_ov.CACHE_DIR: str(path)})
        except OSError:
            pass  # a read-only home only costs start-up time

    def _set_cpu_precision(self) -> None:
        """Ask the CPU plugin for ``cpu_precision`` (a CPU-wide property, so it also holds inside AUTO/MULTI)."""
        if self.cpu_precision is None:
            return
        try:
            self.core.set_property("CPU", {_ov.INFERENCE_PRECISION: self.cpu_precision})
        except Exception as exc:  # noqa: BLE001 - e.g. bf16 on a CPU without it, or an ARM plugin without the hint
            if "CPU" not in self.device.upper():
                return  # a GPU, NPU or stick: the CPU's arithmetic does not matter
            raise EngineError(f"the CPU cannot compute in {self.cpu_precision} ({_first_line(exc)}): use "
                              f"{DEFAULT_CPU_PRECISION}") from None

    @property
    def num_requests(self) -> int:
        if self._requested is not None:
            return self._requested
        if self.device.upper().startswith("MYRIAD"):
            return MYRIAD_REQUESTS
        if self.mode == "latency" or self.compiled is None:
            return 1
        # at least 2, so capture and decoding overlap inference (2022.3's CPU plugin says 1 on two cores)
        return _ov.optimal_requests(self.compiled, minimum=2)

    @property
    def latency_requests(self) -> int:
        """Requests the pipeline's latency mode keeps in flight: 1, except on a Neural Compute Stick 2, which
        pipelines several (USB transfer and compute overlap), so each frame waits no longer and more are shown."""
        return self.num_requests if self.device.upper().startswith("MYRIAD") else 1

    def prepare(self, frame_width: int, frame_height: int) -> None:
        """Reshape the network to the source's aspect ratio and compile it; a no-op for the same size."""
        if self.frame_size == (frame_width, frame_height):
            return
        if self._queue is not None:
            self._queue.wait_all()
        net_w, net_h = network_size_for(frame_width, frame_height, self.input_height)
        model = self._model.clone() if hasattr(self._model, "clone") else self.core.read_model(str(self.model_path))
        model.reshape({model.inputs[0].get_any_name(): [1, 3, net_h, net_w]})
        ppp = PrePostProcessor(model)
        tensor = ppp.input().tensor()
        tensor.set_element_type(Type.u8)
        tensor.set_layout(Layout("NHWC"))
        tensor.set_shape([1, frame_height, frame_width, 3])
        ppp.input().preprocess().convert_element_type(Type.f32)
        if (net_w, net_h) != (frame_width, frame_height):
            ppp.input().preprocess().resize(ResizeAlgorithm.RESIZE_LINEAR)
        ppp.input().model().set_layout(Layout("NCHW"))
        model = ppp.build()
        config = {_ov.PERFORMANCE_HINT: self.mode.upper()}
        self._set_cpu_precision()
        try:
            self.compiled = self.core.compile_model(model, self.device, config)
        except Exception as exc:  # noqa: BLE001
            raise EngineError(f"could not load the model on {self.device} ({_first_line(exc)}); try "
                              f"--device-name CPU") from None
        # Outputs are addressed by index: a port object that outlives its compiled model (an engine collected
        # without close()) crashes the process, so none is kept.
        names = [set(port.get_names()) for port in self.compiled.outputs]
        self._heat_index = next(i for i, n in enumerate(names) if HEATMAP_OUTPUT in n)
        self._paf_index = next(i for i, n in enumerate(names) if PAF_OUTPUT in n)
        shape = list(self.compiled.outputs[self._heat_index].get_shape())
        self.output_size = (int(shape[3]), int(shape[2]))
        self.network_size = (net_w, net_h)
        self.frame_size = (frame_width, frame_height)
        self._request = self.compiled.create_infer_request()
        self._queue = AsyncInferQueue(self.compiled, self.num_requests)
        self._queue.set_callback(self._on_done)
        self._warm_up(frame_width, frame_height)

    def _warm_up(self, frame_width: int, frame_height: int) -> None:
        """Run every request once on a black frame: a request's first inference allocates (20-30 ms more than the
        next on a 2-core CPU), and would otherwise land on the first frames shown."""
        frame = np.zeros((1, frame_height, frame_width, 3), np.uint8)  # held here: OpenVINO 2022.3's shared
        black = _ov.shared_tensor(frame)  # tensor does not keep its array alive (a freed array: a segfault)
        self._request.infer({0: black})
        for index in range(len(self._queue)):
            self._queue[index].infer({0: black})

    # -- inference ---------------------------------------------------------------------------------------------
    def _input(self, frame) -> np.ndarray:
        check_frame(frame, self)
        return np.ascontiguousarray(frame)[None]

    def infer(self, frame: np.ndarray) -> tuple:
        """Run one frame synchronously; return (heatmaps (19,h,w), pafs (38,h,w)) views into the request."""
        batch = self._input(frame)
        self._request.set_input_tensor(_ov.shared_tensor(batch))
        start = time.perf_counter()
        self._request.infer()
        self.last_infer_ms = (time.perf_counter() - start) * 1000.0
        return (_ov.output_view(self._request, self._heat_index)[0],
                _ov.output_view(self._request, self._paf_index)[0])

    def set_callback(self, callback: ResultCallback) -> None:
        """``callback(heatmaps, pafs, userdata, infer_ms)``, called in an OpenVINO thread after each submit."""
        self._callback = callback

    def submit(self, frame: np.ndarray, userdata=None) -> None:
        """Start inference on ``frame``; blocks while every request is busy. Keep ``frame`` unchanged until
        its callback has run."""
        self._raise_callback_error()
        if self._callback is None:
            raise EngineError("set_callback() must be called before submit()")
        batch = self._input(frame)
        self._queue.start_async({0: _ov.shared_tensor(batch)}, (userdata, batch, time.perf_counter()))

    def _on_done(self, request, data) -> None:
        userdata, _batch, start = data
        infer_ms = (time.perf_counter() - start) * 1000.0
        self.last_infer_ms = infer_ms
        try:
            self._callback(_ov.output_view(request, self._heat_index)[0],
                           _ov.output_view(request, self._paf_index)[0], userdata, infer_ms)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
            self._keep_error(exc)

    def wait_all(self) -> None:
        """Wait for every submitted frame's callback; re-raise the first error a callback raised."""
        if self._queue is not None:
            self._queue.wait_all()
        self._raise_callback_error()

    def close(self) -> None:
        if self._queue is not None:
            self._queue.wait_all()
        self._queue = None
        self._request = None
        self.compiled = None

    def describe(self) -> str:
        return (f"{self.device} {self.precision} {self._size_text()}, {self.num_requests} request(s), {self.mode}, "
                f"OpenVINO {_ov.VERSION.split('-')[0]}")
