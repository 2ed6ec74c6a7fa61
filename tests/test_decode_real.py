"""Decoder on real model outputs: every backend gives the peer's people, keypoint for keypoint.

Heatmaps and PAFs come from the real model (FP16-INT8, CPU) on frames of the shared videos; a few dozen frames in
all. The peer is ``OpenPoseDecoder`` (openvino-model-api 0.2.5) behind the notebook's 3×3 max-pool NMS.
"""
from __future__ import annotations

import numpy as np
import pytest
from synthetic import backend_or_skip, peer_decoder

from pose_fast.decoding import BACKENDS, Decoder, available_backends
from pose_fast.people import PersonFilter

#: (video, first frame, frame count, fewest people, most people) per clip; people (pose_fast.people) counted on
#: every frame, so the bounds hold on every host (the raw pose count varies with the CPU's kernels).
CLIPS = [
    ("store-aisle", 40, 6, 2, 5),      # three or four shoppers
    ("people-walking", 44, 4, 1, 4),   # two people walking
    ("people-walking", 26, 3, 0, 0),   # the black frames joining the two clips
    ("one-by-one", 300, 4, 1, 2),      # one person crossing
    ("one-by-one", 0, 3, 0, 0),        # the empty corridor before anyone walks in
    ("asl-walk", 0, 4, 1, 1),          # one signer (an AMX host decoded 2 poses on frame 0)
    ("asl-walk", 12, 3, 1, 1),         # ... and bf16 a fragment beside her on frame 13
]


@pytest.fixture(scope="module")
def real_tensors(engine_for, read_frames):
    """[(clip, frame index, heatmaps, pafs, frame_size)] computed once for the module."""
    out = []
    for name, start, count, _, _ in CLIPS:
        frames = read_frames(name, count, start)
        assert len(frames) == count
        height, width = frames[0].shape[:2]
        engine = engine_for(width, height)
        for i, frame in enumerate(frames):
            heatmaps, pafs = engine.infer(frame)
            out.append(((name, start), start + i, np.array(heatmaps), np.array(pafs), (width, height)))
    return out


@pytest.fixture(params=BACKENDS)
def backend(request):
    return backend_or_skip(request.param)


def test_people_counts_are_plausible(real_tensors):
    limits = {(name, start): (low, high) for name, start, _, low, high in CLIPS}
    decoder = Decoder()
    people_only = PersonFilter()
    for clip, index, heatmaps, pafs, size in real_tensors:
        poses, _ = people_only.split(decoder(heatmaps, pafs, size))
        low, high = limits[clip]
        assert low <= len(poses) <= high, f"{clip[0]} frame {index}: {len(poses)} people"
        if len(poses):
            width, height = size
            seen = poses.keypoints[..., 2] > 0
            assert np.all(seen.sum(axis=1) >= 3)
            xy = poses.keypoints[seen][:, :2]
            assert np.all((xy >= 0) & (xy <= (width, height)))
    assert sum(len(decoder(h, p, s)) for _, _, h, p, s in real_tensors) >= 20


def test_each_backend_gives_the_peers_people(real_tensors, backend):
    peer = peer_decoder()
    decoder = Decoder(backend)
    people = 0
    for clip, index, heatmaps, pafs, size in real_tensors:
        ours = decoder(heatmaps, pafs, size)
        theirs, their_scores = peer(heatmaps, pafs, size)
        where = f"{clip[0]} frame {index}"
        assert len(ours) == len(theirs), where
        np.testing.assert_allclose(ours.to_coco17(), theirs, rtol=0, atol=1e-4, err_msg=where)
        np.testing.assert_allclose(ours.scores, their_scores, rtol=1e-6, atol=1e-6, err_msg=where)
        people += len(ours)
    assert people >= 20


def test_all_backends_give_identical_people(real_tensors):
    names = available_backends()
    decoders = [Decoder(name) for name in names]
    for clip, index, heatmaps, pafs, size in real_tensors:
        results = [decoder(heatmaps, pafs, size) for decoder in decoders]
        for name, poses in zip(names[1:], results[1:]):
            np.testing.assert_array_equal(poses.keypoints, results[0].keypoints, err_msg=f"{name} {clip} {index}")
            np.testing.assert_array_equal(poses.scores, results[0].scores, err_msg=f"{name} {clip} {index}")


def test_peer_agreement_survives_noise(real_tensors, backend):
    """Perturbed real tensors (many more candidates and connections): still the peer's people."""
    peer = peer_decoder()
    decoder = Decoder(backend)
    rng = np.random.default_rng(4)
    for k, (clip, index, heatmaps, pafs, size) in enumerate(real_tensors[::3]):
        sigma = (0.02, 0.1, 0.3)[k % 3]
        h = heatmaps + rng.normal(0, sigma, heatmaps.shape).astype(np.float32)
        p = pafs + rng.normal(0, sigma, pafs.shape).astype(np.float32)
        ours = decoder(h, p, size)
        theirs, their_scores = peer(h, p, size)
        assert len(ours) == len(theirs), f"{clip[0]} frame {index} sigma {sigma}"
        np.testing.assert_allclose(ours.to_coco17(), theirs, rtol=0, atol=1e-4)
        np.testing.assert_allclose(ours.scores, their_scores, rtol=1e-6, atol=1e-6)
