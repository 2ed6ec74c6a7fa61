"""Fixtures shared by tests/ and bench/: the real model, the real videos, a CPU engine per frame size."""
from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
# tests/ holds helper modules (synthetic, support) that tests and benchmarks import by name, whatever the rootdir
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared"
VIDEOS = Path(os.environ.get("POSE_FAST_VIDEO_DIR", SHARED / "videos"))

#: What each shared video shows (see shared/videos/SOURCE.md).
VIDEO_FILES = {
    "one-by-one": "one-by-one-person-detection.mp4",   # people walk in and out one at a time, 768x432
    "store-aisle": "store-aisle-detection.mp4",         # shoppers in an aisle, 480x270, 67 frames
    "people-walking": "people-walking.mp4",             # two clips joined by 15 black frames, 480x270, 73 frames
    "asl-walk": "asl-walk.mkv",                         # one signer, upper body, 640x480, 89 frames
}


def _model_dir() -> Path:
    env = os.environ.get("POSE_FAST_MODEL_DIR")
    # absolute: tests hand it to subprocesses that run in other folders (CI sets ../shared/models)
    return Path(env).resolve() if env else SHARED / "models"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The folder holding ``human-pose-estimation-0001/<precision>/`` (``POSE_FAST_MODEL_DIR``)."""
    path = _model_dir()
    if not (path / "human-pose-estimation-0001" / "FP16-INT8").is_dir():
        pytest.fail(f"no model under {path}: set POSE_FAST_MODEL_DIR to the folder with human-pose-estimation-0001/")
    return path


@pytest.fixture(scope="session")
def model_xml(model_dir) -> Path:
    """The FP16-INT8 IR used by every test that needs the model."""
    return model_dir / "human-pose-estimation-0001" / "FP16-INT8" / "human-pose-estimation-0001.xml"


@pytest.fixture(scope="session")
def video_path():
    """``video_path("store-aisle")`` -> Path of a shared test video (fails, not skips, when missing)."""

    def get(name: str) -> Path:
        path = VIDEOS / VIDEO_FILES.get(name, name)
        if not path.is_file():
            pytest.fail(f"test video {path} is missing: shared/videos must sit beside the project")
        return path

    return get


@pytest.fixture(scope="session")
def read_frames(video_path):
    """``read_frames("store-aisle", count=10, start=0)`` -> list of HxWx3 uint8 BGR frames from a shared video."""
    import cv2

    cache = {}

    def get(name: str, count: int = 10, start: int = 0) -> list:
        key = (name, count, start)
        if key not in cache:
            cap = cv2.VideoCapture(str(video_path(name)))
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            frames = []
            while len(frames) < count:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(frame)
            cap.release()
            assert frames, f"could not read frames from {name}"
            cache[key] = frames
        return cache[key]

    return get


@pytest.fixture(scope="session")
def native_cpu_precisions() -> tuple:
    """The CPU precisions (``Engine(cpu_precision=...)``) this host computes natively: f32, and bf16 on CPUs with
    AVX-512 BF16 or AMX, unless ``ONEDNN_MAX_CPU_ISA`` caps the kernels below them (OpenVINO still offers bf16
    there, and returns NaN)."""
    from pose_fast._ov import Core

    found = ["f32"]
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if "BF16" in Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") and (
            not capped or capped == "ALL" or "BF16" in capped or "AMX" in capped):
        found.append("bf16")
    return tuple(found)


@pytest.fixture(params=["f32", "bf16"])
def cpu_precision(request, native_cpu_precisions) -> str:
    """Each CPU precision in turn; bf16 is skipped on hosts that do not compute it natively."""
    if request.param not in native_cpu_precisions:
        pytest.skip(f"this CPU does not compute {request.param} natively")
    return request.param


@pytest.fixture(scope="session")
def cpu_engines():
    """``cpu_engines(width, height, model=..., **engine_options)`` -> a prepared CPU Engine, one per set of
    arguments for the whole session; all closed at its end."""
    import gc

    from pose_fast.engines.local import Engine

    engines = {}

    def get(width: int, height: int, **options):
        key = (width, height, tuple(sorted((k, str(v)) for k, v in options.items())))
        if key not in engines:
            engine = Engine(device="CPU", **options)
            engine.prepare(width, height)
            engines[key] = engine
        return engines[key]

    yield get
    for engine in engines.values():
        engine.close()
    # Collect the closed engines' reference cycles here, in the main thread: left to a collection that happens to
    # run in an OpenVINO callback thread, their AsyncInferQueue is destroyed there and the process aborts
    # ("terminate called ... Resource deadlock avoided"; OpenVINO 2026.4).
    gc.collect()


@pytest.fixture(scope="session")
def engine_for(model_xml, cpu_engines):
    """``engine_for(w, h, mode="latency", cpu_precision="f32")`` -> a prepared CPU Engine for that frame size,
    shared per session."""
    from pose_fast.engines.local import DEFAULT_CPU_PRECISION

    def get(width: int, height: int, mode: str = "latency", cpu_precision: str = DEFAULT_CPU_PRECISION):
        return cpu_engines(width, height, model=model_xml, mode=mode, cpu_precision=cpu_precision)

    return get


class EncodeCounter:
    """Counts ``cv2.imencode`` calls per frame a broadcaster got: ``counts[n]`` is how often its n-th frame was
    encoded (the pipeline writes frames one at a time, so ``broadcaster().frames`` names the one being encoded).
    The events writer's snapshots (its own thread) are not counted: they are per event, not per frame."""

    def __init__(self, monkeypatch, broadcaster):
        import cv2

        self.calls = []
        real = cv2.imencode

        def imencode(*args, **kwargs):
            if not threading.current_thread().name.startswith("EventStore("):
                self.calls.append(broadcaster().frames)
            return real(*args, **kwargs)

        monkeypatch.setattr(cv2, "imencode", imencode)

    @property
    def counts(self) -> collections.Counter:
        return collections.Counter(self.calls)


@pytest.fixture
def count_encodes(monkeypatch):
    """``count_encodes(lambda: broadcaster)`` -> :class:`EncodeCounter`, undone after the test."""
    return lambda broadcaster: EncodeCounter(monkeypatch, broadcaster)


@pytest.fixture()
def web_config(tmp_path, model_xml, video_path):
    """``web_config(**overrides)`` -> the web tests' settings: the shared store-aisle clip as the demo, a camera
    index no machine has, a small network, no pacing, a private events database."""

    def make(**overrides) -> dict:
        return {"DATABASE": str(tmp_path / "events.sqlite3"), "DEMO_VIDEO": str(video_path("store-aisle")),
                "MODEL": str(model_xml), "CAMERA": None, "INPUT_HEIGHT": 128, "STREAM_GRACE": 0.3,
                "REALTIME": False, "DEVICE": "CPU", **overrides}

    return make


@pytest.fixture()
def live_server(web_config):
    """``live_server(threads=12, backlog_bytes=..., **config)`` -> (base URL, port, app): the web app
    (:func:`web_config` settings) on a real waitress server on a free loopback port; all stopped after the test."""
    from support import running_server

    from pose_fast.webapp import create_app

    with contextlib.ExitStack() as stack:
        def start(threads: int = 12, **config):
            options = {key: config.pop(key) for key in ("backlog_bytes",) if key in config}
            app = create_app(web_config(**config))
            base, port = stack.enter_context(running_server(app, threads=threads, **options))
            return base, port, app

        yield start
