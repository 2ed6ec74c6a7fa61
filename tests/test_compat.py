"""OpenVINO compatibility: pose_fast._ov on 2023.1+ (``openvino``) and 2022.3 LTS (``openvino.runtime``).

Runs unchanged in the main environment (newest OpenVINO) and in the Python 3.9 + OpenVINO 2022.3.2 job
(.ci/py39.sh): version detection, zero-copy input tensors, device listing, the MYRIAD (Neural Compute Stick 2)
messages of each generation, and the same poses from both generations on the same video.
"""
from __future__ import annotations

import json
import os
import platform
from types import SimpleNamespace

import numpy as np
import pytest

from pose_fast import _ov
from pose_fast.engine import MYRIAD_REQUESTS, Engine, EngineError
from pose_fast.model import default_precision

# -- version detection --------------------------------------------------------------------------------------------


def test_version_matches_the_installed_runtime():
    from importlib.metadata import version

    import openvino

    assert _ov.VERSION == _ov.ov.get_version()
    wheel = tuple(int(part) for part in version("openvino").split(".")[:3])
    assert _ov.VERSION_TUPLE == wheel
    assert _ov.HAS_MYRIAD_SUPPORT is (_ov.VERSION_TUPLE < (2023, 0))
    if _ov.VERSION_TUPLE >= (2023, 1):
        assert _ov.ov is openvino and _ov.Core is openvino.Core
    else:
        import openvino.runtime

        assert _ov.ov is openvino.runtime and _ov.Core is openvino.runtime.Core


@pytest.mark.parametrize("text, expected", [
    ("2022.3.2-9279-e2c7e4d7b4d-releases/2022/3", (2022, 3, 2)),
    ("2023.0.0-10926-b4452d56304-releases/2023/0", (2023, 0, 0)),
    ("2024.6.0-17404-4c0f47d2335-releases/2024/6", (2024, 6, 0)),
    ("2026.4.1-22982-e213a147257-releases/2026/4", (2026, 4, 1)),
    ("2025.0.0.dev20241216", (2025, 0, 0)),
    ("2023.1", (2023, 1)),
])
def test_version_tuple_parses_runtime_version_strings(text, expected):
    assert _ov._version_tuple(text) == expected


def test_every_exported_name_exists():
    missing = [name for name in _ov.__all__ if not hasattr(_ov, name)]
    assert not missing
    for name in ("PERFORMANCE_HINT", "NUM_REQUESTS", "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "CACHE_DIR", "output_view"):
        assert hasattr(_ov, name)


# -- shared (zero-copy) tensors -----------------------------------------------------------------------------------


def test_shared_tensor_is_a_view_of_the_frame():
    frame = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    batch = frame[None]  # NumPy gives the new axis stride 0, which OpenVINO 2022.3 rejects as such
    tensor = _ov.shared_tensor(batch)
    assert tuple(tensor.shape) == (1, 6, 8, 3)
    assert tensor.element_type == _ov.Type.u8
    data = tensor.data
    assert np.shares_memory(data, frame)
    frame[2, 3, 1] = 201
    assert data[0, 2, 3, 1] == 201
    np.testing.assert_array_equal(data[0], frame)


def test_shared_tensor_keeps_float_strides():
    array = np.linspace(0, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    tensor = _ov.shared_tensor(array)
    assert tensor.element_type == _ov.Type.f32
    assert np.shares_memory(tensor.data, array)
    np.testing.assert_array_equal(tensor.data, array)


def test_shared_tensor_refuses_a_strided_view():
    frame = np.zeros((6, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="C-contiguous"):
        _ov.shared_tensor(frame[:, ::2])
    with pytest.raises(ValueError, match="C-contiguous"):
        _ov.shared_tensor([[1, 2], [3, 4]])


def test_request_reads_the_frame_in_place(engine_for, read_frames):
    """A request given a shared tensor infers from the frame's own memory, and matches Engine.infer."""
    frame = read_frames("store-aisle", count=1)[0]
    height, width = frame.shape[:2]
    engine = engine_for(width, height)
    heatmaps, pafs = (array.copy() for array in engine.infer(frame))
    request = engine.compiled.create_infer_request()
    request.set_input_tensor(_ov.shared_tensor(np.ascontiguousarray(frame)[None]))
    assert np.shares_memory(request.get_input_tensor().data, frame)
    request.infer()
    heat_index = [i for i, port in enumerate(engine.compiled.outputs) if "Mconv7_stage2_L2" in port.get_names()][0]
    paf_index = 1 - heat_index
    np.testing.assert_allclose(_ov.output_view(request, heat_index)[0], heatmaps, atol=1e-5)
    np.testing.assert_allclose(_ov.output_view(request, paf_index)[0], pafs, atol=1e-5)
    assert heatmaps.shape == (19, engine.output_size[1], engine.output_size[0])


# -- devices --------------------------------------------------------------------------------------------------------


def test_available_devices_lists_this_machines_cpu():
    devices = _ov.available_devices(_ov.Core())
    assert "CPU" in devices
    assert all(isinstance(name, str) and name for name in devices)


def test_unknown_device_names_what_this_machine_has(model_xml):
    with pytest.raises(EngineError) as info:
        Engine(model=model_xml, device="GPU.7", cache_dir="")
    message = str(info.value)
    assert "\n" not in message
    assert "GPU.7" in message and "CPU" in message


# -- MYRIAD (Neural Compute Stick 2) ------------------------------------------------------------------------------


def _myriad_plugin_registered() -> bool:
    try:
        _ov.Core().get_property("MYRIAD", "FULL_DEVICE_NAME")
    except Exception as exc:  # noqa: BLE001
        return "not registered" not in str(exc)
    return True


def test_myriad_error_says_which_case_and_what_to_do(model_xml):
    if "MYRIAD" in ",".join(_ov.available_devices(_ov.Core())).upper():
        pytest.skip("a Neural Compute Stick 2 is attached: there is no error to check")
    with pytest.raises(EngineError) as info:
        Engine(model=model_xml, device="MYRIAD", cache_dir="")
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert "this machine has: " in message and "CPU" in message
    if not _ov.HAS_MYRIAD_SUPPORT:  # 2023.0 and newer: no MYRIAD plugin exists any more
        assert "needs OpenVINO 2022.3 LTS" in message
        assert _ov.VERSION.split("-")[0] in message
        assert "openvino==2022.3" in message
    elif not _myriad_plugin_registered():  # 2022.3 from PyPI: the wheel has no MYRIAD plugin
        assert 'Device with "MYRIAD" name is not registered' in message
        assert "runtime archive" in message and "setupvars.sh" in message and "Raspberry Pi" in message
    else:  # 2022.3 runtime archive: the plugin is there, the stick is not
        assert "no Neural Compute Stick 2 found" in message
        assert "attach the stick" in message and "udev rules" in message


def test_demo_with_myriad_exits_with_the_one_line_error(video_path, tmp_path):
    """The recommended Raspberry Pi command line, on a machine without a usable stick: exit 2, one line."""
    if "MYRIAD" in ",".join(_ov.available_devices(_ov.Core())).upper():
        pytest.skip("a Neural Compute Stick 2 is attached")
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, [
        "demo", "--device-name", "MYRIAD", "--mode", "latency", "--precision", "FP16", "--input-height", "192",
        "-i", str(video_path("store-aisle")), "--no-show", "--no-db", "--limit", "2",
        "--json", str(tmp_path / "poses.jsonl")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    assert ("needs OpenVINO 2022.3 LTS" if not _ov.HAS_MYRIAD_SUPPORT else "MYRIAD") in lines[0]
    assert not (tmp_path / "poses.jsonl").exists() or not (tmp_path / "poses.jsonl").read_text().strip()


@pytest.mark.parametrize("device", ["MYRIAD", "myriad", "HETERO:MYRIAD,CPU", "MULTI:CPU,MYRIAD"])
def test_myriad_inside_a_device_list_gets_the_same_message(model_xml, device):
    if "MYRIAD" in ",".join(_ov.available_devices(_ov.Core())).upper():
        pytest.skip("a Neural Compute Stick 2 is attached")
    with pytest.raises(EngineError) as info:
        Engine(model=model_xml, device=device, cache_dir="")
    message = str(info.value)
    expected = "needs OpenVINO 2022.3 LTS" if not _ov.HAS_MYRIAD_SUPPORT else "MYRIAD"
    assert expected in message and "\n" not in message


@pytest.mark.parametrize("device, precision", [
    ("MYRIAD", "FP16"), ("MYRIAD.1.2-ma2480", "FP16"), ("HETERO:MYRIAD,CPU", "FP16"),
    ("CPU", "FP16-INT8"), ("GPU", "FP16-INT8"), ("AUTO", "FP16-INT8"),
])
def test_myriad_runs_fp16_by_default(device, precision):
    assert default_precision(device) == precision


def test_myriad_keeps_several_requests_in_flight():
    """The stick pipelines requests: even the latency mode keeps several (unless the user says otherwise)."""
    assert MYRIAD_REQUESTS > 1
    for mode in ("latency", "throughput"):
        state = SimpleNamespace(_requested=None, device="MYRIAD", mode=mode, compiled=None)
        assert Engine.num_requests.fget(state) == MYRIAD_REQUESTS
    assert Engine.num_requests.fget(SimpleNamespace(_requested=1, device="MYRIAD", mode="latency",
                                                    compiled=None)) == 1
    assert Engine.num_requests.fget(SimpleNamespace(_requested=None, device="CPU", mode="latency",
                                                    compiled=None)) == 1


# -- the same poses on OpenVINO 2022.3 and the newest -------------------------------------------------------------
# .ci/py39.sh runs test_cross_version_poses twice: in the main environment with POSE_FAST_COMPAT_WRITE=1 (writes
# the poses to $POSE_FAST_COMPAT_REFERENCE), then under Python 3.9 + OpenVINO 2022.3.2 (compares with them).

CROSS_VIDEO = "store-aisle"
CROSS_FRAMES = 8
#: The INT8 model's outputs differ by up to ~0.05 between the two runtimes' CPU kernels: a keypoint may move by a
#: few pixels, a keypoint whose peak sits at the detection threshold may appear in one and not the other, and a
#: barely visible person may come and go. Everything else must agree.
KEYPOINT_TOLERANCE_PX = 4.0
SCORE_TOLERANCE = 0.15
FLICKER_KEYPOINT_SCORE = 0.3   # keypoints below this score may be missing on the other side
FLICKER_POSE_SCORE = 8.0       # poses below this overall score may be missing on the other side


def _poses_of_video(engine_for, read_frames) -> list:
    from pose_fast.decode import decode

    frames = read_frames(CROSS_VIDEO, count=CROSS_FRAMES)
    height, width = frames[0].shape[:2]
    engine = engine_for(width, height)
    result = []
    for frame in frames:
        heatmaps, pafs = engine.infer(frame)
        poses = decode(heatmaps, pafs, frame_size=(width, height))
        result.append({"keypoints": np.asarray(poses.keypoints, dtype=float).round(3).tolist(),
                       "scores": np.asarray(poses.scores, dtype=float).round(4).tolist()})
    return result


def _match(ref_kps: np.ndarray, new_kps: np.ndarray) -> list:
    """Greedy pairs (i, j) of poses by the mean distance of the keypoints both have."""
    costs = []
    for i, a in enumerate(ref_kps):
        for j, b in enumerate(new_kps):
            both = (a[:, 2] > 0) & (b[:, 2] > 0)
            if both.any():
                costs.append((float(np.linalg.norm(a[both, :2] - b[both, :2], axis=1).mean()), i, j))
    pairs, used_i, used_j = [], set(), set()
    for cost, i, j in sorted(costs):
        if i not in used_i and j not in used_j and cost < 4 * KEYPOINT_TOLERANCE_PX:
            pairs.append((i, j))
            used_i.add(i)
            used_j.add(j)
    return pairs


def compare_poses(reference: list, current: list) -> list:
    """Every disagreement beyond the tolerances, as readable lines (empty when the two runs agree)."""
    problems = []
    if len(reference) != len(current):
        return [f"{len(reference)} frames in the reference, {len(current)} now"]
    for index, (ref, new) in enumerate(zip(reference, current)):
        ref_kps = np.asarray(ref["keypoints"], dtype=float).reshape(-1, 18, 3)
        new_kps = np.asarray(new["keypoints"], dtype=float).reshape(-1, 18, 3)
        ref_scores, new_scores = np.asarray(ref["scores"], float), np.asarray(new["scores"], float)
        pairs = _match(ref_kps, new_kps)
        for side, kps_scores, matched in (("reference", ref_scores, {i for i, _ in pairs}),
                                          ("current", new_scores, {j for _, j in pairs})):
            for k, score in enumerate(kps_scores):
                if k not in matched and score >= FLICKER_POSE_SCORE:
                    problems.append(f"frame {index}: {side} pose {k} (score {score:.2f}) has no counterpart")
        for i, j in pairs:
            a, b = ref_kps[i], new_kps[j]
            for kp in range(18):
                have_a, have_b = a[kp, 2] > 0, b[kp, 2] > 0
                if have_a and have_b:
                    dist = float(np.hypot(*(a[kp, :2] - b[kp, :2])))
                    if dist > KEYPOINT_TOLERANCE_PX:
                        problems.append(f"frame {index}: pose {i} keypoint {kp} moved {dist:.1f} px")
                    if abs(a[kp, 2] - b[kp, 2]) > SCORE_TOLERANCE:
                        problems.append(f"frame {index}: pose {i} keypoint {kp} score {a[kp, 2]:.2f} -> "
                                        f"{b[kp, 2]:.2f}")
                elif have_a != have_b and max(a[kp, 2], b[kp, 2]) >= FLICKER_KEYPOINT_SCORE:
                    problems.append(f"frame {index}: pose {i} keypoint {kp} (score "
                                    f"{max(a[kp, 2], b[kp, 2]):.2f}) found on one side only")
    return problems


def test_compare_poses_detects_a_moved_keypoint_and_a_missing_person():
    person = np.zeros((18, 3))
    person[:, 0], person[:, 1], person[:, 2] = np.arange(18) * 10 + 50, 100.0, 0.8
    frame = {"keypoints": [person.tolist()], "scores": [15.0]}
    assert compare_poses([frame], [frame]) == []
    nudged = person.copy()
    nudged[:, :2] += 1.0
    assert compare_poses([frame], [{"keypoints": [nudged.tolist()], "scores": [15.0]}]) == []
    moved = person.copy()
    moved[4, 0] += 12.0
    problems = compare_poses([frame], [{"keypoints": [moved.tolist()], "scores": [15.0]}])
    assert problems == ["frame 0: pose 0 keypoint 4 moved 12.0 px"]
    problems = compare_poses([frame], [{"keypoints": [], "scores": []}])
    assert problems == ["frame 0: reference pose 0 (score 15.00) has no counterpart"]
    lost = person.copy()
    lost[7] = 0.0
    problems = compare_poses([frame], [{"keypoints": [lost.tolist()], "scores": [15.0]}])
    assert problems == ["frame 0: pose 0 keypoint 7 (score 0.80) found on one side only"]


def test_cross_version_poses(engine_for, read_frames):
    """A user on OpenVINO 2022.3 and one on the newest get the same people and keypoints on the same video."""
    path = os.environ.get("POSE_FAST_COMPAT_REFERENCE")
    if not path:
        pytest.skip("no reference: .ci/py39.sh writes one with the newest OpenVINO and checks it on 2022.3")
    current = _poses_of_video(engine_for, read_frames)
    people = sum(len(frame["scores"]) for frame in current)
    assert people >= CROSS_FRAMES, f"only {people} poses in {CROSS_FRAMES} frames of {CROSS_VIDEO}"
    if os.environ.get("POSE_FAST_COMPAT_WRITE"):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"openvino": _ov.VERSION, "python": platform.python_version(), "video": CROSS_VIDEO,
                       "frames": current}, handle)
        return
    with open(path, encoding="utf-8") as handle:
        reference = json.load(handle)
    assert reference["video"] == CROSS_VIDEO
    problems = compare_poses(reference["frames"], current)
    assert not problems, (f"OpenVINO {reference['openvino']} (Python {reference['python']}) and {_ov.VERSION} "
                          f"(Python {platform.python_version()}) disagree:\n" + "\n".join(problems[:20]))
