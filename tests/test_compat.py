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
from pose_fast.engines.local import MYRIAD_REQUESTS, Engine, EngineError
from pose_fast.model import default_precision

# -- version detection --------------------------------------------------------------------------------------------


def test_version_matches_the_installed_runtime():
    from importlib.metadata import PackageNotFoundError, version

    import openvino

    assert _ov.VERSION == _ov.ov.get_version()
    try:
        wheel = tuple(int(part) for part in version("openvino").split(".")[:3])
    except PackageNotFoundError:  # the runtime archive's bindings (a Raspberry Pi) carry no wheel metadata
        wheel = None
    if wheel is not None:
        assert _ov.VERSION_TUPLE == wheel
    assert len(_ov.VERSION_TUPLE) == 3 and _ov.VERSION_TUPLE >= (2022, 3, 0)
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


def test_optimal_requests_reads_the_compiled_model(engine_for, read_frames):
    frame = read_frames("store-aisle", count=1)[0]
    compiled = engine_for(frame.shape[1], frame.shape[0]).compiled
    reported = int(compiled.get_property(_ov.OPTIMAL_NUMBER_OF_INFER_REQUESTS))
    assert reported >= 1
    assert _ov.optimal_requests(compiled) == reported
    assert _ov.optimal_requests(compiled, minimum=reported + 2) == reported + 2


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

    from pose_fast.cli.main import cli

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


class _MyriadCore:
    """Stands in for ``ov.Core`` on OpenVINO 2022.3 without a usable stick; ``error`` is what asking raises."""

    available_devices = ["CPU"]

    def __init__(self, error):
        self.error = error

    def get_property(self, device, name):
        if self.error is None:
            return "Intel Movidius Myriad X VPU"
        raise RuntimeError(self.error)


@pytest.mark.parametrize("error, expected", [
    # the PyPI wheel (what the Python 3.9 job runs): no plugin at all
    ('Device with "MYRIAD" name is not registered in the OpenVINO Runtime',
     ["no MYRIAD plugin", "runtime archive", "setupvars.sh"]),
    # the archive's plugins.xml lists it, but the library or its dependencies are not found
    ("Cannot load library 'libopenvino_intel_myriad_plugin.so': libusb-1.0.so.0: cannot open shared object file",
     ["registered but does not load", "Cannot load library", "setupvars.sh", "libusb"]),
    # the plugin loads and answers, but no stick is listed
    (None, ["no Neural Compute Stick 2 found", "attach the stick", "udev rules"]),
])
def test_each_myriad_case_on_2022_3_has_its_message(monkeypatch, error, expected):
    from pose_fast.engines.local import validate_device

    monkeypatch.setattr(_ov, "HAS_MYRIAD_SUPPORT", True)
    with pytest.raises(EngineError) as info:
        validate_device(_MyriadCore(error), "MYRIAD")
    message = str(info.value)
    assert "\n" not in message and "this machine has: CPU" in message
    for part in expected:
        assert part in message, (part, message)


def test_myriad_listed_by_the_plugin_is_accepted(monkeypatch):
    from pose_fast.engines.local import validate_device

    monkeypatch.setattr(_ov, "HAS_MYRIAD_SUPPORT", True)
    core = _MyriadCore(None)
    core.available_devices = ["CPU", "MYRIAD"]
    assert validate_device(core, "MYRIAD") == "MYRIAD"


def test_myriad_on_openvino_2023_or_newer_names_the_lts(monkeypatch):
    from pose_fast.engines.local import validate_device

    monkeypatch.setattr(_ov, "HAS_MYRIAD_SUPPORT", False)
    with pytest.raises(EngineError, match=r"needs OpenVINO 2022\.3 LTS.*openvino==2022\.3"):
        validate_device(_MyriadCore(None), "MYRIAD")


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
    # and the pipeline's latency mode uses them on the stick (one request elsewhere)
    for device, requested, expected in (("MYRIAD", None, MYRIAD_REQUESTS), ("MYRIAD", 2, 2), ("CPU", None, 1),
                                        ("CPU", 3, 1)):
        state = SimpleNamespace(_requested=requested, device=device, mode="latency", compiled=None)
        state.num_requests = Engine.num_requests.fget(state)
        assert Engine.latency_requests.fget(state) == expected, (device, requested)


# -- the same poses on OpenVINO 2022.3 and the newest -------------------------------------------------------------
# .ci/py39.sh runs test_cross_version_poses twice: in the main environment with POSE_FAST_COMPAT_WRITE=1 (writes
# the poses to $POSE_FAST_COMPAT_REFERENCE), then under Python 3.9 + OpenVINO 2022.3.2 (compares with them).
#
# The INT8 model's outputs differ by up to ~0.05 between the two runtimes' CPU kernels (measured on this video).
# Decoding is discrete: a peak moves by half a heatmap cell, a double peak near the threshold gives one keypoint
# in one run and two in the other, and a limb may then join a different candidate (a leg detached into its own
# small pose). So the comparison is per keypoint type and independent of how keypoints were grouped into people:
# on 24 frames of store-aisle the two runtimes agree on 99.5% of keypoints, with a median shift of 0 px; a
# swapped colour order agrees on 88%, a frame shifted by 4 px moves the median by 4 px. Both are caught.

CROSS_VIDEO = "store-aisle"
CROSS_FRAMES = 24
MIN_KEYPOINT_SCORE = 0.3    # keypoints compared
MIN_AGREEMENT = 0.95        # share of keypoints with a same-type keypoint within one heatmap cell in the other run
MAX_MEDIAN_SHIFT_PX = 1.0   # of those pairs
MIN_PERSON_KEYPOINTS = 8    # people counted per frame: the clearly visible ones
MAX_PEOPLE_MISMATCH = 0.1   # share of frames whose count of such people may differ (by one)


def _poses_of_video(engine_for, read_frames) -> tuple:
    from pose_fast.decoding import decode

    frames = read_frames(CROSS_VIDEO, count=CROSS_FRAMES)
    height, width = frames[0].shape[:2]
    engine = engine_for(width, height)
    result = []
    for frame in frames:
        heatmaps, pafs = engine.infer(frame)
        poses = decode(heatmaps, pafs, frame_size=(width, height))
        result.append({"keypoints": np.asarray(poses.keypoints, dtype=float).round(3).tolist(),
                       "scores": np.asarray(poses.scores, dtype=float).round(4).tolist()})
    cell = max(width / engine.output_size[0], height / engine.output_size[1])
    return result, cell


def _pair_keypoints(a: np.ndarray, b: np.ndarray, tolerance: float) -> list:
    """Distances of greedy nearest pairs (one-to-one) between two (N, 2) point sets, within ``tolerance``."""
    if not len(a) or not len(b):
        return []
    dist = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    used_a, used_b, pairs = set(), set(), []
    for flat in np.argsort(dist, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(b))
        if dist[i, j] > tolerance:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append(float(dist[i, j]))
    return pairs


def compare_poses(reference: list, current: list, cell: float) -> list:
    """Where two runs over the same frames disagree beyond the tolerances above, as readable lines."""
    if len(reference) != len(current):
        return [f"{len(reference)} frames in the reference, {len(current)} now"]
    problems, shifts, compared, frames_off = [], [], 0, []
    for index, (ref, new) in enumerate(zip(reference, current)):
        ref_kps = np.asarray(ref["keypoints"], dtype=float).reshape(-1, 18, 3)
        new_kps = np.asarray(new["keypoints"], dtype=float).reshape(-1, 18, 3)
        for k in range(18):
            a = ref_kps[:, k][ref_kps[:, k, 2] >= MIN_KEYPOINT_SCORE, :2]
            b = new_kps[:, k][new_kps[:, k, 2] >= MIN_KEYPOINT_SCORE, :2]
            compared += max(len(a), len(b))
            shifts += _pair_keypoints(a, b, cell)
        people_ref = int(((ref_kps[:, :, 2] > 0).sum(axis=1) >= MIN_PERSON_KEYPOINTS).sum())
        people_new = int(((new_kps[:, :, 2] > 0).sum(axis=1) >= MIN_PERSON_KEYPOINTS).sum())
        if people_ref != people_new:
            frames_off.append(index)
            if abs(people_ref - people_new) > 1:
                problems.append(f"frame {index}: {people_ref} people in the reference, {people_new} now")
    if not compared:
        return ["no keypoints in either run: nothing was compared"]
    agreement = len(shifts) / compared
    if agreement < MIN_AGREEMENT:
        problems.append(f"only {agreement:.1%} of {compared} keypoints agree within {cell:.1f} px "
                        f"(need {MIN_AGREEMENT:.0%})")
    if shifts and float(np.median(shifts)) > MAX_MEDIAN_SHIFT_PX:
        problems.append(f"keypoints moved by {float(np.median(shifts)):.1f} px (median; allowed "
                        f"{MAX_MEDIAN_SHIFT_PX} px)")
    if len(frames_off) > MAX_PEOPLE_MISMATCH * len(reference):
        problems.append(f"the number of people differs in {len(frames_off)} of {len(reference)} frames "
                        f"({frames_off[:10]})")
    return problems


def _person(dx=0.0, dy=0.0, score=0.8):
    kps = np.zeros((18, 3))
    kps[:, 0], kps[:, 1], kps[:, 2] = np.arange(18) * 12 + 50 + dx, 100.0 + dy, score
    return kps


def _frames(*people_per_frame):
    return [{"keypoints": [p.tolist() for p in people], "scores": [20.0] * len(people)}
            for people in people_per_frame]


def test_compare_poses_accepts_small_differences():
    ref = _frames([_person(), _person(dy=80)], [_person(dx=5)])
    regrouped = _person(dy=80)
    regrouped[8:11] = 0.0  # the legs of the second person decoded as a separate pose
    legs = np.zeros((18, 3))
    legs[8:11] = _person(dy=80)[8:11]
    assert compare_poses(ref, ref, cell=8.4) == []
    nudged = _frames([_person(dx=0.5), regrouped, legs], [_person(dx=5, dy=-0.5)])
    assert compare_poses(ref, nudged, cell=8.4) == []


def test_compare_poses_catches_moved_missing_and_extra_people():
    ref = _frames(*[[_person(), _person(dy=80)]] * 10)
    moved = _frames(*[[_person(dx=3), _person(dx=3, dy=80)]] * 10)
    assert compare_poses(ref, moved, cell=8.4) == ["keypoints moved by 3.0 px (median; allowed 1.0 px)"]
    missing = _frames(*[[_person()]] * 10)
    problems = compare_poses(ref, missing, cell=8.4)
    assert problems[0] == "only 50.0% of 360 keypoints agree within 8.4 px (need 95%)"
    assert problems[1].startswith("the number of people differs in 10 of 10 frames")
    crowd = _frames(*[[_person(), _person(dy=80), _person(dy=160), _person(dy=240)]] * 10)
    assert "frame 0: 2 people in the reference, 4 now" in compare_poses(ref, crowd, cell=8.4)
    assert compare_poses(ref, ref[:5], cell=8.4) == ["10 frames in the reference, 5 now"]
    assert compare_poses(_frames([]), _frames([]), cell=8.4) == ["no keypoints in either run: nothing was compared"]


def test_cross_version_poses(engine_for, read_frames):
    """A user on OpenVINO 2022.3 and one on the newest get the same people and keypoints on the same video."""
    path = os.environ.get("POSE_FAST_COMPAT_REFERENCE")
    if not path:
        pytest.skip("no reference: .ci/py39.sh writes one with the newest OpenVINO and checks it on 2022.3")
    current, cell = _poses_of_video(engine_for, read_frames)
    people = sum(len(frame["scores"]) for frame in current)
    assert people >= CROSS_FRAMES, f"only {people} poses in {CROSS_FRAMES} frames of {CROSS_VIDEO}"
    if os.environ.get("POSE_FAST_COMPAT_WRITE"):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"openvino": _ov.VERSION, "python": platform.python_version(), "video": CROSS_VIDEO,
                       "cell": cell, "frames": current}, handle)
        return
    with open(path, encoding="utf-8") as handle:
        reference = json.load(handle)
    assert reference["video"] == CROSS_VIDEO
    assert reference["cell"] == pytest.approx(cell)
    problems = compare_poses(reference["frames"], current, cell)
    assert not problems, (f"OpenVINO {reference['openvino']} (Python {reference['python']}) and {_ov.VERSION} "
                          f"(Python {platform.python_version()}) disagree on {CROSS_VIDEO}: " + "; ".join(problems))
