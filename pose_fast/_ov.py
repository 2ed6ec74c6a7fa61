"""OpenVINO compatibility: the one module that knows the difference between 2022.3 LTS and 2023.1+.

OpenVINO 2023.1 moved the API from ``openvino.runtime`` to ``openvino``; 2022.3 LTS (the last release with the
MYRIAD plugin, what a Raspberry Pi with a Neural Compute Stick 2 runs) only has ``openvino.runtime``. Everything
else in pose_fast imports OpenVINO names from here.
"""
from __future__ import annotations

import numpy as np

try:  # OpenVINO 2023.1 and newer
    import openvino as ov
    from openvino import AsyncInferQueue, Core, Layout, Tensor, Type
except ImportError:  # OpenVINO 2022.3 LTS
    import openvino.runtime as ov
    from openvino.runtime import AsyncInferQueue, Core, Layout, Tensor, Type

from openvino.preprocess import PrePostProcessor, ResizeAlgorithm

__all__ = [
    "AsyncInferQueue", "Core", "Layout", "PrePostProcessor", "ResizeAlgorithm", "Tensor", "Type",
    "VERSION", "VERSION_TUPLE", "HAS_MYRIAD_SUPPORT", "shared_tensor", "available_devices", "ov",
    "optimal_requests", "output_view",
]

VERSION = ov.get_version()


def _version_tuple(text: str) -> tuple:
    parts = []
    for piece in text.split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


VERSION_TUPLE = _version_tuple(VERSION)

#: The MYRIAD plugin (Neural Compute Stick 2) was removed in OpenVINO 2023.0.
HAS_MYRIAD_SUPPORT = VERSION_TUPLE < (2023, 0)

#: Property names, as strings: both API generations accept them in ``compile_model`` and ``set_property``.
PERFORMANCE_HINT = "PERFORMANCE_HINT"
NUM_REQUESTS = "PERFORMANCE_HINT_NUM_REQUESTS"
OPTIMAL_NUMBER_OF_INFER_REQUESTS = "OPTIMAL_NUMBER_OF_INFER_REQUESTS"
CACHE_DIR = "CACHE_DIR"
INFERENCE_PRECISION = "INFERENCE_PRECISION_HINT"


def _c_strides(shape, itemsize: int) -> tuple:
    strides = []
    step = itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def shared_tensor(array) -> Tensor:
    """Wrap a C-contiguous array as an OpenVINO tensor without copying it.

    NumPy gives a size-1 axis any stride (``frame[None]`` has stride 0 there); OpenVINO 2022.3 rejects such a
    tensor ("Stride in 0-th dimension is not valid"), so the array is re-viewed with canonical C strides first
    (still the same memory). The caller keeps ``array`` alive while the tensor is in use.
    """
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise ValueError("shared_tensor needs a C-contiguous numpy array (use np.ascontiguousarray)")
    strides = _c_strides(array.shape, array.itemsize)
    if array.strides != strides:
        array = np.lib.stride_tricks.as_strided(array, shape=array.shape, strides=strides)
    return Tensor(array, shared_memory=True)


def available_devices(core: Core) -> list:
    """The device names this machine has (``CPU``, ``GPU.0``, ``MYRIAD``…), never raising."""
    try:
        return list(core.available_devices)
    except Exception:  # noqa: BLE001 - a broken plugin must not hide the others
        return ["CPU"]


def optimal_requests(compiled, minimum: int = 1) -> int:
    """The compiled model's optimal number of infer requests, at least ``minimum`` (and 2 if it cannot say).

    The answer differs between generations: for ``PERFORMANCE_HINT=THROUGHPUT`` on a 2-core CPU, 2022.3 reports
    1 (one stream) where 2023.1+ reports 2; ask for ``minimum=2`` to keep capture and decoding overlapped with
    inference on both.
    """
    try:
        value = int(compiled.get_property(OPTIMAL_NUMBER_OF_INFER_REQUESTS))
    except Exception:  # noqa: BLE001 - a plugin without the property
        value = 2
    return max(int(minimum), value)


def output_view(request, index: int):
    """The numpy view of a request's output tensor; valid until the request runs again."""
    return request.get_output_tensor(index).data
