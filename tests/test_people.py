"""Who counts as a person: the PersonFilter, and the people count on real video in every CPU precision.

``asl-walk.mkv`` shows one signer on all 89 frames. On CPUs with AVX-512 BF16 or AMX, OpenVINO computes in bf16
unless told otherwise, and there the decoder also returns a three-keypoint fragment beside the signer (frame 13,
pose score 7.6 against 209, seen on an AMD EPYC with AVX-512 BF16 and reported on an Intel Xeon with AMX). Whatever
the host and the precision, the overlay, the JSON Lines and the stats must say one person.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from pose_fast.engines.local import Engine
from pose_fast.frames import open_source
from pose_fast.people import MIN_KEYPOINTS, MIN_POSE_SCORE, PersonFilter
from pose_fast.pipeline import Pipeline
from pose_fast.poses import Poses
from pose_fast.render import Renderer
from pose_fast.sinks import JsonlSink


def poses_of(*people):
    """Poses from (score, keypoints found) pairs."""
    keypoints = np.zeros((len(people), 18, 3), np.float32)
    for i, (_, found) in enumerate(people):
        keypoints[i, :found] = (10.0 + i, 20.0, 0.5)
    return Poses(keypoints, np.array([score for score, _ in people], np.float32))


# -- the filter -------------------------------------------------------------------------------------------------------
def test_a_person_needs_the_score_and_the_keypoints():
    poses = poses_of((200.0, 14), (7.6, 3), (12.4, 5), (9.9, 9), (10.0, 4), (50.0, 3))
    people, fragments = PersonFilter().split(poses)
    assert people.scores.tolist() == pytest.approx([200.0, 12.4, 10.0])  # in the decoder's order
    assert fragments.scores.tolist() == pytest.approx([7.6, 9.9, 50.0])
    np.testing.assert_array_equal(people.keypoints, poses.keypoints[[0, 2, 4]])
    assert PersonFilter(min_score=0, min_keypoints=0).mask(poses).all()
    assert PersonFilter(min_score=100).mask(poses).tolist() == [True, False, False, False, False, False]


def test_all_people_or_none_are_returned_without_copies():
    pf = PersonFilter()
    everyone = poses_of((300.0, 15), (100.0, 10))
    people, fragments = pf.split(everyone)
    assert people is everyone and len(fragments) == 0
    empty = Poses.empty()
    assert pf.split(empty)[0] is empty


@pytest.mark.parametrize("kwargs", [{"min_score": -1}, {"min_score": float("nan")}, {"min_score": "10"},
                                    {"min_keypoints": 19}, {"min_keypoints": 2.5}, {"min_keypoints": True}])
def test_bad_thresholds_are_refused(kwargs):
    with pytest.raises(ValueError, match="minimum"):
        PersonFilter(**kwargs)


def test_defaults_are_the_documented_ones():
    assert (MIN_POSE_SCORE, MIN_KEYPOINTS) == (10.0, 4)
    assert repr(PersonFilter()) == "PersonFilter(min_score=10, min_keypoints=4)"


# -- the real model on the one signer -------------------------------------------------------------------------------
class Collect:
    def __init__(self):
        self.people, self.fragments, self.labels = [], [], []

    def write(self, result):
        self.people.append(result.people)
        self.fragments.append(len(result.fragments))
        self.labels.append(len(result.labels))
        assert len(result.poses) == result.people


class HeaderCounts(Renderer):
    """The real renderer, remembering the people count each header was drawn with."""

    def __init__(self):
        super().__init__()
        self.shown = []

    def draw(self, frame, poses, labels=None, **kwargs):
        self.shown.append(kwargs["people"])
        return super().draw(frame, poses, labels, **kwargs)


@pytest.mark.slow
def test_the_signer_is_one_person_on_every_frame(cpu_precision, model_xml, video_path, tmp_path):
    jsonl = tmp_path / "asl.jsonl"
    engine = Engine(model=model_xml, device="CPU", mode="throughput", cpu_precision=cpu_precision)
    collect, renderer = Collect(), HeaderCounts()
    with engine, open_source(video_path("asl-walk")) as source, JsonlSink(jsonl, fragments=True) as sink:
        stats = Pipeline(source, engine, sinks=[collect, sink], renderer=renderer).run()
    assert stats["frames"] == 89
    assert collect.people == [1] * 89, f"{cpu_precision}: {collect.people}"
    assert renderer.shown == [1] * 89 and collect.labels == [1] * 89
    assert stats["people_max"] == 1 and stats["people_mean"] == 1.0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [len(r["people"]) for r in records] == [1] * 89
    assert [len(r["fragments"]) for r in records] == collect.fragments
    for record in records:  # what is left out really is a fragment
        for fragment in record["fragments"]:
            found = sum(1 for k in fragment["keypoints"] if k[2] > 0)
            assert fragment["score"] < MIN_POSE_SCORE or found < MIN_KEYPOINTS, fragment


def test_keep_nothing_out_gives_the_decoders_raw_count(model_xml, video_path):
    """min_score=0, min_keypoints=0: every decoded pose is a person, as before the filter existed."""
    from pose_fast.decoding import Decoder

    raw = []

    class Raw(Decoder):
        def __call__(self, *args, **kwargs):
            poses = super().__call__(*args, **kwargs)
            raw.append(len(poses))
            return poses

    engine = Engine(model=model_xml, device="CPU", mode="latency")
    collect = Collect()
    with engine, open_source(video_path("people-walking")) as source:
        Pipeline(source, engine, decoder=Raw(), sinks=[collect], renderer=False,
                 person_filter=PersonFilter(0, 0)).run()
    assert collect.people == raw and sum(collect.fragments) == 0
