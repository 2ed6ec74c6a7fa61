"""Property tests (hypothesis): the backends agree on anything; nothing in, nobody out; bad input, ValueError."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import REQUIRED_BACKENDS, backend_or_skip, random_scene

from pose_fast.decoding import Decoder, available_backends

#: POSE_FAST_HYPOTHESIS_EXAMPLES=2000 for a long run.
SETTINGS = settings(max_examples=int(os.environ.get("POSE_FAST_HYPOTHESIS_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tensors(draw):
    """(heatmaps (19, H, W), pafs (38, H, W)) of a random kind, float32 or float16."""
    kind = draw(st.sampled_from(["uniform", "sparse", "plateau", "scene"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if kind == "scene":  # a synthetic scene, perturbed
        scene = random_scene(rng, count=draw(st.integers(1, 5)))
        noise = draw(st.floats(0.0, 0.3))
        heatmaps = scene.heatmaps + rng.normal(0, noise, scene.heatmaps.shape)
        pafs = scene.pafs + rng.normal(0, noise, scene.pafs.shape)
    else:
        height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
        if kind == "uniform":
            heatmaps = rng.random((19, height, width)) * draw(st.floats(0.05, 2.0))
        elif kind == "sparse":
            heatmaps = np.zeros((19, height, width))
            count = draw(st.integers(0, 40))
            heatmaps[rng.integers(0, 19, count), rng.integers(0, height, count), rng.integers(0, width, count)] = \
                rng.random(count)
        else:  # a few levels only: plateaus, tied scores and tied connections
            heatmaps = rng.integers(0, 4, (19, height, width)) / 4.0
        pafs = rng.uniform(-1, 1, (38, height, width))
        if kind == "plateau":
            pafs = np.round(pafs * 2) / 2
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    return heatmaps.astype(dtype), pafs.astype(dtype)


PARAMS = st.fixed_dictionaries({}, optional={
    "max_points": st.integers(1, 100),
    "score_threshold": st.floats(0.0, 0.6),
    "min_paf_score": st.floats(-0.5, 0.5),
    "min_success_ratio": st.floats(0.0, 0.95),
    "points_per_limb": st.integers(2, 20),
    "delta": st.floats(0.0, 1.0),
    "refine_offset": st.floats(0.0, 0.5),
    "min_keypoints": st.integers(0, 6),
})

FRAME = st.tuples(st.integers(1, 4000), st.integers(1, 4000))


@pytest.fixture(scope="module")
def names():
    """The available backends (fails when one that POSE_FAST_REQUIRE_BACKENDS lists is missing)."""
    for name in REQUIRED_BACKENDS:
        backend_or_skip(name)
    return available_backends()


@SETTINGS
@given(data=tensors(), params=PARAMS, frame=FRAME)
def test_backends_agree_with_the_reference(names, data, params, frame):
    heatmaps, pafs = data
    reference = Decoder("numpy", **params)(heatmaps, pafs, frame)
    for name in names:
        poses = Decoder(name, **params)(heatmaps, pafs, frame)
        assert len(poses) == len(reference), name
        np.testing.assert_allclose(poses.keypoints, reference.keypoints, rtol=0, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(poses.scores, reference.scores, rtol=1e-6, atol=1e-6, err_msg=name)
        # what the peer guarantees for every person: a limb at least. (min_keypoints compares the peer's count,
        # which counts a keypoint that a later connection overwrites twice: a person may show fewer.)
        seen = poses.keypoints[..., 2] > 0
        assert np.all(seen.sum(axis=1) >= 2)
        assert np.all(poses.keypoints[~seen] == 0)


@SETTINGS
@given(height=st.integers(1, 40), width=st.integers(1, 40), batch=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float16]), level=st.sampled_from([0.0, -0.0, -1.0, 0.05]))
def test_flat_input_gives_no_people(names, height, width, batch, dtype, level):
    heatmaps = np.full((19, height, width), level, dtype)
    pafs = np.full((38, height, width), level, dtype)
    if batch:
        heatmaps, pafs = heatmaps[None], pafs[None]
    for name in names:
        poses = Decoder(name)(heatmaps, pafs, (456, 256))
        assert len(poses) == 0 and poses.keypoints.shape == (0, 18, 3)


@SETTINGS
@given(data=tensors(), which=st.sampled_from(["heatmaps", "pafs"]), value=st.sampled_from([np.nan, np.inf, -np.inf]),
       where=st.integers(0, 2 ** 31))
def test_non_finite_values_raise_value_error(names, data, which, value, where):
    arrays = {"heatmaps": data[0].copy(), "pafs": data[1].copy()}
    target = arrays[which]
    index = np.unravel_index(where % target.size, target.shape)
    target[index] = value
    for name in names:
        with pytest.raises(ValueError, match=f"{which} must be finite: found .* at index "
                                             rf"\({', '.join(str(int(i)) for i in index)}\)"):
            Decoder(name)(arrays["heatmaps"], arrays["pafs"], (456, 256))


SHAPES = st.lists(st.integers(0, 40), min_size=0, max_size=6)


@SETTINGS
@given(shape=SHAPES, which=st.sampled_from(["heatmaps", "pafs"]))
def test_wrong_rank_or_channels_raise_value_error(names, shape, which):
    channels = 19 if which == "heatmaps" else 38
    shape = tuple(shape)
    valid = (len(shape) == 3 and shape[0] == channels) or (len(shape) == 4 and shape[:2] == (1, channels))
    if valid:  # make it invalid by changing the channel count
        shape = shape[:-3] + (channels + 1,) + shape[-2:]
    arrays = {"heatmaps": np.zeros((19, 4, 5), np.float32), "pafs": np.zeros((38, 4, 5), np.float32)}
    arrays[which] = np.zeros(shape, np.float32)
    for name in names:
        with pytest.raises(ValueError, match=f"{which} must (have|not be)"):
            Decoder(name)(arrays["heatmaps"], arrays["pafs"], (456, 256))


@SETTINGS
@given(dtype=st.sampled_from([np.float64, np.int8, np.uint8, np.int32, np.int64, np.complex64, np.bool_]),
       which=st.sampled_from(["heatmaps", "pafs"]))
def test_wrong_dtype_raises_value_error(names, dtype, which):
    arrays = {"heatmaps": np.zeros((19, 4, 5), np.float32), "pafs": np.zeros((38, 4, 5), np.float32)}
    arrays[which] = arrays[which].astype(dtype)
    for name in names:
        with pytest.raises(ValueError, match=f"{which} must be float32 or float16, got {np.dtype(dtype)}"):
            Decoder(name)(arrays["heatmaps"], arrays["pafs"], (456, 256))
