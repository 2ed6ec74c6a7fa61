"""Decoder timings on real model outputs: every backend and the peer, the peer's two parts apart, then the crowd
scene (:mod:`~pose_fast.bench.crowd`) and numba's compile in a fresh process (:mod:`~pose_fast.bench.numba_compile`)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from .crowd import measure_crowd
from .numba_compile import numba_first_call_fresh
from .peer import PEER_KIND, peer_decoder
from .plan import Progress
from .timing import summarize, time_calls, timing_row

__all__ = ["measure_decoders"]


def measure_decoders(outputs: list, frame_size: tuple, count: int, progress: Progress, tmp: Path,
                     numba_here: Optional[dict] = None) -> dict:
    """Every backend (and the peer) decodes the same outputs ``count`` times in all; per-call ms and poses. Then the
    peer's two parts apart, every decoder on the 10-person scene, and numba's compile in a fresh process."""
    from ..decoding import BACKEND, BACKENDS, Decoder, available_backends

    found = available_backends()
    rows, skipped, decoders = [], [], {}
    inputs = [(h, p, frame_size) for h, p in outputs]
    for name in BACKENDS:
        if name not in found:
            skipped.append({"name": name, "reason": f"the {name} backend does not import on this machine"})
            progress(f"decode {name}", 1)
            continue
        progress(f"decode {name}", 0)
        decoder = decoders[name] = Decoder(backend=name)
        decoder(*outputs[0], frame_size=frame_size)  # warm-up (numba compiles, buffers are allocated)
        people = sum(len(decoder(h, p, frame_size=frame_size)) for h, p in outputs)
        times = time_calls(decoder, inputs, count)
        progress(f"decode {name}", 1)
        rows.append(timing_row(name, "pose_fast", times, people, default=name == BACKEND))
    peer, reason = peer_decoder()
    parts = []
    if peer is None:
        skipped.append({"name": "peer", "reason": reason})
        progress("decode peer", 2)
    else:
        progress("decode peer", 0)
        peer(*outputs[0], frame_size)
        people = sum(len(peer(h, p, frame_size)[1]) for h, p in outputs)
        times, parts = _time_peer(peer, outputs, frame_size, count)
        progress("decode peer", 2)
        rows.append(timing_row("peer", PEER_KIND, times, people))
    crowd = measure_crowd(outputs, frame_size, count, decoders, peer, progress)
    numba = {"this_process": numba_here, "fresh_process": None}
    if "numba" in found:
        progress("numba compile (fresh process)", 0)
        numba["fresh_process"] = numba_first_call_fresh(tmp)
    progress("numba compile (fresh process)", 1)
    return {"frames": len(outputs), "calls_per_backend": count, "frame_size": list(frame_size),
            "heatmap_size": [int(outputs[0][0].shape[2]), int(outputs[0][0].shape[1])],
            "backends": rows, "skipped": skipped, "peer_parts": parts, "crowd": crowd, "numba_first_call": numba}


def _time_peer(peer, outputs: list, frame_size: tuple, count: int) -> Tuple[List[float], List[dict]]:
    """The peer as the notebook runs it (one call: NMS + grouping), and right after it, on the same output, its NMS
    and its grouping (OpenPoseDecoder) timed apart: the whole's ms per call and the two parts' rows. Interleaved, so
    that a change of load on a shared machine hits the whole and its parts alike."""
    shaped = []
    for heatmaps, pafs in outputs:
        h = np.asarray(heatmaps, np.float32).reshape((1, -1) + heatmaps.shape[-2:])
        p = np.asarray(pafs, np.float32).reshape((1, -1) + pafs.shape[-2:])
        shaped.append((h, p))
    whole_ms, nms_ms, group_ms = [], [], []
    peer.group(shaped[0][0], peer.nms(shaped[0][0]), shaped[0][1])  # warm-up
    for i in range(count):
        heatmaps, pafs = outputs[i % len(outputs)]
        h, p = shaped[i % len(shaped)]
        t0 = time.perf_counter()
        peer(heatmaps, pafs, frame_size)
        t1 = time.perf_counter()
        nms = peer.nms(h)
        t2 = time.perf_counter()
        peer.group(h, nms, p)
        t3 = time.perf_counter()
        whole_ms.append((t1 - t0) * 1000.0)
        nms_ms.append((t2 - t1) * 1000.0)
        group_ms.append((t3 - t2) * 1000.0)
    parts = [{"name": "nms", "kind": "the OpenVINO pose notebook's 3x3 max-pool NMS (NumPy)", **summarize(nms_ms),
              "samples": [round(t, 4) for t in nms_ms]},
             {"name": "grouping", "kind": "openvino-model-api OpenPoseDecoder on NMS'd heatmaps",
              **summarize(group_ms), "samples": [round(t, 4) for t in group_ms]}]
    return whole_ms, parts
