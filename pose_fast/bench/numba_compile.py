"""What numba's first call costs: :func:`numba_first_call` in this process (compiled, or loaded from numba's
on-disk cache) and :func:`numba_first_call_fresh` in a fresh interpreter with an empty cache (the true compile
time)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

__all__ = ["numba_first_call", "numba_first_call_fresh"]


def _numba_dispatchers() -> list:
    from numba.core.dispatcher import Dispatcher

    from .. import _decode_numba

    return [v for v in vars(_decode_numba).values() if isinstance(v, Dispatcher)]


def _numba_cache_counts(dispatchers: list) -> Tuple[int, int]:
    hits = sum(sum(d.stats.cache_hits.values()) for d in dispatchers)
    misses = sum(sum(d.stats.cache_misses.values()) for d in dispatchers)
    return hits, misses


def numba_first_call() -> Optional[dict]:
    """Time the numba backend's first call in this process, and say what it did: ``"compiled"`` (a cache miss),
    ``"loaded from cache"`` (numba's ``cache=True`` found the machine code on disk) or ``"already compiled"``
    (something in this process called it before). None when numba does not import.

    The call decodes an empty 57×32 map: what numba compiles (or loads) depends on the argument types only.
    Returns ``first_call_s``, ``second_call_ms``, ``how``, ``cache_hits``, ``cache_misses`` (numba's counters,
    summed over the backend's functions: only the entry point is looked up in the cache, its callees are compiled
    with it) and ``cache_dir``.
    """
    from ..decoding import Decoder, available_backends

    if "numba" not in available_backends():
        return None
    dispatchers = _numba_dispatchers()
    compiled_before = any(d.signatures for d in dispatchers)
    hits0, misses0 = _numba_cache_counts(dispatchers)
    heatmaps = np.zeros((19, 32, 57), np.float32)
    pafs = np.zeros((38, 32, 57), np.float32)
    decoder = Decoder("numba")
    t0 = time.perf_counter()
    decoder(heatmaps, pafs, (456, 256))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoder(heatmaps, pafs, (456, 256))
    second = time.perf_counter() - t0
    hits, misses = (a - b for a, b in zip(_numba_cache_counts(dispatchers), (hits0, misses0)))
    if compiled_before:
        how = "already compiled"
    elif misses:
        how = "compiled"
    elif hits:
        how = "loaded from cache"
    else:
        how = "unknown"
    from .. import _decode_numba

    return {"first_call_s": first, "second_call_ms": second * 1000.0, "how": how, "cache_hits": int(hits),
            "cache_misses": int(misses), "cache_dir": str(_decode_numba.decode_kernel.stats.cache_path)}


_FRESH_NUMBA = ("import json\n"
                "from pose_fast.bench.numba_compile import numba_first_call\n"
                "print(json.dumps(numba_first_call()))\n")


def numba_first_call_fresh(tmp: Path) -> dict:
    """:func:`numba_first_call` in a fresh interpreter whose ``NUMBA_CACHE_DIR`` is an empty folder: the true
    compile time (or ``{"error": ...}``)."""
    cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=tmp))
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
    try:
        result = subprocess.run([sys.executable, "-c", _FRESH_NUMBA], env=env, capture_output=True, text=True,
                                timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "numba's first call in a fresh process took more than 600 s"}
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the fresh process failed (exit {result.returncode}): {tail}"}
    found = json.loads(lines[-1])
    if not found:
        return {"error": "numba does not import in a fresh process"}
    found["cache_dir"] = "an empty temporary folder (NUMBA_CACHE_DIR)"
    return found
