"""Tracker benchmarks (pytest-benchmark): cost per result, and identities when only every Nth frame is seen.

Targets (issue 15): ``Tracker.update`` < 0.2 ms per result with 10 people in view; on every 5th frame of a shared
video, IDF1 against the full-rate tracks >= 0.9, the same number of people +-1, enters and exits within 10 %.
Measure with ``pytest bench/test_bench_tracking.py --benchmark-enable -s``; with ``--benchmark-disable`` (CI) each
body runs once. The identity figures are printed (``-s``) and kept in ``extra_info``; ``pose-fast bench`` reports the
same figures (``pose_fast.bench.identities``).
"""
from __future__ import annotations

import itertools

import pytest

from pose_fast import _track_ref, tracking
from pose_fast.bench.identities import (
    COST_PEOPLE,
    STRIDES,
    TARGET_IDF1,
    compare_runs,
    decode_video,
    pan,
    track_run,
    walking_scene,
)
from pose_fast.tracking import Tracker


@pytest.mark.parametrize("kernels", ["default", "numpy"])
@pytest.mark.parametrize("people", [1, 3, COST_PEOPLE])
def test_tracker_update(benchmark, people, kernels, monkeypatch):
    """One ``update`` with ``people`` in view, all matched (target for 10: p50 < 0.2 ms), with the tracker's kernels
    (compiled when built) and with their NumPy reference."""
    if kernels == "numpy":
        monkeypatch.setattr(tracking, "KERNELS", _track_ref)
    scene = walking_scene(people, 200)
    tracker = Tracker()
    index = itertools.count()
    for poses in scene[:20]:  # everyone born
        i = next(index)
        tracker.update(poses, i, i / 10)
    assert tracker.people_count == people

    def one():
        i = next(index)
        return tracker.update(scene[i % len(scene)], i, i / 10)

    ids = benchmark(one)
    assert len(ids) == people
    if benchmark.stats is not None:
        p50 = benchmark.stats.stats.median * 1000
        benchmark.extra_info["p50_ms"] = round(p50, 4)
        print(f"\ntracker ({tracker._kernels.NAME} kernels), {people} people: p50 {p50:.3f} ms per result")


@pytest.fixture(scope="module")
def strided(engine_for, bench_video):
    """The bench video's poses, every frame (decoded once), and the tracker's full-rate run on them."""
    video = decode_video(bench_video, engine_for)
    return video, track_run(video)


@pytest.mark.parametrize("stride", STRIDES)
def test_identities_every_nth_frame(benchmark, strided, stride):
    """The tracker over every ``stride``-th frame of the bench video, against its full-rate run."""
    video, reference = strided
    run = benchmark(track_run, video, stride)
    result = compare_runs(reference, run)
    panned = pan(video, stride)
    benchmark.extra_info.update({k: result[k] for k in ("idf1", "people", "reference_people", "enters", "exits",
                                                        "reference_enters", "reference_exits")})
    benchmark.extra_info["pan_idf1"] = panned["idf1"]
    print(f"\n{video.name} every {stride}th frame: IDF1 {result['idf1']:.3f}, people {result['people']} "
          f"(full rate {result['reference_people']}), enters {result['enters']}/{result['reference_enters']}, "
          f"exits {result['exits']}/{result['reference_exits']}; panned: IDF1 {panned['idf1']:.3f}")
    if stride == 5:
        assert result["idf1"] >= TARGET_IDF1, result
