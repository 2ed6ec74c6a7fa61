"""The OpenVINO engine on the real model and real frames."""
import numpy as np
import pytest

from pose_fast import _ov
from pose_fast.engines.local import Engine, EngineError, network_size_for
from pose_fast.skeleton import KEYPOINT_NAMES

NECK = KEYPOINT_NAMES.index("neck")


def test_network_keeps_the_source_aspect_ratio():
    assert network_size_for(768, 432) == (456, 256)  # 16:9
    assert network_size_for(640, 480) == (344, 256)  # 4:3
    assert network_size_for(1920, 1080, 128) == (224, 128)
    with pytest.raises(ValueError, match="multiple of 8"):
        network_size_for(640, 480, 250)


@pytest.mark.parametrize("name, frame_size, out_size", [
    ("one-by-one", (768, 432), (57, 32)),
    ("asl-walk", (640, 480), (43, 32)),
])
def test_outputs_follow_the_frame_shape(engine_for, read_frames, name, frame_size, out_size):
    frame = read_frames(name, 1)[0]
    assert frame.shape[1::-1] == frame_size
    engine = engine_for(*frame_size)
    heatmaps, pafs = engine.infer(frame)
    assert engine.output_size == out_size
    assert heatmaps.shape == (19, out_size[1], out_size[0])
    assert pafs.shape == (38, out_size[1], out_size[0])


def test_people_give_heatmap_peaks_where_they_stand(engine_for, read_frames):
    frame = read_frames("asl-walk", 1)[0].copy()  # one signer, upper body, centred
    engine = engine_for(640, 480)
    necks = engine.infer(frame)[0][NECK].copy()
    assert necks.max() > 0.5, "a visible person must give a strong neck peak"
    row, col = np.unravel_index(np.argmax(necks), necks.shape)
    scale_x, scale_y = 640 / necks.shape[1], 480 / necks.shape[0]
    x, y = int((col + 0.5) * scale_x), int((row + 0.5) * scale_y)
    assert 160 < x < 480, f"the signer stands in the middle of the frame, neck found at x={x}"
    # Paint the person out: the peak goes with them.
    frame[max(0, y - 200):y + 200, max(0, x - 160):x + 160] = 0
    assert engine.infer(frame)[0][NECK].max() < 0.2


def test_a_black_frame_has_no_people(engine_for):
    heatmaps, _ = engine_for(480, 270).infer(np.zeros((270, 480, 3), np.uint8))
    assert heatmaps[:18].max() < 0.1


def test_async_gives_the_same_tensors_as_sync(model_xml, read_frames):
    frames = read_frames("store-aisle", 6)
    with Engine(model=model_xml, mode="throughput", num_requests=3, cache_dir="") as engine:
        engine.prepare(480, 270)
        expected = [tuple(t.copy() for t in engine.infer(f)) for f in frames]
        got = {}
        engine.set_callback(lambda h, p, index, ms: got.__setitem__(index, (h.copy(), p.copy(), ms)))
        for index, frame in enumerate(frames):
            engine.submit(frame, index)
        engine.wait_all()
    assert sorted(got) == list(range(len(frames)))
    for index, (heatmaps, pafs) in enumerate(expected):
        np.testing.assert_array_equal(got[index][0], heatmaps)
        np.testing.assert_array_equal(got[index][1], pafs)
        assert got[index][2] > 0


def test_a_callback_error_reaches_the_caller(engine_for, read_frames):
    engine = Engine(model=engine_for(480, 270).model_path, cache_dir="")
    engine.set_callback(lambda *args: 1 / 0)
    engine.submit(read_frames("store-aisle", 1)[0], 0)
    with pytest.raises(ZeroDivisionError):
        engine.wait_all()


def test_input_is_not_copied(engine_for, read_frames):
    engine = engine_for(480, 270)
    frame = read_frames("store-aisle", 1)[0]
    engine.infer(frame)
    assert engine._request.get_input_tensor().data.ctypes.data == frame.ctypes.data


def test_compiled_models_are_cached(model_xml, tmp_path):
    with Engine(model=model_xml, cache_dir=tmp_path) as engine:
        engine.prepare(480, 270)
    assert any(tmp_path.iterdir()), "compiling should leave a cache entry"


def test_unknown_device_lists_what_the_machine_has(model_xml):
    with pytest.raises(EngineError) as err:
        Engine(model=model_xml, device="TPU")
    message = str(err.value)
    assert "unknown device 'TPU'" in message and "this machine has: CPU" in message
    assert "\n" not in message


def test_absent_device_is_named(model_xml):
    if any(d.startswith("GPU") for d in _ov.available_devices(_ov.Core())):
        pytest.skip("this machine has a GPU")
    with pytest.raises(EngineError, match=r"device GPU is not available on this machine \(it has: CPU"):
        Engine(model=model_xml, device="GPU")
    with pytest.raises(EngineError, match="device GPU is not available"):
        Engine(model=model_xml, device="MULTI:CPU,GPU")


class _CoreListing:
    """Stands in for ``ov.Core`` where only the device listing matters (this machine has no GPU)."""

    def __init__(self, *devices):
        self.available_devices = list(devices)


@pytest.mark.parametrize("devices, name, accepted", [
    (("CPU", "GPU"), "GPU.0", True),       # one GPU is listed as "GPU" but answers to "GPU.0" too
    (("CPU", "GPU"), "GPU.1", False),
    (("CPU", "GPU.0", "GPU.1"), "GPU", True),
    (("CPU", "GPU.0", "GPU.1"), "GPU.1", True),
    (("CPU", "GPU.0", "GPU.1"), "GPU.2", False),
    (("CPU",), "GPU.0", False),
])
def test_gpu_names_follow_the_listing(devices, name, accepted):
    from pose_fast.engines.local import validate_device

    core = _CoreListing(*devices)
    if accepted:
        assert validate_device(core, name) == name
    else:
        with pytest.raises(EngineError, match=f"device {name} is not available on this machine"):
            validate_device(core, name)


def test_virtual_devices_are_accepted(model_xml):
    assert Engine(model=model_xml, device="AUTO", cache_dir="").device == "AUTO"
    assert Engine(model=model_xml, device="AUTO:CPU", cache_dir="").device == "AUTO:CPU"


def test_myriad_on_new_openvino_names_the_lts(model_xml):
    if _ov.HAS_MYRIAD_SUPPORT:
        pytest.skip("OpenVINO 2022.3 has the plugin; tests/test_compat.py covers it")
    with pytest.raises(EngineError, match="needs OpenVINO 2022.3 LTS"):
        Engine(model=model_xml, device="MYRIAD")


def test_missing_model_says_what_to_do(tmp_path):
    with pytest.raises(EngineError, match="does not exist: pass the path"):
        Engine(model=tmp_path / "nothing.xml")


def test_corrupt_xml_is_refused(model_xml, tmp_path):
    bad = tmp_path / "human-pose-estimation-0001.xml"
    bad.write_text("<net><layers><layer id='0'")
    (tmp_path / "human-pose-estimation-0001.bin").write_bytes(model_xml.with_suffix(".bin").read_bytes()[:1000])
    with pytest.raises(EngineError, match="cannot read .* the model files are damaged"):
        Engine(model=bad)


@pytest.mark.parametrize("frame, message", [
    (None, "empty frame"),
    (np.zeros((0, 0, 3), np.uint8), "empty frame"),
    (np.zeros((270, 480, 3), np.float32), "must be uint8"),
    (np.zeros((270, 480), np.uint8), r"H x W x 3"),
    (np.zeros((100, 100, 3), np.uint8), "prepared for 480x270"),
])
def test_bad_frames_are_refused(engine_for, frame, message):
    with pytest.raises(ValueError, match=message):
        engine_for(480, 270).infer(frame)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "fast"}, "unknown mode"),
    ({"num_requests": 0}, "at least 1"),
    ({"input_height": 250}, "multiple of 8"),
    ({"cpu_precision": "f16"}, "unknown CPU precision 'f16': use f32 or bf16"),
])
def test_bad_settings_are_refused(model_xml, kwargs, message):
    with pytest.raises(EngineError, match=message):
        Engine(model=model_xml, **kwargs)


def _cpu_precision(engine) -> str:
    """What the CPU plugin was set to compute in: "f32" or "bf16" (OpenVINO prints a Type or a string)."""
    text = str(engine.core.get_property("CPU", _ov.INFERENCE_PRECISION)).lower()
    return "bf16" if "bf" in text else "f32" if "32" in text else text


@pytest.mark.parametrize("device", ["CPU", "AUTO"])
def test_the_cpu_computes_in_f32_unless_asked(model_xml, device, native_cpu_precisions):
    """f32 by default, also under AUTO (OpenVINO would pick bf16 by itself on AVX-512 BF16 and AMX CPUs)."""
    with Engine(model=model_xml, device=device) as engine:
        engine.prepare(480, 270)
        assert _cpu_precision(engine) == "f32"
    if "bf16" in native_cpu_precisions:
        with Engine(model=model_xml, device=device, cpu_precision="bf16") as engine:
            engine.prepare(480, 270)
            assert _cpu_precision(engine) == "bf16"
