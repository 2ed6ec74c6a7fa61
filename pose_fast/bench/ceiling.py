"""The ceiling: OpenVINO's own ``benchmark_app`` on the same IR, network size and device, per performance hint.

``benchmark_app`` ships with the ``openvino`` wheel (the console script, or ``python -m
openvino.tools.benchmark.main``). It fills the input with random data and runs nothing but inference: what the
device sustains for this model, the figure the engine and the pipeline are compared with
(:func:`pose_fast.bench.targets.compute_ratios`). Without it the ceiling rows are skipped, not failed.
"""
from __future__ import annotations

import importlib.util
import math
import re
import shutil
import subprocess
import sys
from typing import List, Optional, Sequence, Tuple

__all__ = ["benchmark_app_command", "run_benchmark_app", "parse_benchmark_app", "round_seconds", "HINTS"]

#: The pipeline's modes and the benchmark_app hint each is compared with.
HINTS = {"latency": "latency", "throughput": "throughput"}
_TIMEOUT_S = 120  # compile + run; a hung benchmark_app must not hang the bench


def benchmark_app_command() -> Optional[List[str]]:
    """How to start ``benchmark_app`` here (the console script, else the module), or None when it is absent."""
    exe = shutil.which("benchmark_app")
    if exe:
        return [exe]
    try:
        if importlib.util.find_spec("openvino.tools.benchmark.main") is not None:
            return [sys.executable, "-m", "openvino.tools.benchmark.main"]
    except (ImportError, ValueError):
        pass
    return None


def round_seconds(frames: int, fps_guess: float = 25.0) -> int:
    """benchmark_app's ``-t`` for one round: about as long as a pipeline round of ``frames`` takes at
    ``fps_guess``, at least 1 s."""
    return max(1, int(math.ceil(frames / fps_guess)))


def parse_benchmark_app(text: str) -> dict:
    """``fps``, ``latency_p50_ms`` and ``requests`` from benchmark_app's log (its ``Throughput:`` line, the
    median latency, the requests it ran); raises ValueError when there is no throughput line."""
    fps = re.search(r"Throughput:\s*([0-9.]+)\s*FPS", text)
    if not fps:
        raise ValueError("benchmark_app printed no 'Throughput:' line")
    median = re.search(r"Median:\s*([0-9.]+)\s*ms", text)
    requests = (re.search(r"(\d+) inference requests", text)  # "Start inference asynchronously, 2 ..."
                or re.search(r"OPTIMAL_NUMBER_OF_INFER_REQUESTS:\s*(\d+)", text))  # the latency hint says only this
    return {"fps": float(fps.group(1)), "latency_p50_ms": float(median.group(1)) if median else None,
            "requests": int(requests.group(1)) if requests else None}


def run_benchmark_app(command: Sequence[str], xml, device: str, hint: str, network_size: Tuple[int, int],
                      seconds: int, infer_precision: Optional[str] = None) -> dict:
    """One benchmark_app run: the model reshaped to ``network_size`` (w, h), ``-hint``, ``-t seconds``.

    Returns the parsed figures (:func:`parse_benchmark_app`) with the command line, or ``{"error": ...}``.
    """
    width, height = network_size
    args = [*command, "-m", str(xml), "-d", device, "-hint", hint, "-shape", f"[1,3,{height},{width}]",
            "-t", str(int(seconds))]
    if infer_precision:
        args += ["-infer_precision", infer_precision]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT_S + seconds)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"benchmark_app did not run: {exc}", "args": args}
    try:
        result = parse_benchmark_app(done.stdout + done.stderr)
    except ValueError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"error": f"benchmark_app failed: {tail[0]}", "args": args}
    result["args"] = args
    return result
