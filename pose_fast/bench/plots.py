"""The report's four PNG plots (:func:`write_plots`; matplotlib, with the Agg backend, is imported on first use)."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from .targets import TARGET_DECODE_SHARE, find_row

__all__ = ["PLOTS", "write_plots"]

PLOTS = {
    "stages": "stages.png",
    "latency_hist": "latency_hist.png",
    "fps": "fps.png",
    "decode": "decode.png",
}


def write_plots(report: dict, out: Path) -> List[Path]:
    """The four PNGs named in :data:`PLOTS` (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    colors = {"capture": "#8c8c8c", "inference": "#4c72b0", "decode": "#dd8452", "render": "#55a868",
              "latency": "#c44e52", "waiting": "#d9d9d9"}
    subtitle = f"{report['machine']['cpu']}, {report['device']}, OpenVINO {report['openvino']}, {report['date']}"
    paths = []

    # per-stage latency breakdown (means add up: capture + inference + decode + render + waiting = the whole)
    fig, ax = plt.subplots(figsize=(8, 2.2 + 0.8 * len(report["pipeline"])))
    labels = [f"{p['precision']}\n{p['mode']}" for p in report["pipeline"]]
    left = np.zeros(len(labels))
    parts = {stage: np.array([p["stages"][stage]["mean"] for p in report["pipeline"]])
             for stage in ("capture", "inference", "decode", "render")}
    latency = np.array([p["stages"]["latency"]["mean"] for p in report["pipeline"]])
    parts["waiting"] = np.maximum(latency - parts["inference"] - parts["decode"] - parts["render"], 0.0)
    names = {"waiting": "waiting (read-ahead queue, tracker, hand-offs)"}
    for stage, values in parts.items():
        ax.barh(labels, values, left=left, color=colors.get(stage, "#d9d9d9"), label=names.get(stage, stage),
                edgecolor="white", linewidth=0.5)
        left += values
    for y, (total, pipe) in enumerate(zip(left, report["pipeline"])):
        ax.annotate(f"{total:.0f} ms  ({pipe['fps']:.1f} FPS)", (total, y), textcoords="offset points",
                    xytext=(4, -3), fontsize=8)
    ax.set_xlim(0, max(left.max() if left.size else 1.0, 1.0) * 1.3)
    ax.set_xlabel("ms per frame (mean): capture, then capture→shown split by stage")
    ax.set_title("Pipeline: where a frame's time goes", fontsize=11)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=5, frameon=False)
    ax.invert_yaxis()
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["stages"], plt))

    # latency histogram: inference only (latency mode) and the pipeline's capture→shown, per mode
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = []
    for inf in report["inference"]:
        if inf["mode"] == "latency":
            series.append((f"inference only, {inf['precision']} latency", inf["samples"]))
    for pipe in report["pipeline"]:
        series.append((f"pipeline capture→shown, {pipe['precision']} {pipe['mode']}", pipe["samples"]["latency"]))
    every = np.concatenate([np.asarray(s, float) for _, s in series if len(s)]) if series else np.zeros(1)
    hi = float(np.percentile(every, 99.5)) * 1.05 if every.size else 1.0
    bins = np.linspace(0, max(hi, 1.0), 50)
    for name, samples in series:
        data = np.clip(np.asarray(samples, float), 0, bins[-1])
        ax.hist(data, bins=bins, histtype="step", linewidth=1.6,
                label=f"{name} (p50 {np.median(data):.0f} ms)" if data.size else name)
    ax.set_xlabel("ms per frame (values above the 99.5th percentile are piled at the right edge)")
    ax.set_ylabel("frames")
    ax.set_title("Latency per frame", fontsize=11)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["latency_hist"], plt))

    # FPS per precision / mode
    fig, ax = plt.subplots(figsize=(8, 4))
    groups = [(inf["precision"], inf["mode"]) for inf in report["inference"]]
    x = np.arange(len(groups))
    inf_fps = [inf["fps"] for inf in report["inference"]]
    pipe_fps = [(find_row(report["pipeline"], precision=p, mode=m) or {}).get("fps", 0.0) for p, m in groups]
    bars1 = ax.bar(x - 0.2, inf_fps, 0.4, label="inference only", color=colors["inference"])
    bars2 = ax.bar(x + 0.2, pipe_fps, 0.4, label="full pipeline", color=colors["render"])
    ax.bar_label(bars1, fmt="%.1f", fontsize=8)
    ax.bar_label(bars2, labels=[f"{f:.1f}\n({f / i * 100:.0f} %)" if i else f"{f:.1f}"
                                for f, i in zip(pipe_fps, inf_fps)], fontsize=8)
    ax.set_xticks(x, [f"{p}\n{m}" for p, m in groups])
    ax.set_ylabel("frames per second")
    ax.set_ylim(0, max(inf_fps + pipe_fps + [1.0]) * 1.25)
    ax.set_title("FPS per precision and mode (pipeline as % of inference only)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["fps"], plt))

    # decode time per backend, with the 2 % of inference budget
    fig, ax = plt.subplots(figsize=(8, 3.8))
    rows = report["decode"]["backends"]
    names = [("peer\nOpenPoseDecoder" if r["name"] == "peer" else r["name"]) for r in rows]
    means = [r["p50"] for r in rows]
    p99 = [r["p99"] for r in rows]
    bars = ax.bar(names, means, color=[colors["decode"] if r["name"] != "peer" else "#8172b3" for r in rows])
    ax.errorbar(names, means, yerr=[np.zeros(len(means)), np.maximum(np.subtract(p99, means), 0)], fmt="none",
                ecolor="#333333", capsize=4, label="p99")
    for x_pos, (m, top) in enumerate(zip(means, p99)):  # above the whisker
        ax.annotate(f"{m:.3f} ms" if m < 0.1 else f"{m:.2f} ms", (x_pos, max(m, top)), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize=8)
    del bars
    base = find_row(report["inference"], precision=report["primary_precision"], mode="latency")
    if base:
        budget = base["latency_ms"]["p50"] * TARGET_DECODE_SHARE
        ax.axhline(budget, color=colors["latency"], linestyle="--", linewidth=1,
                   label=f"2 % of inference p50 ({budget:.2f} ms)")
    ax.set_yscale("log")
    ax.set_ylim(top=max(p99 + means + [1e-3]) * 3)
    ax.set_ylabel("ms per frame (p50; whisker to p99), log scale")
    ax.set_title("Decode time per backend", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    fig.text(0.01, 0.01, subtitle, fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    paths.append(_save(fig, out / PLOTS["decode"], plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
