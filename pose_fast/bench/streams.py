"""Concurrent video streams: :func:`run_streams` pushes N streams through N engines (local or remote, as separate
cameras would) and measures them; :func:`measure_streams` makes ``pose-fast bench --server``'s table of 1, 2 and 4
streams beside the local engine and the server's model alone."""
from __future__ import annotations

import threading
import time
from typing import Optional

import numpy as np

from .plan import REQUESTS_PER_STREAM, STREAMS, Progress
from .timing import collect_garbage

__all__ = ["run_streams", "measure_streams"]


def run_streams(make_engine, frames: list, streams: int = 1, frames_per_stream: int = 30, warmup: int = 2,
                clocks: Optional[dict] = None) -> dict:
    """Push ``streams`` concurrent video streams through engines (one per stream, as separate cameras would) and
    measure them; works for :class:`~pose_fast.engines.remote.RemoteEngine` and the local
    :class:`~pose_fast.engines.local.Engine` alike.

    ``make_engine()`` returns a new engine; each stream submits ``frames_per_stream`` frames (cycling through
    ``frames``) as fast as its engine accepts them. Returns ``aggregate_fps``, ``per_stream_fps`` (list),
    ``latency_p50_ms`` / ``latency_p99_ms`` (per request, as the engine measured it: send to answer),
    ``dropped``, ``cpu_ms_per_frame`` and the inputs.

    ``clocks`` maps names to callables returning CPU seconds (default: this process's, ``client``); each is read
    when the measured part starts and ends, and ``cpu_ms_per_frame[name]`` is its CPU time per frame answered.
    Unlike FPS, CPU time per frame does not depend on what else the machine is running.
    """
    if streams < 1 or frames_per_stream < 1 or not frames:
        raise ValueError("need at least one stream, one frame per stream and one frame")
    height, width = frames[0].shape[:2]
    engines = [make_engine() for _ in range(streams)]
    try:
        latencies = [[] for _ in range(streams)]
        got = [0] * streams
        spans = [None] * streams
        clocks = dict(clocks or {"client": time.process_time})
        cpu_start = {}
        barrier = threading.Barrier(streams, action=lambda: cpu_start.update((k, f()) for k, f in clocks.items()))
        errors = []
        count_lock = threading.Lock()

        def stream(index: int) -> None:
            engine = engines[index]
            engine.prepare(width, height)

            def done(heatmaps, pafs, userdata, infer_ms):
                if userdata >= 0 and heatmaps is not None:
                    with count_lock:
                        latencies[index].append(infer_ms)
                        got[index] += 1

            try:
                engine.set_callback(done)
                for i in range(warmup):
                    engine.submit(frames[i % len(frames)], -1)
                engine.wait_all()
                barrier.wait()
                start = time.perf_counter()
                for i in range(frames_per_stream):
                    engine.submit(frames[i % len(frames)], i)
                engine.wait_all()
                spans[index] = (start, time.perf_counter())
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=stream, args=(i,), name=f"pose-fast-stream-{i}") for i in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        cpu_used = {name: clock() - cpu_start[name] for name, clock in clocks.items()}
    finally:
        for engine in engines:
            engine.close()
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    every = np.array([ms for per in latencies for ms in per], np.float64)
    return {
        "streams": streams,
        "frames_per_stream": frames_per_stream,
        "frame_size": (width, height),
        "aggregate_fps": sum(got) / wall if wall > 0 else 0.0,
        "per_stream_fps": [n / (end - start) for n, (start, end) in zip(got, spans)],
        "latency_p50_ms": float(np.percentile(every, 50)) if every.size else None,
        "latency_p99_ms": float(np.percentile(every, 99)) if every.size else None,
        "dropped": streams * frames_per_stream - sum(got),
        "cpu_ms_per_frame": {name: 1000.0 * used / max(1, sum(got)) for name, used in cpu_used.items()},
    }


def measure_streams(server: str, frames: list, per_stream: int, progress: Progress,
                    local: Optional[tuple] = None, device: str = "CPU", local_skip: str = "") -> dict:
    """1, 2 and 4 concurrent streams against ``server`` (each stream its own RemoteEngine, REQUESTS_PER_STREAM
    requests in flight, ``per_stream`` frames), the local engine on the same frames (``local``: (precision, xml)),
    and the server's model alone: one client keeping as many requests in flight as 4 streams do, over as many
    frames. Measured so that the pairs the targets compare run back to back: local, 1 stream, alone, 4, 2."""
    from ..engines.local import Engine
    from ..engines.remote import RemoteEngine

    most = max(STREAMS)
    alone = most * REQUESTS_PER_STREAM
    height, width = frames[0].shape[:2]

    def remote(requests):
        return lambda: RemoteEngine(server, num_requests=requests, mode="throughput")

    plan = []
    if local is not None:
        precision, xml = local
        plan.append(("local", 1, REQUESTS_PER_STREAM, per_stream,
                     lambda: Engine(model=xml, device=device, precision=precision, mode="throughput")))
    plan += [("remote", 1, REQUESTS_PER_STREAM, per_stream, remote(REQUESTS_PER_STREAM)),
             ("server_alone", 1, alone, per_stream * most, remote(alone))]
    plan += [("remote", n, REQUESTS_PER_STREAM, per_stream, remote(REQUESTS_PER_STREAM))
             for n in sorted(STREAMS, reverse=True) if n > 1]
    if local is None:
        progress("streams local", per_stream)
    rows = []
    for run, streams, warmup, n, make in plan:
        label = {"local": "streams: local engine", "server_alone": "streams: server alone"}.get(
            run, f"streams: {streams} remote")
        progress(label, 0)
        requests = []

        def counted(make=make, requests=requests):
            engine = make()
            engine.prepare(width, height)  # run_streams prepares too (a no-op then); the local engine's count of
            requests.append(int(engine.num_requests))  # requests is known once it is compiled
            return engine

        result = run_streams(counted, frames, streams, n, warmup=warmup)
        collect_garbage()  # the closed engines are freed here, in the main thread
        rows.append({"run": run, "streams": streams, "requests_per_stream": requests[0],
                     "frames_per_stream": n, "aggregate_fps": result["aggregate_fps"],
                     "per_stream_fps": list(result["per_stream_fps"]), "latency_p50_ms": result["latency_p50_ms"],
                     "latency_p99_ms": result["latency_p99_ms"], "dropped": int(result["dropped"]),
                     "client_cpu_ms_per_frame": result["cpu_ms_per_frame"].get("client")})
        progress(label, streams * n)
    order = [f"{r['run']} {r['streams']}" for r in rows]
    rank = {"local": 0, "server_alone": 1, "remote": 2}
    rows.sort(key=lambda r: (rank[r["run"]], r["streams"]))
    return {"server": server, "requests_per_stream": REQUESTS_PER_STREAM, "frames_per_stream": per_stream,
            "server_alone_requests": alone, "local_precision": local[0] if local else None,
            "local_model": str(local[1]) if local else None, "local_skipped": "" if local else local_skip,
            "measured_order": order, "rows": rows}
