"""Decoder: synthetic scenes recovered by every backend, input handling, validation, backend selection, memory."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from synthetic import (
    REQUIRED_BACKENDS,
    backend_or_skip,
    crowd_scene,
    is_well_posed,
    match,
    overlap_scene,
    random_scene,
)

from pose_fast import decoding as decode_module
from pose_fast.decoding import BACKEND, BACKENDS, Decoder, available_backends, decode
from pose_fast.poses import Poses

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return backend_or_skip(request.param)


@pytest.fixture(scope="module")
def crowd():
    return crowd_scene()


def test_required_backends_are_available():
    missing = [name for name in REQUIRED_BACKENDS if name not in available_backends()]
    assert not missing, f"POSE_FAST_REQUIRE_BACKENDS lists unavailable backends: {missing}"


def test_active_backend_is_the_first_available_or_the_forced_one():
    forced = os.environ.get("POSE_FAST_DECODER", "").strip().lower()
    assert BACKEND == (forced or available_backends()[0])
    assert available_backends()[-1] == "numpy"  # the reference is always there


# --- synthetic scenes ------------------------------------------------------------------------------------------

def test_overlap_scene_is_what_it_claims():
    scene = overlap_scene()
    assert is_well_posed(scene.people, 32, 57)
    boxes = [(p[:, 0].min(), p[:, 0].max()) for p in scene.people[:2]]
    assert boxes[0][1] > boxes[1][0]  # the first two people overlap
    assert scene.expected[2].sum() < 18 and scene.expected[2][1]  # the third is cut, its neck is visible


def test_overlapping_and_cut_people_are_recovered(backend):
    scene = overlap_scene()
    poses = Decoder(backend)(scene.heatmaps, scene.pafs, frame_size=scene.size)
    assert len(poses) == 3
    found = match(scene, poses.keypoints)
    assert sorted(found) == [0, 1, 2], found


def test_ten_person_crowd_is_recovered(backend, crowd):
    poses = Decoder(backend)(crowd.heatmaps, crowd.pafs, frame_size=crowd.size)
    assert len(poses) == 10
    assert sorted(match(crowd, poses.keypoints)) == list(range(10))
    assert np.all(poses.scores > 0)


@pytest.mark.parametrize("seed", range(12))
def test_random_scenes_are_recovered_within_one_pixel(backend, seed):
    rng = np.random.default_rng(seed)
    scene = random_scene(rng, count=1 + seed % 6)
    poses = Decoder(backend)(scene.heatmaps, scene.pafs, frame_size=scene.size)
    assert len(poses) == len(scene.people)
    found = match(scene, poses.keypoints, tolerance=1.0)
    assert -1 not in found and len(set(found)) == len(found), found


def test_all_backends_give_identical_people_on_synthetic_scenes():
    names = available_backends()
    rng = np.random.default_rng(7)
    scenes = [overlap_scene(), crowd_scene()] + [random_scene(rng, 4) for _ in range(4)]
    for scene in scenes:
        noisy_h = scene.heatmaps + rng.normal(0, 0.05, scene.heatmaps.shape).astype(np.float32)
        noisy_p = scene.pafs + rng.normal(0, 0.1, scene.pafs.shape).astype(np.float32)
        results = [Decoder(name)(noisy_h, noisy_p, (640, 360)) for name in names]
        for name, poses in zip(names[1:], results[1:]):
            np.testing.assert_array_equal(poses.keypoints, results[0].keypoints, err_msg=name)
            np.testing.assert_array_equal(poses.scores, results[0].scores, err_msg=name)


# --- coordinates and inputs ------------------------------------------------------------------------------------

def test_coordinates_scale_to_the_frame(backend, crowd):
    decoder = Decoder(backend)
    base = decoder(crowd.heatmaps, crowd.pafs, crowd.size)
    width, height = crowd.size
    scaled = decoder(crowd.heatmaps, crowd.pafs, (8 * width, 8 * height))
    np.testing.assert_array_equal(scaled.keypoints[..., :2], base.keypoints[..., :2] * 8)
    np.testing.assert_array_equal(scaled.keypoints[..., 2], base.keypoints[..., 2])
    odd = decoder(crowd.heatmaps, crowd.pafs, (1000, 333))
    np.testing.assert_allclose(odd.keypoints[..., 0], base.keypoints[..., 0] * 1000 / width, rtol=1e-6)
    np.testing.assert_allclose(odd.keypoints[..., 1], base.keypoints[..., 1] * 333 / height, rtol=1e-6)


def test_result_is_poses_with_missing_keypoints_zero(backend):
    scene = overlap_scene()
    poses = Decoder(backend)(scene.heatmaps, scene.pafs, scene.size)
    assert isinstance(poses, Poses)
    assert poses.keypoints.dtype == np.float32 and poses.scores.dtype == np.float32
    cut = poses.keypoints[match(scene, poses.keypoints)[2]]
    missing = ~scene.expected[2]
    assert missing.any() and np.all(cut[missing] == 0)
    coco = poses.to_coco17()
    assert coco.shape == (3, 17, 3)


def test_batch_dim_float16_and_strided_views_give_the_same_people(backend, crowd):
    decoder = Decoder(backend)
    ref = decoder(crowd.heatmaps, crowd.pafs, (456, 256))
    batched = decoder(crowd.heatmaps[None], crowd.pafs[None], (456, 256))
    np.testing.assert_array_equal(batched.keypoints, ref.keypoints)
    # non-contiguous views: every other column of a wider array, and a Fortran-ordered copy
    wide_h = np.repeat(crowd.heatmaps, 2, axis=2)
    wide_p = np.repeat(crowd.pafs, 2, axis=2)
    strided = decoder(wide_h[:, :, ::2], wide_p[:, :, ::2], (456, 256))
    assert not wide_h[:, :, ::2].flags.c_contiguous
    np.testing.assert_array_equal(strided.keypoints, ref.keypoints)
    fortran = decoder(np.asfortranarray(crowd.heatmaps), np.asfortranarray(crowd.pafs), (456, 256))
    np.testing.assert_array_equal(fortran.keypoints, ref.keypoints)
    # float16 is decoded as its exact float32 value
    h16, p16 = crowd.heatmaps.astype(np.float16), crowd.pafs.astype(np.float16)
    half = decoder(h16, p16, (456, 256))
    via32 = decoder(h16.astype(np.float32), p16.astype(np.float32), (456, 256))
    np.testing.assert_array_equal(half.keypoints, via32.keypoints)
    assert len(half) >= 10  # rounding to float16 can make plateaus (two peaks), as it would for the peer


def test_read_only_inputs_are_accepted(backend, crowd):
    h, p = crowd.heatmaps.copy(), crowd.pafs.copy()
    h.flags.writeable = False
    p.flags.writeable = False
    assert len(Decoder(backend)(h, p, crowd.size)) == 10


def test_zeros_give_no_people(backend):
    poses = Decoder(backend)(np.zeros((19, 32, 57), np.float32), np.zeros((38, 32, 57), np.float32), (456, 256))
    assert len(poses) == 0
    assert poses.keypoints.shape == (0, 18, 3) and poses.scores.shape == (0,)


def test_module_level_decode_uses_the_active_backend(crowd):
    poses = decode(crowd.heatmaps, crowd.pafs, frame_size=crowd.size)
    ref = Decoder("numpy")(crowd.heatmaps, crowd.pafs, crowd.size)
    np.testing.assert_array_equal(poses.keypoints, ref.keypoints)
    strict = decode(crowd.heatmaps, crowd.pafs, frame_size=crowd.size, score_threshold=0.99)
    assert len(strict) == 0  # parameters reach a decoder of their own
    assert len(decode(crowd.heatmaps, crowd.pafs, frame_size=crowd.size)) == 10


def test_parameters_change_the_answer(backend, crowd):
    assert len(Decoder(backend, min_keypoints=19)(crowd.heatmaps, crowd.pafs, crowd.size)) == 0
    few = Decoder(backend, max_points=3)(crowd.heatmaps, crowd.pafs, crowd.size)
    assert 0 < len(few) < 10 and (few.keypoints[..., 2] > 0).sum(axis=0).max() <= 3  # 3 candidates per type
    shifted = Decoder(backend, delta=0.0)(crowd.heatmaps, crowd.pafs, crowd.size)
    base = Decoder(backend)(crowd.heatmaps, crowd.pafs, crowd.size)
    np.testing.assert_allclose(base.keypoints[..., 1][base.keypoints[..., 2] > 0],
                               shifted.keypoints[..., 1][shifted.keypoints[..., 2] > 0] + 0.5)


def test_map_size_can_change_between_calls(backend, crowd):
    decoder = Decoder(backend)
    small = np.zeros((19, 8, 9), np.float32), np.zeros((38, 8, 9), np.float32)
    assert len(decoder(*small, (72, 64))) == 0
    assert len(decoder(crowd.heatmaps, crowd.pafs, crowd.size)) == 10
    assert len(decoder(*small, (72, 64))) == 0


def test_a_shared_decoder_is_thread_safe(backend, crowd):
    decoder = Decoder(backend)
    expected = decoder(crowd.heatmaps, crowd.pafs, crowd.size).keypoints
    other = overlap_scene()
    errors = []

    def work(scene, want):
        for _ in range(30):
            got = decoder(scene.heatmaps, scene.pafs, scene.size).keypoints
            if not np.array_equal(got, want):
                errors.append("mismatch")

    want_other = decoder(other.heatmaps, other.pafs, other.size).keypoints
    threads = [threading.Thread(target=work, args=(crowd, expected)),
               threading.Thread(target=work, args=(other, want_other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- validation ------------------------------------------------------------------------------------------------

H, W = 32, 57
GOOD_H = np.zeros((19, H, W), np.float32)
GOOD_P = np.zeros((38, H, W), np.float32)


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


BAD_INPUTS = [
    (np.zeros((H, W), np.float32), GOOD_P, (456, 256), r"heatmaps must have shape \(19, H, W\) or \(1, 19, H, W\), "
                                                       r"got rank 2"),
    (np.zeros((1, 1, 19, H, W), np.float32), GOOD_P, (456, 256), r"heatmaps .* got rank 5"),
    (np.zeros((2, 19, H, W), np.float32), GOOD_P, (456, 256), r"heatmaps .*batch of one.*\(2, 19, 32, 57\)"),
    (np.zeros((18, H, W), np.float32), GOOD_P, (456, 256), r"heatmaps must have 19 channels .* got 18"),
    (GOOD_H, np.zeros((19, H, W), np.float32), (456, 256), r"pafs must have 38 channels .* got 19"),
    (GOOD_H.astype(np.float64), GOOD_P, (456, 256), r"heatmaps must be float32 or float16, got float64"),
    (GOOD_H, GOOD_P.astype(np.int32), (456, 256), r"pafs must be float32 or float16, got int32"),
    (GOOD_H, np.zeros((38, H, W - 1), np.float32), (456, 256), r"pafs are 32x56 but heatmaps are 32x57"),
    (np.zeros((19, 0, W), np.float32), np.zeros((38, 0, W), np.float32), (456, 256), r"heatmaps must not be empty"),
    (_with(GOOD_H, (3, 10, 12), np.nan), GOOD_P, (456, 256), r"heatmaps must be finite: found nan at index "
                                                             r"\(3, 10, 12\)"),
    (GOOD_H, _with(GOOD_P, (37, 0, 56), -np.inf), (456, 256), r"pafs must be finite: found -inf at index "
                                                              r"\(37, 0, 56\)"),
    (_with(GOOD_H, (0, 0, 0), np.inf).astype(np.float16), GOOD_P, (456, 256), r"heatmaps must be finite"),
    (GOOD_H, GOOD_P, (0, 256), r"frame_size must be two positive numbers"),
    (GOOD_H, GOOD_P, (456, -1), r"frame_size must be two positive numbers"),
    (GOOD_H, GOOD_P, (456, float("nan")), r"frame_size must be two positive numbers"),
    (GOOD_H, GOOD_P, (456, 256, 3), r"frame_size must be \(width, height\)"),
    (GOOD_H, GOOD_P, 456, r"frame_size must be \(width, height\)"),
    (GOOD_H, GOOD_P, ("456", "256"), r"frame_size must be two positive numbers"),
]


@pytest.mark.parametrize("heatmaps, pafs, frame_size, message", BAD_INPUTS)
def test_bad_input_raises_a_precise_value_error(backend, heatmaps, pafs, frame_size, message):
    with pytest.raises(ValueError, match=message):
        Decoder(backend)(heatmaps, pafs, frame_size)


def test_non_arrays_raise_type_error():
    with pytest.raises(TypeError, match="heatmaps must be a NumPy array, got list"):
        decode(GOOD_H.tolist(), GOOD_P, (456, 256))


@pytest.mark.parametrize("params, message", [
    ({"max_points": 0}, "max_points must be between 1 and 1000"),
    ({"points_per_limb": 1}, "points_per_limb must be between 2 and 128"),
    ({"score_threshold": -0.1}, "score_threshold must be >= 0"),
    ({"min_success_ratio": 1.0}, r"min_success_ratio must be in \[0, 1\)"),
    ({"delta": float("inf")}, "delta must be a finite number"),
    ({"min_keypoints": 2.5}, "min_keypoints must be an integer"),
])
def test_bad_parameters_raise_value_error(params, message):
    with pytest.raises(ValueError, match=message):
        Decoder(**params)


def test_unknown_parameter_and_backend_are_named():
    with pytest.raises(TypeError, match="unknown decoder parameter.* threshold"):
        Decoder(threshold=0.2)
    with pytest.raises(ImportError, match="unknown decoder backend 'fortran'"):
        Decoder("fortran")
    decoder = Decoder(score_threshold=0.2)
    assert "score_threshold=0.2" in repr(decoder)
    assert decoder.params["score_threshold"] == 0.2 and decoder.params["max_points"] == 100
    with pytest.raises(TypeError):
        decoder.params["score_threshold"] = 0.5  # read-only: kernels are built from them


# --- memory ----------------------------------------------------------------------------------------------------

def test_repeated_decoding_does_not_grow_memory(backend, crowd):
    decoder = Decoder(backend)
    frames = [(crowd.heatmaps, crowd.pafs), (overlap_scene().heatmaps, overlap_scene().pafs),
              (crowd.heatmaps.astype(np.float16), crowd.pafs.astype(np.float16))]
    for h, p in frames * 3:  # warm up: compile, allocate work buffers
        decoder(h, p, (456, 256))
    tracemalloc.start()
    try:
        for h, p in frames * 10:
            decoder(h, p, (456, 256))
        before = tracemalloc.take_snapshot()
        for h, p in frames * 100:
            decoder(h, p, (456, 256))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 16 * 1024, f"{growth} bytes more after 300 more frames"


# --- backend selection -----------------------------------------------------------------------------------------

def _run(code: str, env_value, prelude: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("POSE_FAST_DECODER", None)
    if env_value is not None:
        env["POSE_FAST_DECODER"] = env_value
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True,
                          timeout=300, cwd=str(ROOT))


DECODE_ONE = (
    "import pose_fast.decoding as d\n"
    "from synthetic import crowd_scene\n"
    "s = crowd_scene()\n"
    "print(d.BACKEND, len(d.decode(s.heatmaps, s.pafs, s.size)), d.Decoder().backend)\n"
)


def test_environment_variable_forces_each_backend(backend):
    result = _run(DECODE_ONE, backend.upper())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [backend, "10", backend]


@pytest.mark.parametrize("name, hide, hint", [
    ("cython", "pose_fast._decode", "python setup.py build_ext --inplace"),
    ("numba", "numba", "pip install numba"),
])
def test_forcing_a_missing_backend_fails_clearly(name, hide, hint):
    result = _run(DECODE_ONE, name, prelude=f"import sys\nsys.modules[{hide!r}] = None\n")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pose_fast.errors.BackendUnavailableError: POSE_FAST_DECODER=" + name)
    assert f"the {name} decoder backend is unavailable" in last and hint in last
    assert "unset POSE_FAST_DECODER" in last


def test_a_stale_compiled_backend_is_not_used():
    prelude = ("import sys, types\n"
               "stale = types.ModuleType('pose_fast._decode')\n"
               "stale.__file__ = '/site/pose_fast/_decode.so'\n"
               "sys.modules['pose_fast._decode'] = stale\n")
    forced = _run(DECODE_ONE, "cython", prelude=prelude)
    assert forced.returncode != 0
    assert "/site/pose_fast/_decode.so is stale" in forced.stderr and "build_ext --inplace" in forced.stderr
    fallback = _run(DECODE_ONE, None, prelude=prelude)
    assert fallback.returncode == 0, fallback.stderr
    assert fallback.stdout.split()[0] != "cython"


def test_a_missing_backend_falls_back_in_order():
    result = _run(DECODE_ONE, None, prelude="import sys\nsys.modules['pose_fast._decode'] = None\n")
    assert result.returncode == 0, result.stderr
    expected = "numba" if "numba" in available_backends() else "numpy"
    assert result.stdout.split() == [expected, "10", expected]


def test_unknown_backend_name_fails_clearly():
    result = _run(DECODE_ONE, "fortran")
    assert result.returncode != 0
    assert ("POSE_FAST_DECODER='fortran' is not a decoder backend: set it to one of cython, numba, numpy"
            in result.stderr)


# --- numba's cache directory -----------------------------------------------------------------------------------

def test_numba_cache_moves_out_of_a_read_only_package(tmp_path, monkeypatch):
    backend_or_skip("numba")
    from pose_fast import _decode_numba

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the package directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    env = {}
    chosen = _decode_numba.configure_cache(str(blocker / "pose_fast"), env)
    assert chosen == str(tmp_path / "cache" / "pose_fast" / "numba")
    assert env == {"NUMBA_CACHE_DIR": chosen} and os.path.isdir(chosen)
    # the user's choice wins, and a writable package keeps numba's default
    assert _decode_numba.configure_cache(str(blocker / "pose_fast"), {"NUMBA_CACHE_DIR": "/x"}) is None
    writable = tmp_path / "pkg"
    writable.mkdir()
    env = {}
    assert _decode_numba.configure_cache(str(writable), env) is None and env == {}


def test_decode_module_exports():
    assert set(decode_module.__all__) <= set(dir(decode_module))
