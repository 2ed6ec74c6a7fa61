"""Options and fixtures for the benchmark suites (pytest-benchmark).

Run::

    pytest bench --benchmark-enable                       # measure (pyproject's addopts disable benchmarks)
    pytest bench --benchmark-json=out.json                # measure and write JSON (benchmarks enabled by itself)
    pytest bench --benchmark-autosave                     # measure and keep the run under .benchmarks/
    pytest bench --benchmark-compare --benchmark-compare-fail=median:15%   # fail on a regression vs the last run
    pytest bench --benchmark-disable                      # smoke mode (what `pytest` and .ci/run do): every
                                                          # benchmark body runs once, on small sizes

Options of this folder: ``--video NAME|PATH`` (a shared video name from the root conftest's ``VIDEO_FILES``, or a
file; default ``store-aisle``) and ``--frames N`` (frames per measurement; default 4 in smoke mode, 32 when
measuring).

Fixtures: ``bench_smoke`` (bool), ``bench_frame_count`` (int), ``bench_video`` (Path), ``bench_frames`` (list of
HxWx3 uint8 BGR frames), ``bench_model(precision)`` (the IR's .xml, or a skip naming how to fetch it) and
``bench_engine(precision, mode)`` (a prepared CPU :class:`~pose_fast.engines.local.Engine` for ``bench_frames``' size,
shared per session).
"""
from __future__ import annotations

import os

import pytest

DEFAULT_VIDEO = "store-aisle"
SMOKE_FRAMES = 4
MEASURE_FRAMES = 32
#: Options that only make sense when benchmarks run: given any of them, benchmarks are enabled even though
#: pyproject's addopts says --benchmark-disable (unless --benchmark-disable is on the command line itself).
_MEASURING_OPTIONS = ("benchmark_json", "benchmark_save", "benchmark_autosave", "benchmark_compare",
                      "benchmark_compare_fail", "benchmark_histogram", "benchmark_only")


def pytest_addoption(parser):
    group = parser.getgroup("pose_fast bench")
    group.addoption("--video", default=DEFAULT_VIDEO,
                    help="video for the benchmarks: a shared video name (store-aisle, people-walking, one-by-one, "
                         "asl-walk) or a file path (default: store-aisle)")
    group.addoption("--frames", type=int, default=None,
                    help=f"frames per measurement (default {SMOKE_FRAMES} with --benchmark-disable, "
                         f"{MEASURE_FRAMES} when measuring)")


def _asked_to_measure(config) -> bool:
    for name in _MEASURING_OPTIONS:
        try:
            value = config.getoption(name)
        except ValueError:
            continue
        if value not in (None, False, [], ""):
            return True
    return False


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own pytest_configure made its session
def pytest_configure(config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.disabled:
        return
    args = [str(a) for a in config.invocation_params.args]
    if any(a == "--benchmark-disable" for a in args):
        return
    if config.getoption("dist", "no") != "no" or os.environ.get("PYTEST_XDIST_WORKER"):
        return  # pytest-benchmark disables itself under xdist: leave it so
    if _asked_to_measure(config):
        session.disabled = False
        config.option.benchmark_enable = True  # as if --benchmark-enable was given, for files that read the option


@pytest.fixture(scope="session")
def bench_smoke(request) -> bool:
    """True when benchmarks are disabled (each body runs once): keep sizes small."""
    session = getattr(request.config, "_benchmarksession", None)
    return bool(session.disabled) if session is not None else True


@pytest.fixture(scope="session")
def bench_frame_count(request, bench_smoke) -> int:
    count = request.config.getoption("--frames")
    if count is None:
        return SMOKE_FRAMES if bench_smoke else MEASURE_FRAMES
    if count < 1:
        raise pytest.UsageError(f"--frames must be at least 1, got {count}")
    return count


@pytest.fixture(scope="session")
def bench_video(request, video_path):
    return video_path(request.config.getoption("--video"))


@pytest.fixture(scope="session")
def bench_frames(request, read_frames, bench_frame_count) -> list:
    """Distinct frames of the bench video (at most 64; measurements cycle through them)."""
    return read_frames(request.config.getoption("--video"), count=min(bench_frame_count, 64))


@pytest.fixture(scope="session")
def bench_model(model_dir):
    """``bench_model("FP32")`` -> Path of that precision's .xml, or a skip saying how to fetch it."""
    from pose_fast.bench import fetch_hint, find_model

    def get(precision: str):
        xml = find_model(precision, model_dir)
        if xml is None:
            pytest.skip(f"{precision} IR not found in {model_dir} or the user cache: {fetch_hint(precision)}")
        return xml

    return get


@pytest.fixture(scope="session")
def bench_engine(bench_model, bench_frames, cpu_engines):
    """``bench_engine("FP16-INT8", "throughput")`` -> a prepared CPU Engine for the bench frames' size."""
    height, width = bench_frames[0].shape[:2]

    def get(precision: str, mode: str = "latency"):
        return cpu_engines(width, height, model=bench_model(precision), precision=precision, mode=mode)

    return get
