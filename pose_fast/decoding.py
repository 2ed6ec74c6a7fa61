"""Turn the model's heatmaps and part-affinity fields into people: the one validating front door of the decoder.

>>> from pose_fast.decoding import decode, Decoder, BACKEND
>>> poses = decode(heatmaps, pafs, frame_size=(w, h))      # doctest: +SKIP
>>> decoder = Decoder(score_threshold=0.2)                  # doctest: +SKIP
>>> poses = decoder(heatmaps, pafs, frame_size=(w, h))      # doctest: +SKIP

Three backends compute the same answer: ``cython`` (``pose_fast._decode``, compiled at install), ``numba``
(``pose_fast._decode_numba``) and ``numpy`` (``pose_fast._decode_ref``, the readable reference). The first one that
imports wins, in that order; the environment variable ``POSE_FAST_DECODER=cython|numba|numpy`` forces one (import
fails with :class:`BackendUnavailableError` when it is not available). :data:`BACKEND` names the active one.

The algorithm is the standard OpenPose grouping exactly as Open Model Zoo's ``OpenPoseDecoder`` does it behind the
OpenVINO pose notebook's 3×3 max-pool NMS; see :mod:`pose_fast._decode_ref` for the steps.
"""
from __future__ import annotations

import importlib
import math
import os
import threading
from numbers import Real
from types import MappingProxyType
from typing import Optional

import numpy as np

from ._decode_ref import DEFAULTS
from .errors import BackendUnavailableError
from .poses import Poses
from .skeleton import NUM_HEATMAPS, NUM_PAF_CHANNELS

__all__ = ["BACKEND", "BACKENDS", "DEFAULTS", "BackendUnavailableError", "Decoder", "ENV_VAR", "available_backends",
           "decode", "load_backend"]

#: Backends in order of preference.
BACKENDS = ("cython", "numba", "numpy")
#: Environment variable that forces a backend.
ENV_VAR = "POSE_FAST_DECODER"

_MODULES = {"cython": "pose_fast._decode", "numba": "pose_fast._decode_numba", "numpy": "pose_fast._decode_ref"}
_HINTS = {
    "cython": "build it with `python setup.py build_ext --inplace` (needs Cython and a C compiler)",
    "numba": "install numba with `pip install numba`",
    "numpy": "reinstall pose_fast",
}
#: Version of the interface between this module and the backends' ``Kernel``; a compiled extension built from an
#: older ``_decode.pyx`` has another one and is treated as unavailable (rebuild it).
KERNEL_API = 1


def load_backend(name: str):
    """Import and return the backend module ``name`` (one of :data:`BACKENDS`)."""
    if name not in BACKENDS:
        raise BackendUnavailableError(f"unknown decoder backend {name!r}: use one of {', '.join(BACKENDS)}")
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the {name} decoder backend is unavailable ({exc}): {_HINTS[name]}") from exc
    if getattr(module, "KERNEL_API", None) != KERNEL_API:
        raise BackendUnavailableError(
            f"the {name} decoder backend is unavailable ({module.__file__} is stale: it was built from an older "
            f"source): {_HINTS[name]}")
    return module


def available_backends() -> tuple:
    """The backends that import on this machine, in order of preference."""
    found = []
    for name in BACKENDS:
        try:
            load_backend(name)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)


def _select_backend() -> str:
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise BackendUnavailableError(
                f"{ENV_VAR}={forced!r} is not a decoder backend: set it to one of {', '.join(BACKENDS)} or unset it")
        try:
            load_backend(forced)
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(f"{ENV_VAR}={forced} but {exc}; or unset {ENV_VAR}") from exc
        return forced
    for name in BACKENDS:
        try:
            load_backend(name)
        except ImportError:
            continue
        return name
    raise BackendUnavailableError("no decoder backend imports: reinstall pose_fast")  # pragma: no cover


#: The backend used by :func:`decode` and by ``Decoder()`` without ``backend=``.
BACKEND = _select_backend()


def _check_params(params: dict) -> dict:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown decoder parameter(s) {', '.join(unknown)}: use {', '.join(DEFAULTS)}")
    p = dict(DEFAULTS, **params)
    for key in ("max_points", "points_per_limb", "min_keypoints"):
        if isinstance(p[key], bool) or not isinstance(p[key], (int, np.integer)):
            raise ValueError(f"{key} must be an integer, got {p[key]!r}")
        p[key] = int(p[key])
    for key in ("score_threshold", "min_paf_score", "min_success_ratio", "delta", "refine_offset"):
        value = p[key]
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        p[key] = float(value)
    if not 1 <= p["max_points"] <= 1000:
        raise ValueError(f"max_points must be between 1 and 1000, got {p['max_points']}")
    if not 2 <= p["points_per_limb"] <= 128:
        raise ValueError(f"points_per_limb must be between 2 and 128, got {p['points_per_limb']}")
    if p["min_keypoints"] < 0:
        raise ValueError(f"min_keypoints must be >= 0, got {p['min_keypoints']}")
    if p["score_threshold"] < 0:
        raise ValueError(f"score_threshold must be >= 0, got {p['score_threshold']}")
    if not 0 <= p["min_success_ratio"] < 1:
        raise ValueError(f"min_success_ratio must be in [0, 1), got {p['min_success_ratio']}")
    if p["delta"] < 0:
        raise ValueError(f"delta must be >= 0, got {p['delta']}")
    return p


def _check_tensor(name: str, array, channels: int, what: str) -> np.ndarray:
    """(C, H, W) view of a (C, H, W) or (1, C, H, W) float32/float16 array, or a ValueError saying what is wrong."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(array).__name__}")
    expected = f"({channels}, H, W) or (1, {channels}, H, W)"
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise ValueError(f"{name} must have shape {expected} (batch of one), got {array.shape}")
        array = array[0]
    elif array.ndim != 3:
        raise ValueError(f"{name} must have shape {expected}, got rank {array.ndim} shape {array.shape}")
    if array.shape[0] != channels:
        raise ValueError(f"{name} must have {channels} channels ({what}), got {array.shape[0]} in shape "
                         f"{array.shape}")
    if array.dtype != np.float32 and array.dtype != np.float16:
        raise ValueError(f"{name} must be float32 or float16, got {array.dtype}")
    if array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return array


def _check_frame_size(frame_size) -> tuple:
    try:
        width, height = frame_size
    except (TypeError, ValueError):
        raise ValueError(f"frame_size must be (width, height) in pixels, got {frame_size!r}") from None
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"frame_size must be two positive numbers (width, height) in pixels, "
                             f"got {frame_size!r}")
    return float(width), float(height)


class Decoder:
    """Decode heatmaps and PAFs into :class:`~pose_fast.poses.Poses`, reusing its work buffers across frames.

    Parameters
    ----------
    backend : {"cython", "numba", "numpy"}, optional
        Kernel to use; default :data:`BACKEND`.
    max_points, score_threshold, min_paf_score, min_success_ratio, points_per_limb, delta, refine_offset,
    min_keypoints
        Algorithm parameters; see :data:`DEFAULTS`. The defaults reproduce the peer decoder.

    A decoder may be shared between threads (calls are serialised by a lock); the compiled kernels run without the
    GIL, so one decoder per thread decodes in parallel.
    """

    #: Every call returns new keypoint and score arrays (copied out of the kernel's buffers): callers may keep them.
    fresh_arrays = True

    def __init__(self, backend: Optional[str] = None, **params):
        self._params = _check_params(params)
        self.backend = BACKEND if backend is None else backend
        self._module = load_backend(self.backend)
        self._kernels = {}   # (H, W) -> kernel with its work buffers
        self._buffers = {}   # (name, shape) -> float32 C-contiguous conversion buffer
        self._lock = threading.Lock()

    @property
    def params(self) -> MappingProxyType:
        """The algorithm parameters (read-only: make another Decoder to change them)."""
        return MappingProxyType(self._params)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.params.items() if v != DEFAULTS[k]}
        extra = "".join(f", {k}={v!r}" for k, v in changed.items())
        return f"Decoder(backend={self.backend!r}{extra})"

    def _kernel(self, height: int, width: int):
        kernel = self._kernels.get((height, width))
        if kernel is None:
            if len(self._kernels) >= 4:  # a few sources at most; forget the oldest size
                self._kernels.pop(next(iter(self._kernels)))
            kernel = self._module.Kernel(height, width, **self._params)
            self._kernels[(height, width)] = kernel
        return kernel

    def _float32(self, name: str, array: np.ndarray) -> np.ndarray:
        if array.dtype == np.float32 and array.flags.c_contiguous:
            return array
        key = (name, array.shape)
        buffer = self._buffers.get(key)
        if buffer is None:
            self._buffers = {k: v for k, v in self._buffers.items() if k[0] != name}
            buffer = self._buffers[key] = np.empty(array.shape, np.float32)
        np.copyto(buffer, array)
        return buffer

    def __call__(self, heatmaps: np.ndarray, pafs: np.ndarray, frame_size) -> Poses:
        """Decode one frame.

        Parameters
        ----------
        heatmaps : ndarray, shape (19, H, W) or (1, 19, H, W), float32 or float16
            The model's keypoint heatmaps (18 keypoints + background). Any strides.
        pafs : ndarray, shape (38, H, W) or (1, 38, H, W), float32 or float16
            The model's part-affinity fields.
        frame_size : (width, height)
            Size of the source frame; keypoints come back in its pixels: x = (x_heatmap + 0.5) · width / W.

        Returns
        -------
        Poses
            keypoints (P, 18, 3) float32 and scores (P,) float32; missing keypoints are (0, 0, 0).

        Raises
        ------
        ValueError
            Wrong rank, batch, channel count, dtype or spatial size; NaN or Inf values; a bad frame_size.
        """
        heatmaps = _check_tensor("heatmaps", heatmaps, NUM_HEATMAPS, "18 keypoints + background")
        pafs = _check_tensor("pafs", pafs, NUM_PAF_CHANNELS, "19 limbs x (x, y)")
        if pafs.shape[1:] != heatmaps.shape[1:]:
            raise ValueError(f"pafs are {pafs.shape[1]}x{pafs.shape[2]} but heatmaps are "
                             f"{heatmaps.shape[1]}x{heatmaps.shape[2]} (H x W): pass both outputs of one inference")
        width, height = _check_frame_size(frame_size)
        rows, cols = heatmaps.shape[1:]
        with self._lock:
            kernel = self._kernel(rows, cols)
            hm = self._float32("heatmaps", heatmaps)
            pf = self._float32("pafs", pafs)
            count = kernel.run(hm, pf, width / cols, height / rows)  # also checks finiteness
            if count < 0:
                name, array = (("heatmaps", hm), ("pafs", pf))[-count - 1]
                index = np.unravel_index(kernel.first_nonfinite(array.reshape(-1)), array.shape)
                raise ValueError(f"{name} must be finite: found {array[index]} at index "
                                 f"{tuple(int(i) for i in index)}")
            return Poses(kernel.out_kp[:count].copy(), kernel.out_score[:count].copy())

    decode = __call__


_default_decoders = {}
_default_lock = threading.Lock()


def decode(heatmaps: np.ndarray, pafs: np.ndarray, frame_size, **params) -> Poses:
    """Decode one frame with a shared default :class:`Decoder` (one per parameter set) of the active backend.

    See :meth:`Decoder.__call__` for the arguments; ``params`` are :class:`Decoder` parameters.
    """
    key = tuple(sorted(params.items()))
    decoder = _default_decoders.get(key)
    if decoder is None:
        with _default_lock:
            decoder = _default_decoders.get(key)
            if decoder is None:
                if len(_default_decoders) >= 8:
                    _default_decoders.clear()
                decoder = _default_decoders[key] = Decoder(**params)
    return decoder(heatmaps, pafs, frame_size)
