"""How much a run measures: frames per measurement, the concurrent streams, the event store's sizes, and the length
of the progress bar (:func:`plan_units`) that ``pose-fast bench`` draws while
:func:`~pose_fast.bench.run.run_bench` reports its steps."""
from __future__ import annotations

from typing import Callable

__all__ = ["DEFAULT_FRAMES", "STREAMS", "REQUESTS_PER_STREAM", "EVENTS_WRITTEN", "EVENTS_TABLE",
           "DETECTIONS_REQUESTS", "DECODE_STEPS", "EVENTS_STEPS", "TRACKING_STEPS", "Progress", "plan_units",
           "stream_units", "decode_units"]

#: Frames per measurement (inference only and pipeline, each mode) in a default run.
DEFAULT_FRAMES = 200
#: Concurrent streams measured with --server, each its own RemoteEngine with this many requests in flight.
STREAMS = (1, 2, 4)
REQUESTS_PER_STREAM = 4
#: Event store: events written for the write rate, rows in the table /detections pages through, pages requested.
EVENTS_WRITTEN = 50_000
EVENTS_TABLE = 200_000
DETECTIONS_REQUESTS = 200

Progress = Callable[[str, int], None]  # progress(label of the current step, units just finished)


def plan_units(frames: int, precisions: int, events: bool = True, server: bool = False) -> int:
    """Progress-bar length of a run: frames per measurement × 4 per precision, the streams (with ``server``),
    decoding, identities, events."""
    return (frames * 4 * max(1, precisions) + (stream_units(frames) if server else 0) + decode_units(frames)
            + TRACKING_STEPS + (EVENTS_STEPS if events else 0))


def stream_units(frames: int) -> int:
    """Frames pushed by the streams measurement: local 1×N, every stream count's streams × N, and the server
    alone max(STREAMS)×N."""
    return frames * (1 + sum(STREAMS) + max(STREAMS))


def decode_units(frames: int) -> int:
    """Decoding takes a while, mostly numba's compile in a fresh process: fixed steps whatever the frame count."""
    return DECODE_STEPS


#: numba's first call here, each backend and the peer on real outputs, the peer's parts, each on the crowd scene,
#: numba's compile in a fresh process.
DECODE_STEPS = 11

#: Identities: decoding the video's frames, the tracker's runs per stride and its cost.
TRACKING_STEPS = 2

#: The event store: writing (3), filling the table /detections pages through (3), the pages (4).
EVENTS_STEPS = 10
