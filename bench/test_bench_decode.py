"""Decoding only: each backend per frame against the peer decoder, in the same run (pytest-benchmark).

Scenes: ``real`` cycles through real model outputs on frames of store-aisle that show three or four shoppers;
``crowd10`` is the synthetic 10-person scene of ``tests/synthetic.py`` on the model's 32×57 map. One round decodes
one frame. The peer is ``OpenPoseDecoder`` (openvino-model-api 0.2.5) behind the OpenVINO pose notebook's NMS
(``heatmaps * (heatmaps == pool2d(heatmaps))``); its benchmark records in ``extra_info`` how many times faster each
backend measured in this run was (``speedup_<backend>``). The numba benchmark records its first-call compile time
(``numba_compile_s``: a fresh process with an empty cache) and the first call with a warm cache
(``numba_cached_first_call_s``).

Targets (issue 4): Cython ≤ 0.5 ms per frame up to 10 people and ≥ 20× the peer; numba within 2× of Cython.
Nothing here asserts a time; with ``--benchmark-disable`` each body runs once and the answers are checked.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from synthetic import backend_or_skip, crowd_scene, peer_decoder  # noqa: E402

from pose_fast.decoding import BACKENDS, Decoder  # noqa: E402

SCENES = ("real", "crowd10")
#: store-aisle frames 40.. show three or four shoppers
REAL_VIDEO, REAL_START, REAL_COUNT = "store-aisle", 40, 4

_medians = {}  # (scene, backend) -> median seconds, for the peer's speed-up figures


@pytest.fixture(scope="module")
def scenes(engine_for, read_frames):
    """scene name -> list of (heatmaps, pafs, frame_size)."""
    frames = read_frames(REAL_VIDEO, REAL_COUNT, REAL_START)
    height, width = frames[0].shape[:2]
    engine = engine_for(width, height)
    real = []
    for frame in frames:
        heatmaps, pafs = engine.infer(frame)
        real.append((np.array(heatmaps), np.array(pafs), (width, height)))
    crowd = crowd_scene()
    return {"real": real, "crowd10": [(crowd.heatmaps, crowd.pafs, (456, 256))]}


def _round(decode_one, inputs):
    cycle = itertools.cycle(inputs)

    def one():
        heatmaps, pafs, size = next(cycle)
        return decode_one(heatmaps, pafs, size)

    return one


def _record(benchmark, scene, name):
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        _medians[(scene, name)] = median
        benchmark.extra_info["median_ms"] = round(median * 1e3, 4)


def _canonical(poses: np.ndarray) -> np.ndarray:
    return poses[np.lexsort(poses.reshape(len(poses), -1).T[::-1])] if len(poses) else poses


def _numba_first_call(cache_dir: str) -> float:
    code = (
        "import time\n"
        "from synthetic import crowd_scene\n"
        "s = crowd_scene()\n"
        "from pose_fast.decoding import Decoder\n"
        "d = Decoder('numba')\n"
        "t = time.perf_counter(); d(s.heatmaps, s.pafs, s.size); first = time.perf_counter() - t\n"
        "t = time.perf_counter(); d(s.heatmaps, s.pafs, s.size); second = time.perf_counter() - t\n"
        "print(first - second)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.split()[-1])


@pytest.mark.parametrize("scene", SCENES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_decode(benchmark, scenes, bench_smoke, backend, scene):
    """One frame through ``Decoder(backend)``: validation, conversion and kernel, as the pipeline calls it."""
    backend_or_skip(backend)
    decoder = Decoder(backend)
    inputs = scenes[scene]
    expected = Decoder("numpy")
    for heatmaps, pafs, size in inputs:  # warm-up (numba compiles or loads its cache) and the answers
        got = decoder(heatmaps, pafs, size)
        want = expected(heatmaps, pafs, size)
        np.testing.assert_array_equal(got.keypoints, want.keypoints)
    people = [len(decoder(*x)) for x in inputs]
    assert (min(people) >= 2) if scene == "real" else (people == [10])
    benchmark.extra_info.update(backend=backend, scene=scene, people=people,
                                map=f"{inputs[0][0].shape[2]}x{inputs[0][0].shape[1]}")
    if backend == "numba" and scene == "real" and not bench_smoke:
        with tempfile.TemporaryDirectory() as cache:
            benchmark.extra_info["numba_compile_s"] = round(_numba_first_call(cache), 3)
            benchmark.extra_info["numba_cached_first_call_s"] = round(_numba_first_call(cache), 3)
    benchmark(_round(decoder, inputs))
    _record(benchmark, scene, backend)


@pytest.mark.parametrize("scene", SCENES)
def test_peer(benchmark, scenes, scene):
    """The peer: the notebook's max-pool NMS + ``OpenPoseDecoder``, on the same frames, after our backends."""
    peer = peer_decoder()
    inputs = scenes[scene]
    ours = Decoder("numpy")
    for heatmaps, pafs, size in inputs:
        poses, _ = peer(heatmaps, pafs, size)
        mine = ours(heatmaps, pafs, size).to_coco17()
        # the same people; among exactly tied scores (the synthetic crowd's identical people) the peer's order
        # follows NumPy's unstable sort, so compare them in a canonical order
        np.testing.assert_allclose(_canonical(poses), _canonical(mine), atol=1e-4)
    benchmark.extra_info.update(backend="peer", scene=scene)
    benchmark(_round(peer, inputs))
    _record(benchmark, scene, "peer")
    peer_median = _medians.get((scene, "peer"))
    if peer_median:
        for name in BACKENDS:
            median = _medians.get((scene, name))
            if median:
                benchmark.extra_info[f"speedup_{name}"] = round(peer_median / median, 1)
        if _medians.get((scene, "cython")) and _medians.get((scene, "numba")):
            benchmark.extra_info["numba_over_cython"] = round(_medians[(scene, "numba")] /
                                                              _medians[(scene, "cython")], 2)
