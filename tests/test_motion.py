"""The motion gate: on real frames of a shared video (an empty aisle, the same with a person), then in the pipeline
on a still scene made of one empty frame repeated, treated as a live source."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from pose_fast.frames import open_source
from pose_fast.motion import IDLE_STATUS, MotionGate
from pose_fast.pipeline import Pipeline

EMPTY, PERSON = 0, 100  # frames of one-by-one-person-detection.mp4: nobody in view; one person


@pytest.fixture(scope="module")
def frames(read_frames):
    return {"empty": read_frames("one-by-one", 1, EMPTY)[0], "person": read_frames("one-by-one", 1, PERSON)[0],
            "empty_later": read_frames("one-by-one", 1, EMPTY + 40)[0]}


def still_video(path, frame, count: int, fps: float = 10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
    for _ in range(count):
        writer.write(frame)
    writer.release()
    return path


def test_a_still_scene_does_not_move_and_a_person_does(frames):
    gate = MotionGate(frames["empty"].shape, period=0)
    assert gate.should_infer(frames["empty"], 0.0, occupied=False)  # the first frame: no reference yet
    # the same empty aisle 4 s later (the camera's noise and the codec's): still
    assert not gate.should_infer(frames["empty_later"], 0.1, occupied=False)
    assert not gate.should_infer(frames["empty"], 0.2, occupied=False)
    assert gate.skipped == 2
    assert gate.should_infer(frames["person"], 0.3, occupied=False)  # someone walked in
    assert gate.changed >= gate.min_pixels


def test_someone_in_view_or_a_period_without_inference_infers_anyway(frames):
    gate = MotionGate(frames["empty"].shape, period=1.0)
    assert gate.should_infer(frames["empty"], 10.0, occupied=False)
    assert not gate.should_infer(frames["empty"], 10.5, occupied=False)
    assert gate.should_infer(frames["empty"], 10.6, occupied=True)      # the caller says someone may be there
    assert not gate.should_infer(frames["empty"], 11.5, occupied=False)
    assert gate.should_infer(frames["empty"], 11.6, occupied=False)     # a second since the last inference
    assert (gate.inferred, gate.skipped) == (3, 2)


def test_slow_motion_adds_up_against_the_last_inferred_frame(frames):
    """The person fades in over ten frames: each step is too small to count against the previous frame, but the
    gate compares with the last inferred frame, so it fires before the person is fully there."""
    empty, person = frames["empty"].astype(np.float32), frames["person"].astype(np.float32)
    gate = MotionGate(frames["empty"].shape, period=0)
    assert gate.should_infer(frames["empty"], 0.0, occupied=False)
    fired = None
    for step in range(1, 11):
        mixed = np.clip(empty + (person - empty) * step / 10, 0, 255).astype(np.uint8)
        if gate.should_infer(mixed, step, occupied=False):
            fired = step
            break
    assert fired is not None and fired < 10


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        MotionGate((0, 10, 3))
    with pytest.raises(ValueError):
        MotionGate((10, 10, 3), threshold=300)
    with pytest.raises(ValueError):
        MotionGate((10, 10, 3), min_changed=0)


class Collect:
    def __init__(self):
        self.inferred, self.people = [], []

    def write(self, result):
        self.inferred.append(result.inferred)
        self.people.append(result.people)


@pytest.mark.parametrize("gate", [True, False])
def test_pipeline_skips_inference_on_a_still_live_scene(gate, frames, engine_for, tmp_path):
    """An empty still scene at 10 fps, treated as live (like a camera), in order (throughput mode): with the gate
    inference runs on the first frame and then once per second of video (every
    10th frame); the other frames still reach the sinks, without people. Without it, every frame is inferred."""
    source = open_source(still_video(tmp_path / "still.mp4", frames["empty"], 40))
    source.live = True  # a camera watching an empty aisle
    sink = Collect()
    with source:
        pipe = Pipeline(source, engine_for(source.width, source.height, mode="throughput"), sinks=[sink],
                        mode="throughput", motion_gate=gate)
        stats = pipe.run()
    assert len(sink.inferred) == 40 and set(sink.people) == {0}
    if gate:
        assert [i for i, inferred in enumerate(sink.inferred) if inferred] == [0, 10, 20, 30]
        assert stats["inference_skipped"] == 36
    else:
        assert all(sink.inferred) and stats["inference_skipped"] == 0


def test_the_overlay_says_idle_and_files_are_never_gated(frames, engine_for, tmp_path, monkeypatch):
    from pose_fast.render import Renderer

    statuses = []
    draw = Renderer.draw

    def recording(self, frame, poses, labels=None, **kwargs):
        statuses.append((kwargs.get("status"), kwargs.get("inference_ms")))
        return draw(self, frame, poses, labels, **kwargs)

    path = still_video(tmp_path / "still.mp4", frames["empty"], 12)
    with open_source(path) as source:
        source.live = True
        pipe = Pipeline(source, engine_for(source.width, source.height), mode="throughput", motion_gate=True)
        monkeypatch.setattr(Renderer, "draw", recording)  # after the renderer's warm-up
        pipe.run()
    assert statuses[0][0] is None and statuses[0][1] is not None
    assert statuses[1] == (IDLE_STATUS, None)  # no inference time shown on a frame that had none
    with open_source(path) as source:  # a file is not live: the gate is off even when asked for
        assert not source.live
        pipe = Pipeline(source, engine_for(source.width, source.height), mode="throughput", motion_gate=True)
        assert pipe.motion_gate is None
        assert pipe.run()["inference_skipped"] == 0
    with open_source(path) as source:  # by default only cameras and streams are gated, not a file played live
        source.live = True
        assert Pipeline(source, engine_for(source.width, source.height), mode="throughput").motion_gate is None
