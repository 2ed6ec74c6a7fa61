"""The tracker's compiled kernels (``pose_fast._track``) against their NumPy reference (``pose_fast._track_ref``), on
random scenes: people, their fragments (half a body near the whole one), keypoints missing, empty scenes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import compiled_tracker_kernels

from pose_fast import _track_ref, tracking


@pytest.fixture(scope="module")
def compiled():
    return compiled_tracker_kernels()


def test_the_tracker_uses_the_compiled_kernels_when_they_are_built(compiled):
    assert compiled.KERNEL_API == tracking.KERNEL_API == _track_ref.KERNEL_API
    assert tracking.KERNELS is compiled
    assert tracking.Tracker()._kernels is compiled


def scene(seed, people, tracks):
    """Detections (P, 18, 3) around ``people`` centres, a third of them followed by a fragment of themselves, and
    the state of ``tracks`` tracks near them (keypoints, boxes, velocities, moving, last seen)."""
    rng = np.random.default_rng(seed)
    template = rng.uniform(-0.5, 0.5, (18, 2)) * (0.4, 1.0)
    poses = []
    for _ in range(people):
        height = rng.uniform(20, 400)
        kp = np.zeros((18, 3))
        kp[:, :2] = template * height + rng.uniform(0, 1000, 2) + rng.normal(0, 2, (18, 2))
        kp[:, 2] = rng.uniform(0, 1, 18) * (rng.uniform(size=18) > rng.uniform(0, 0.6))
        poses.append(kp)
        if rng.uniform() < 0.35:  # the decoder's other half of this body, a few pixels off
            part = kp.copy()
            part[rng.uniform(size=18) < 0.7] = 0.0
            part[:, :2] += rng.normal(0, 3, 2)
            poses.append(part)
    keypoints = np.array(poses).reshape(-1, 18, 3)
    threshold = float(rng.choice([0.0, 0.1]))
    visible, box, _ = _track_ref.describe(keypoints, threshold)
    t_kp = keypoints[rng.integers(0, max(len(keypoints), 1), tracks)] if len(keypoints) else np.zeros((tracks, 18, 3))
    t_kp = t_kp.copy()
    t_kp[:, :, :2] += rng.normal(0, 15, (tracks, 1, 2))
    t_kp[:, :, 2] *= t_kp[:, :, 2] > threshold
    t_kp[:, :, :2] *= (t_kp[:, :, 2] > 0)[:, :, None]
    t_vis = t_kp[:, :, 2] > 0
    t_box = _track_ref.describe(t_kp, 0.0)[1] if tracks else np.zeros((0, 4))
    state = {"t_kp": np.ascontiguousarray(t_kp), "t_box": t_box, "t_vel": rng.normal(0, 50, (tracks, 2)),
             "t_moving": rng.uniform(size=tracks) < 0.7, "t_seen": -rng.uniform(0, 2, tracks)}
    assert t_vis.shape == (tracks, 18)
    scores = rng.uniform(0, 30, len(keypoints))
    return keypoints, threshold, visible, box, scores, state


SCENES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SCENES
@given(seed=st.integers(0, 2**32 - 1), people=st.integers(0, 9))
def test_describe_and_fragments_agree(compiled, seed, people):
    keypoints, threshold, _, _, scores, _ = scene(seed, people, 0)
    visible, box, confidence = compiled.describe(keypoints, threshold)
    r_visible, r_box, r_confidence = _track_ref.describe(keypoints, threshold)
    assert visible.dtype == bool and np.array_equal(visible, r_visible)
    np.testing.assert_array_equal(box, r_box)
    np.testing.assert_allclose(confidence, r_confidence, rtol=1e-12, atol=0)
    for distance in (0.0, 0.05, 0.3):
        expected = _track_ref.fragments(keypoints, r_visible, r_box, scores, distance)
        got = compiled.fragments(keypoints, visible, box, scores, distance)
        assert got.dtype == bool and np.array_equal(got, expected), (distance, got, expected)


def _body(keep, dx=0.0):
    """One body's keypoints ``keep`` (the others missing), 200 pixels tall, moved ``dx`` pixels right."""
    kp = np.zeros((18, 3))
    kp[:, 0] = np.linspace(100, 140, 18) + dx
    kp[:, 1] = np.linspace(100, 300, 18)
    kp[:, 2] = 0.9
    kp[[k for k in range(18) if k not in keep]] = 0.0
    return kp


@pytest.mark.parametrize("poses, scores, expected", [
    # the upper body (12 keypoints) and the lower one (8, two of them 1 px from the upper's): the lower is the
    # fragment at equal scores (fewer keypoints) ...
    ([_body(range(12)), _body(range(10, 18), 1.0)], [5.0, 5.0], [False, True]),
    # ... the upper one when the lower scores better
    ([_body(range(12)), _body(range(10, 18), 1.0)], [5.0, 9.0], [True, False]),
    # equal scores and keypoints: the first one wins, whichever it is
    ([_body(range(10)), _body(range(8, 18), 1.0)], [5.0, 5.0], [False, True]),
    ([_body(range(8, 18), 1.0), _body(range(10))], [5.0, 5.0], [False, True]),
    # sharing most keypoints (one person half hidden behind another): no fragment
    ([_body(range(18)), _body(range(6, 18), 1.0)], [5.0, 5.0], [False, False]),
    # far apart
    ([_body(range(12)), _body(range(10, 18), 60.0)], [5.0, 5.0], [False, False]),
], ids=["fewer-keypoints", "lower-score", "first-wins", "first-wins-swapped", "sharing-most", "far-apart"])
def test_fragments_by_score_then_keypoints_then_order(compiled, poses, scores, expected):
    keypoints = np.ascontiguousarray(np.stack(poses))
    for module in (compiled, _track_ref):
        visible, box, _ = module.describe(keypoints, 0.0)
        assert list(module.fragments(keypoints, visible, box, np.array(scores), 0.05)) == expected, module.NAME


@SCENES
@given(seed=st.integers(0, 2**32 - 1), people=st.integers(0, 9), tracks=st.integers(0, 9),
       min_common=st.sampled_from([1, 3, 18]))
def test_similarity_agrees(compiled, seed, people, tracks, min_common):
    keypoints, _, visible, box, _, state = scene(seed, people, tracks)
    args = (state["t_kp"], state["t_box"], state["t_vel"], state["t_moving"], state["t_seen"], 0.4, keypoints,
            visible, box, 0.5, 2.0, 0.5, min_common)
    expected = _track_ref.similarity(*args)
    got = compiled.similarity(*args)
    assert got.shape == expected.shape == (tracks, len(keypoints))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    if tracks and len(keypoints):
        assert ((got > 0) == (expected > 0)).all()  # the same pairs inside the gate


@SCENES
@given(seed=st.integers(0, 2**32 - 1), people=st.integers(1, 9), tracks=st.integers(1, 9))
def test_advance_agrees(compiled, seed, people, tracks):
    keypoints, _, visible, box, _, state = scene(seed, people, tracks)
    rng = np.random.default_rng(seed)
    m = min(tracks, len(keypoints))
    rows = rng.permutation(tracks)[:m].astype(np.intp)
    dets = rng.permutation(len(keypoints))[:m].astype(np.intp)
    now = float(rng.choice([0.5, 0.0, -5.0]))  # later than last seen; the same time or earlier: no velocity
    mine = {k: v.copy() for k, v in state.items()}
    ref = {k: v.copy() for k, v in state.items()}
    compiled.advance(*mine.values(), rows, dets, keypoints, visible, box, now)
    _track_ref.advance(*ref.values(), rows, dets, keypoints, visible, box, now)
    for key in state:
        np.testing.assert_allclose(mine[key], ref[key], rtol=1e-12, atol=1e-9, err_msg=key)
    assert np.array_equal(mine["t_moving"], ref["t_moving"])
    untouched = np.setdiff1d(np.arange(tracks), rows)
    np.testing.assert_array_equal(mine["t_kp"][untouched], state["t_kp"][untouched])
