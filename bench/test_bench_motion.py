"""The motion gate (issue 18), gated against ungated in the same run.

Targets:

- a still, empty scene (one empty frame of one-by-one-person-detection.mp4 repeated, 10 fps, treated as a live
  source): the gated pipeline's CPU time (``time.process_time``: every thread of this process) <= 15 % of the
  ungated one's, alternating gated and ungated rounds;
- on the shared videos (as live sources, every frame in order): every person the ungated run finds (each enter
  event) is found no more than 2 inference periods later (the gate's idle period, 1 s of video), and the enter and
  exit counts are equal.

Measure with ``pytest bench/test_bench_motion.py --benchmark-enable -s``; with ``--benchmark-disable`` (CI) the
same code runs on shorter pieces. The figures go into ``extra_info`` (printed with ``-s``).
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from pose_fast.engines.local import Engine
from pose_fast.frames import open_source
from pose_fast.motion import DEFAULT_PERIOD_S
from pose_fast.pipeline import Pipeline
from pose_fast.tracking import Tracker

TARGET_CPU_SHARE = 0.15
TARGET_PERIODS_LATE = 2


def full_size(request) -> bool:
    config = request.config
    return not (config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False))


@pytest.fixture(scope="module")
def engine(model_xml):
    engines = {}

    def get(width, height):
        if (width, height) not in engines:
            engines[(width, height)] = Engine(model=model_xml, device="CPU", mode="throughput")
            engines[(width, height)].prepare(width, height)
        return engines[(width, height)]

    yield get
    for e in engines.values():
        e.close()


def _report(benchmark, **info):
    benchmark.extra_info.update(info)
    print("\n" + ", ".join(f"{k}={v}" for k, v in info.items()))


def _run(path, engine, gate: bool, limit=None):
    """One pipeline run over ``path`` as a live source, every frame in order: (CPU s, stats, events)."""
    events = []
    with open_source(path) as source:
        source.live = True  # a camera: the gate applies
        tracker = Tracker(on_event=lambda kind, tid, index, ts, count: events.append((kind, tid, index)))
        pipe = Pipeline(source, engine(source.width, source.height), tracker=tracker, mode="throughput",
                        motion_gate=gate, limit=limit)
        start = time.process_time()
        stats = pipe.run()
        cpu = time.process_time() - start
    return cpu, stats, events, source.fps


def test_still_scene_costs_little(benchmark, request, engine, read_frames, tmp_path):
    frames_n = 200 if full_size(request) else 30
    rounds = 3 if full_size(request) else 1
    empty = read_frames("one-by-one", 1, 0)[0]
    path = tmp_path / "still.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (empty.shape[1], empty.shape[0]))
    for _ in range(frames_n):
        writer.write(empty)
    writer.release()
    cpu = {True: [], False: []}

    def alternate():
        for _ in range(rounds):
            for gate in (False, True):
                spent, stats, _, _ = _run(path, engine, gate)
                assert stats["frames"] == frames_n
                cpu[gate].append(spent)
        return stats

    stats = benchmark.pedantic(alternate, rounds=1, iterations=1)
    share = float(np.sum(cpu[True]) / np.sum(cpu[False]))
    _report(benchmark, frames=frames_n, rounds=rounds, gated_cpu_s=[round(c, 2) for c in cpu[True]],
            ungated_cpu_s=[round(c, 2) for c in cpu[False]], gated_inferred=frames_n - stats["inference_skipped"],
            cpu_share=round(share, 3), target=TARGET_CPU_SHARE)
    assert stats["inference_skipped"] >= frames_n * 0.8  # the gate did skip (a count, not a time)
    if full_size(request):
        assert share <= TARGET_CPU_SHARE, f"gated CPU {share:.1%} of ungated"


@pytest.mark.parametrize("name", ["one-by-one", "people-walking", "store-aisle"])
def test_gated_run_finds_the_same_people(name, benchmark, request, engine, video_path):
    limit = None if full_size(request) else 300
    path = video_path(name)
    runs = {}

    def both():
        for gate in (False, True):
            runs[gate] = _run(path, engine, gate, limit=limit)

    benchmark.pedantic(both, rounds=1, iterations=1)
    (_, plain, plain_events, fps), (_, gated, gated_events, _) = runs[False], runs[True]
    enters = [index for kind, _, index in plain_events if kind == "enter"]
    gated_enters = [index for kind, _, index in gated_events if kind == "enter"]
    exits = [index for kind, _, index in plain_events if kind == "exit"]
    gated_exits = [index for kind, _, index in gated_events if kind == "exit"]
    late = [g - p for p, g in zip(enters, gated_enters)]
    allowed = TARGET_PERIODS_LATE * DEFAULT_PERIOD_S * (fps or 25.0)
    _report(benchmark, video=name, frames=plain["frames"], skipped=gated["inference_skipped"],
            enters=(len(enters), len(gated_enters)), exits=(len(exits), len(gated_exits)),
            enter_delay_frames=late, allowed_frames=allowed)
    assert len(gated_enters) == len(enters) and len(gated_exits) == len(exits)
    assert all(d <= allowed for d in late), (late, allowed)
