"""The peer decoder the report compares against: Open Model Zoo's ``OpenPoseDecoder`` (openvino-model-api), loaded
without changing OpenVINO for the rest of the process (:func:`peer_decoder`), behind the OpenVINO pose notebook's
3×3 max-pool NMS (:func:`heatmap_nms`)."""
from __future__ import annotations

import sys
import threading
from typing import Callable, Dict, Optional, Tuple

import numpy as np

__all__ = ["PEER_KIND", "peer_decoder", "heatmap_nms"]

PEER_KIND = "openvino-model-api OpenPoseDecoder + the notebook's 3x3 NMS"

_peer_lock = threading.Lock()
_peer_state: Dict[str, object] = {}


def peer_decoder() -> Tuple[Optional[Callable], str]:
    """The peer decoder, ``(decode, "")``, or ``(None, reason)`` when openvino-model-api does not import.

    ``decode(heatmaps, pafs, frame_size=None) -> (poses (P,17,3), scores (P,))`` takes (19,H,W) or (1,19,H,W)
    heatmaps and (38,H,W) or (1,38,H,W) PAFs and runs Open Model Zoo's ``OpenPoseDecoder`` (openvino-model-api
    0.2.5) behind the OpenVINO pose notebook's 3×3 max-pool NMS (:func:`heatmap_nms`), so it does the same work as
    our backends: raw heatmaps in, people out. Keypoints are scaled to ``frame_size`` (width, height) when given,
    else they stay in heatmap pixels. (``pip install --no-deps openvino-model-api==0.2.5 scipy``.)

    Its two parts, to time them apart: ``decode.nms`` (:func:`heatmap_nms`) and ``decode.group(heatmaps, nms,
    pafs)`` (``OpenPoseDecoder`` itself, on (1, C, H, W) float32 maps).

    openvino-model-api 0.2.5 imports ``openvino.runtime``, which OpenVINO 2025+ no longer has: the alias
    ``openvino.runtime -> openvino`` is installed only for that import and removed again afterwards, so the rest
    of the process sees OpenVINO unchanged.
    """
    with _peer_lock:
        if "result" not in _peer_state:
            _peer_state["result"] = _load_peer()
        return _peer_state["result"]  # type: ignore[return-value]


def _load_peer():
    import warnings

    try:
        import openvino
    except ImportError as exc:  # pragma: no cover - pose_fast needs OpenVINO anyway
        return None, f"OpenVINO does not import ({exc})"
    added = []
    try:
        try:
            import openvino.runtime  # noqa: F401 - OpenVINO < 2025 still has it
        except ImportError:
            sys.modules["openvino.runtime"] = openvino
            added.append("openvino.runtime")
        before = set(sys.modules)
        try:
            with warnings.catch_warnings():  # it imports numpy.core.umath, deprecated in NumPy 2
                warnings.simplefilter("ignore", DeprecationWarning)
                from model_api.models.open_pose import OpenPoseDecoder
        except Exception as exc:  # noqa: BLE001 - any import failure means "no peer"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return None, (f"openvino-model-api does not import ({first}): install it with `pip install --no-deps "
                          f"openvino-model-api==0.2.5 scipy` to compare against the peer decoder")
        added.extend(name for name in set(sys.modules) - before if name.startswith("openvino.runtime."))
    finally:
        for name in added:
            sys.modules.pop(name, None)
    peer = OpenPoseDecoder()

    def decode(heatmaps: np.ndarray, pafs: np.ndarray, frame_size=None):
        heatmaps = np.asarray(heatmaps, np.float32).reshape((1, -1) + heatmaps.shape[-2:])
        pafs = np.asarray(pafs, np.float32).reshape((1, -1) + pafs.shape[-2:])
        poses, scores = peer(heatmaps, heatmap_nms(heatmaps), pafs)
        if frame_size is not None:
            height, width = heatmaps.shape[-2:]
            poses[:, :, :2] *= (frame_size[0] / width, frame_size[1] / height)
        return poses, scores

    decode.__doc__ = "OpenPoseDecoder (openvino-model-api) behind the OpenVINO pose notebook's 3x3 max-pool NMS"
    decode.nms = heatmap_nms
    decode.group = peer
    return decode, ""


def heatmap_nms(heatmaps: np.ndarray) -> np.ndarray:
    """``heatmaps * (heatmaps == maxpool3(heatmaps))`` for (C, H, W) or (1, C, H, W) float32 maps: the NMS the
    peer decoder expects, computed as the OpenVINO pose notebook's ``pool2d`` does it (3×3, zero padding, stride
    1, a strided window view and ``max`` per channel), so the peer is timed as people run it."""
    from numpy.lib.stride_tricks import as_strided

    heatmaps = np.asarray(heatmaps, np.float32)
    maps = heatmaps.reshape((-1,) + heatmaps.shape[-2:])
    pooled = np.empty_like(maps)
    for c in range(maps.shape[0]):
        padded = np.pad(maps[c], 1, mode="constant")
        shape = (padded.shape[0] - 2, padded.shape[1] - 2, 3, 3)
        windows = as_strided(padded, shape=shape, strides=padded.strides * 2)
        pooled[c] = windows.reshape(-1, 3, 3).max(axis=(1, 2)).reshape(shape[:2])
    return heatmaps * (heatmaps == pooled.reshape(heatmaps.shape))
