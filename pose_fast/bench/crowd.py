"""The crowd scene: :func:`tiled_crowd` puts real model outputs side by side into one scene of about
:data:`CROWD_PEOPLE` people, and :func:`measure_crowd` times every decoder on it."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .peer import PEER_KIND
from .plan import Progress
from .timing import time_calls, timing_row

__all__ = ["CROWD_PEOPLE", "CROWD_GAP", "tiled_crowd", "measure_crowd"]

#: People in the crowd scene: the decode targets (issue 4) speak of scenes of up to 10 people.
CROWD_PEOPLE = 10
#: Empty columns between the real outputs put side by side for the crowd scene (no peak or limb crosses a seam).
CROWD_GAP = 2


def tiled_crowd(outputs: list, people: Sequence[int], want: int = CROWD_PEOPLE, gap: int = CROWD_GAP):
    """A scene of ``want`` people made of real model outputs: whole (19|38, H, W) outputs side by side along the
    width, ``gap`` empty columns between them (keypoint and PAF channels 0, background 1), so that no peak or limb
    crosses a seam and each tile decodes as it did alone.

    ``people[i]`` is how many people ``outputs[i]`` holds. The tiles are chosen so that their people add up to
    ``want`` exactly if possible (else the smallest total above it), from distinct outputs if possible, with as few
    tiles as possible. Returns ``(heatmaps, pafs, chosen indices)`` or None when no output holds anyone.
    """
    import itertools
    from collections import Counter

    by_count: Dict[int, List[int]] = {}
    for i, n in enumerate(people):
        if n > 0:
            by_count.setdefault(int(n), []).append(i)
    if not by_count:
        return None
    values = sorted(by_count)
    best = None
    for tiles in range(1, want + 1):
        for combo in itertools.combinations_with_replacement(values, tiles):
            total = sum(combo)
            if total < want:
                continue
            repeats = sum(max(0, n - len(by_count[v])) for v, n in Counter(combo).items())
            key = (total - want, repeats, tiles)
            if best is None or key < best[0]:
                best = (key, combo)
    chosen, used = [], Counter()
    for v in best[1]:
        chosen.append(by_count[v][used[v] % len(by_count[v])])
        used[v] += 1
    chosen.sort()
    heatmaps, pafs = [], []
    for k, i in enumerate(chosen):
        h, p = (np.asarray(a, np.float32).reshape(a.shape[-3:]) for a in outputs[i])
        if k:
            gap_h = np.zeros(h.shape[:2] + (gap,), np.float32)
            gap_h[-1] = 1.0  # the background channel says "nobody here"
            heatmaps.append(gap_h)
            pafs.append(np.zeros(p.shape[:2] + (gap,), np.float32))
        heatmaps.append(h)
        pafs.append(p)
    return np.concatenate(heatmaps, axis=2), np.concatenate(pafs, axis=2), chosen


def measure_crowd(outputs: list, frame_size: tuple, count: int, decoders: dict, peer, progress: Progress) -> dict:
    """Every decoder on one scene of about CROWD_PEOPLE people built by :func:`tiled_crowd` from real outputs."""
    from ..decoding import BACKEND, BACKENDS

    reference = next(iter(decoders.values()), None)
    if reference is None:
        progress("decode crowd", len(BACKENDS) + 1)
        return {"skipped": "no decoder backend imports"}
    people = [len(reference(h, p, frame_size=frame_size)) for h, p in outputs]
    tiled = tiled_crowd(outputs, people)
    if tiled is None:
        progress("decode crowd", len(BACKENDS) + 1)
        return {"skipped": "no frame of the video shows anyone: give a video with people"}
    heatmaps, pafs, chosen = tiled
    width = heatmaps.shape[2]
    size = (max(1, round(frame_size[0] * width / outputs[0][0].shape[-1])), frame_size[1])
    rows = []
    for name in BACKENDS:
        decoder = decoders.get(name)
        progress(f"decode crowd {name}", 0)
        if decoder is not None:
            found = len(decoder(heatmaps, pafs, frame_size=size))
            times = time_calls(decoder, [(heatmaps, pafs, size)], count)
            rows.append(timing_row(name, "pose_fast", times, found, default=name == BACKEND))
        progress(f"decode crowd {name}", 1)
    if peer is not None:
        progress("decode crowd peer", 0)
        found = len(peer(heatmaps, pafs, size)[1])
        times = time_calls(peer, [(heatmaps, pafs, size)], count)
        rows.append(timing_row("peer", PEER_KIND, times, found))
    progress("decode crowd peer", 1)
    return {"frames": chosen, "people_per_frame": [people[i] for i in chosen], "gap": CROWD_GAP,
            "heatmap_size": [int(width), int(heatmaps.shape[1])], "frame_size": list(size),
            "calls_per_backend": count, "backends": rows,
            "scene": (f"the real model outputs of {len(chosen)} video frames ({', '.join(f'#{i}' for i in chosen)}: "
                      f"{' + '.join(str(people[i]) for i in chosen)} people) side by side, {CROWD_GAP} empty columns "
                      f"between them: one {width}×{heatmaps.shape[1]} map")}
