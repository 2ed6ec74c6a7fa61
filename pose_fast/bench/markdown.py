"""report.md from the report dict (:func:`render_markdown` and the tables it is made of), and :func:`write_report`,
which writes report.json, the plots and report.md into a folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..model import MODEL_NAME, PRECISIONS
from .crowd import CROWD_PEOPLE
from .identities import PAN_STEP
from .inputs import DEFAULT_VIDEO
from .plan import DEFAULT_FRAMES, STREAMS
from .plots import PLOTS, write_plots
from .targets import find_row, fmt, format_target, pct, verdict

__all__ = ["write_report", "render_markdown", "headline_rows", "ceiling_lines", "decode_rows", "crowd_rows",
           "numba_lines", "streams_lines", "tracking_lines"]


def write_report(report: dict, out_dir) -> List[Path]:
    """Write report.json, the PNG plots and report.md into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["plots"] = dict(PLOTS)
    paths = write_plots(report, out)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=1, default=_json_default) + "\n", encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return [md_path, json_path, *paths]


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _mark(target: dict) -> str:
    return {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭ skipped"}[verdict(target)]


def headline_rows(report: dict) -> List[str]:
    """The headline table (markdown lines): per precision and mode, inference-only vs pipeline."""
    lines = ["| precision | mode | requests | inference-only FPS | pipeline FPS | pipeline / inference | "
             "inference p50 ms | capture→shown p50 ms | benchmark_app FPS | **pipeline / benchmark_app** | "
             "engine / benchmark_app |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ratios = report["ratios"]["pipeline_over_inference"]
    over_app = report["ratios"].get("pipeline_over_benchmark_app", {})
    engine_over_app = report["ratios"].get("engine_over_benchmark_app", {})
    rows = (report.get("ceiling") or {}).get("rows") or []
    for inf in report["inference"]:
        pipe = find_row(report["pipeline"], precision=inf["precision"], mode=inf["mode"])
        app = find_row(rows, precision=inf["precision"], mode=inf["mode"])
        key = f"{inf['precision']} {inf['mode']}"
        lines.append(f"| {inf['precision']} | {inf['mode']} | {inf['requests']} | {fmt(inf['fps'])} | "
                     f"{fmt(pipe['fps']) if pipe else 'n/a'} | {pct(ratios.get(key), 0)} | "
                     f"{fmt(inf['latency_ms']['p50'])} | "
                     f"{fmt(pipe['stages']['latency']['p50']) if pipe else 'n/a'} | "
                     f"{fmt(app.get('fps') if app else None)} | **{pct(over_app.get(key), 0)}** | "
                     f"{pct(engine_over_app.get(key), 0)} |")
    return lines


def ceiling_lines(report: dict) -> List[str]:
    """The ceiling section (markdown lines): benchmark_app per hint, frame 0, context switches."""
    ceiling = report.get("ceiling") or {}
    lines = ["", "## Ceiling: benchmark_app", ""]
    if ceiling.get("rows"):
        lines += [f"OpenVINO's `benchmark_app` (`{ceiling['command']}`) on the same IR, reshaped to the pipeline's "
                  "network size, on the same device, with the hint of each mode; random input, nothing but "
                  "inference. One run per round, alternating with inference only and the pipeline; FPS is the mean "
                  "of the rounds. The headline's *pipeline / benchmark_app* (and *engine / benchmark_app*) is the "
                  "median of the per-round ratios (each round's pipeline and benchmark_app ran back to back), so a "
                  "burst of other load moves one round, not the figure.", "",
                  "| precision | hint | network | requests | rounds | FPS | FPS per round | latency p50 ms |",
                  "| --- | --- | --- | ---: | ---: | ---: | --- | ---: |"]
        for row in ceiling["rows"]:
            per = ", ".join(fmt(f) for f in row["round_fps"])
            lines.append(f"| {row['precision']} | {row['hint']} | {'×'.join(map(str, row['network_size']))} | "
                         f"{row['requests'] if row['requests'] is not None else 'n/a'} | {row['rounds']} | "
                         f"{fmt(row['fps'])} | {per} | {fmt(row['latency_p50_ms'])} |")
            if row.get("error"):
                lines.append(f"\n*{row['precision']} {row['hint']}:* {row['error']}")
        for pipe in report["pipeline"]:
            app = find_row(ceiling["rows"], precision=pipe["precision"], mode=pipe["mode"])
            if app and len(app["round_fps"]) == len(pipe.get("round_fps") or []):
                per = ", ".join(pct(p / a, 0) for p, a in zip(pipe["round_fps"], app["round_fps"]) if a > 0)
                lines.append(f"\n*pipeline / benchmark_app per round, {pipe['precision']} {pipe['mode']}:* {per}")
        lines.append(f"\nOne round's command: `{' '.join(map(str, ceiling['rows'][0]['args']))}`")
    else:
        lines.append(f"Not measured: {ceiling.get('skipped') or 'benchmark_app was not run'}.")
    lines += ["", "### First frame and scheduling", "",
              "*frame 0* is capture→shown of the first frame of each round (a new `Pipeline` each round; the "
              "first round of the run is the coldest), against the median of the mode. Context switches are the "
              "whole process's (`getrusage(RUSAGE_SELF)`: the pipeline's threads and OpenVINO's) over the "
              "pipeline rounds, per frame.", "",
              "| precision | mode | frame 0 ms per round | median ms | frame 0 / median (slowest) | "
              "voluntary / frame | involuntary / frame |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for pipe in report["pipeline"]:
        key = f"{pipe['precision']} {pipe['mode']}"
        cs = pipe.get("context_switches") or {}
        frame0 = ", ".join(fmt(v) for v in pipe.get("frame0_latency_ms") or [])
        lines.append(f"| {pipe['precision']} | {pipe['mode']} | {frame0} | {fmt(pipe['stages']['latency']['p50'])} | "
                     f"{_times(report['ratios'].get('frame0_over_median', {}).get(key))} | "
                     f"{fmt(cs.get('voluntary_per_frame'))} | {fmt(cs.get('involuntary_per_frame'))} |")
    return lines


PEER_LABEL = "peer decoder (NMS + grouping)"
PEER_PART_LABELS = {"nms": "↳ peer part: the notebook's 3×3 max-pool NMS",
                    "grouping": "↳ peer part: OpenPoseDecoder grouping"}


def _times(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.1f}×"


def decode_rows(report: dict) -> List[str]:
    """The decoding table (markdown lines): each backend, the peer as the notebook runs it, then its two parts."""
    ratios = report["ratios"]
    lines = ["| decoder | mean ms | p50 ms | p99 ms | × Cython | share of inference | people found |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["decode"]["backends"]:
        name = row["name"] + (" (default)" if row.get("default") else "")
        if row["name"] == "peer":
            name = PEER_LABEL
        lines.append(f"| {name} | {fmt(row['mean'], 3)} | {fmt(row['p50'], 3)} | {fmt(row['p99'], 3)} | "
                     f"{_times(ratios['backend_over_cython'].get(row['name']))} | "
                     f"{pct(ratios['decode_over_inference'].get(row['name']), 2)} | {row['people']} |")
        if row["name"] == "peer":
            base = find_row(report["inference"], precision=report["primary_precision"], mode="latency")
            infer_ms = base["latency_ms"]["p50"] if base else 0.0
            for part in report["decode"].get("peer_parts") or []:
                share = part["p50"] / infer_ms if infer_ms > 0 else None
                lines.append(f"| {PEER_PART_LABELS.get(part['name'], part['name'])} | {fmt(part['mean'], 3)} | "
                             f"{fmt(part['p50'], 3)} | {fmt(part['p99'], 3)} | "
                             f"{_times(ratios.get('peer_part_over_cython', {}).get(part['name']))} | "
                             f"{pct(share, 2)} | |")
    return lines


def crowd_rows(report: dict) -> List[str]:
    """The 10-person scene's table (markdown lines)."""
    crowd = report["decode"].get("crowd") or {}
    over = report["ratios"].get("crowd_backend_over_cython", {})
    lines = ["| decoder | mean ms | p50 ms | p99 ms | × Cython | people found |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in crowd.get("backends", []):
        name = PEER_LABEL if row["name"] == "peer" else row["name"] + (" (default)" if row.get("default") else "")
        lines.append(f"| {name} | {fmt(row['mean'], 3)} | {fmt(row['p50'], 3)} | {fmt(row['p99'], 3)} | "
                     f"{_times(over.get(row['name']))} | {row['people']} |")
    return lines


def numba_lines(report: dict) -> List[str]:
    """What numba's first call cost, in this process and compiling from nothing (markdown lines)."""
    numba = report["decode"].get("numba_first_call") or {}
    here, fresh = numba.get("this_process"), numba.get("fresh_process")
    if not here and not fresh:
        return ["- **numba first call:** not measured (the numba backend does not import)."]
    lines = []
    if fresh and "error" not in fresh:
        lines.append(f"- **numba compile time:** the first call took **{fmt(fresh['first_call_s'], 2)} s** in a "
                     f"fresh process with `NUMBA_CACHE_DIR` pointed at an empty folder ({fresh['how']}: "
                     f"{fresh['cache_misses']} cache misses, {fresh['cache_hits']} hits); the second call "
                     f"{fmt(fresh['second_call_ms'], 3)} ms.")
    elif fresh:
        lines.append(f"- **numba compile time:** not measured: {fresh['error']}")
    if here:
        how = {"loaded from cache": f"loaded from numba's on-disk cache in `{here['cache_dir']}` (cache hit)",
               "compiled": f"compiled: nothing usable in numba's cache in `{here['cache_dir']}` (cache miss)",
               "already compiled": "already compiled earlier in this process"}.get(here["how"], here["how"])
        lines.append(f"- **numba first call in this run:** {fmt(here['first_call_s'], 2)} s, {how}; the second "
                     f"call {fmt(here['second_call_ms'], 3)} ms. Both decode an empty 57×32 map (what numba compiles "
                     f"depends only on the argument types); the import of numba itself is not counted.")
    return lines


def streams_lines(report: dict) -> List[str]:
    """The remote streams section (markdown lines), or none without --server."""
    streams = report.get("streams")
    if not streams:
        return []
    n = streams["frames_per_stream"]
    local = find_row(streams["rows"], run="local")
    lines = ["", "## Remote streams", "",
             f"Concurrent video streams against {streams['server']}, through `run_streams`: each "
             f"stream is its own `RemoteEngine` (its own gRPC connection, {streams['requests_per_stream']} requests in "
             f"flight) pushing {n} frames of the video as fast as the server answers, like separate cameras. "
             f"*local engine* runs the same frames through the local `Engine` in throughput mode"
             + (f" ({streams['local_precision']}, `{Path(streams['local_model']).name}`; the server serves its own "
                "copy of the model, so compare like with like)" if local else "")
             + f": the reference for one stream. *server's model alone* is one client keeping "
             f"{streams['server_alone_requests']} requests in flight (as many as {max(STREAMS)} streams do) over "
             f"{n * max(STREAMS)} frames: what the server sustains when it is asked for nothing but inference, over "
             f"the same protocol (the server queues what it cannot run at once); the reference for {max(STREAMS)} "
             "streams. Latency is per request, send to answer; *client CPU* is this process's CPU time per frame "
             f"answered. Measured once each, in this order: {', '.join(streams['measured_order'])} (each pair a "
             "target compares runs back to back); a server on this machine shares its CPUs with the client, and "
             "on a shared machine the other load moves every row.", "",
             "| run | streams | requests in flight per stream | frames per stream | aggregate FPS | per-stream FPS | "
             "latency p50 ms | latency p99 ms | dropped | client CPU ms/frame |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    names = {"local": "local engine", "server_alone": "server's model alone", "remote": "remote"}
    for row in streams["rows"]:
        per = ", ".join(fmt(f) for f in row["per_stream_fps"])
        lines.append(f"| {names[row['run']]} | {row['streams']} | {row['requests_per_stream']} | "
                     f"{row['frames_per_stream']} | {fmt(row['aggregate_fps'])} | {per} | "
                     f"{fmt(row['latency_p50_ms'])} | {fmt(row['latency_p99_ms'])} | {row['dropped']} | "
                     f"{fmt(row['client_cpu_ms_per_frame'])} |")
    if not local and streams.get("local_skipped"):
        lines.append(f"\n*local engine not measured:* {streams['local_skipped']}")
    return lines


def tracking_lines(report: dict) -> List[str]:
    """The identities section (markdown lines): per video and stride, the tracker's run on every Nth frame against
    its full-rate run, the same with a camera pan; its cost per result."""
    tracking = report.get("tracking")
    lines = ["", "## Identities at low frame rates", ""]
    if not tracking:
        return lines + ["Not measured."]
    cost = tracking["cost"]
    lines += ["The tracker on every Nth frame of the video (its timestamps kept: what a slow device sees of a "
              "camera), against its own run on every frame; *pan*: the same run with every result shifted "
              f"{PAN_STEP * 100:g} % of the width farther right than the one before, against the run without the pan. "
              "IDF1: the ids paired one to one so as to agree on the most detections, over the frames both runs "
              "saw. Enters and exits: the tracker's events; *full* is the full-rate run's figure.", "",
              "| video | every Nth frame | results | IDF1 | people (full) | enters (full) | exits (full) | "
              "pan IDF1 | pan people (without the pan) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in tracking["rows"]:
        p = row["pan"]
        results = -(-row["frames"] // row["stride"])
        lines.append(f"| {row['video']} | {row['stride']} | {results} | {row['idf1']:.3f} | {row['people']} "
                     f"({row['reference_people']}) | {row['enters']} ({row['reference_enters']}) | {row['exits']} "
                     f"({row['reference_exits']}) | {p['idf1']:.3f} | {p['people']} ({p['reference_people']}) |")
    lines += ["", f"Tracker cost: **{cost['ms_p50']:.3f} ms** per result (p50; mean {cost['ms_mean']:.3f} ms) with "
              f"{cost['people']} people in view, over {cost['results']} results of a synthetic scene, with the "
              f"{cost.get('kernels') or 'default'} kernels."]
    fallback = tracking.get("cost_numpy")
    if fallback and cost.get("kernels") != fallback.get("kernels"):
        lines[-1] += (f" With the NumPy kernels (the fallback where `pose_fast._track` was not compiled): "
                      f"{fallback['ms_p50']:.3f} ms ({fallback['ms_p50'] / cost['ms_p50']:.1f}× as long, this run).")
    return lines


def render_markdown(report: dict) -> str:
    """report.md: what was measured on what, the headline table, targets, each section, the plots."""
    m = report["machine"]
    cores = f"{m['logical_cpus']} logical CPUs"
    if m.get("physical_cores"):
        cores += f", {m['physical_cores']} physical cores"
    if m.get("usable_cpus") and m["usable_cpus"] != m["logical_cpus"]:
        cores += f", {m['usable_cpus']} usable"
    video = report["video"]
    primary = report["primary_precision"]
    device = report["device"] + (f" ({m['device_name']})" if m.get("device_name") else "")
    if report.get("server"):
        device = f"remote {report['server']}"
    load = m.get("load_average")
    load_end = m.get("load_average_end")
    lines = [
        "# pose_fast benchmark report",
        "",
        f"- **Date:** {report['date']}",
        f"- **Machine:** {m['cpu']}, {cores}; {m['os']}; Python {m['python']}, NumPy {m['numpy']}",
        f"- **OpenVINO:** {report['openvino']}",
        f"- **Device:** {device}",
        (f"- **Model:** {MODEL_NAME} as the server serves it (KServe v2 gRPC, `pose_fast.engines.remote.RemoteEngine`)"
         if report.get("server") else f"- **Model:** {MODEL_NAME}, precision {', '.join(report['precisions'])}"),
        f"- **Video:** {video['name']} ({video['width']}×{video['height']}), {report['settings']['frames']} frames "
        f"per measurement ({video['distinct_frames']} distinct, cycled), {report['settings']['rounds']} alternating "
        f"rounds",
    ]
    if load:
        lines.append(f"- **Load average** (1, 5, 15 min) at start {', '.join(map(str, load))}"
                     + (f"; at end {', '.join(map(str, load_end))}" if load_end else "")
                     + ". On a shared machine the numbers move with the load; compare ratios, not absolutes.")
    lines.append(f"- **Run time:** {fmt(report.get('duration_s'), 0)} s")
    for skip in report["skipped"]:
        lines.append(f"- **Skipped {skip['precision']}:** {skip['reason']}")
    lines += ["", "## Headline", ""] + headline_rows(report)
    lines += ["", "## Targets", "", "| target | measured | needed | result |", "| --- | ---: | ---: | --- |"]
    for target in report["targets"]:
        measured, needed = format_target(target)
        lines.append(f"| {target['name']} | {measured} | {needed} | {_mark(target)}"
                     + (f" ({target['note']})" if target.get("note") else "") + " |")

    lines += ["", "## Inference only", "",
              f"Through `{'RemoteEngine' if report.get('server') else 'Engine'}`: "
              "*latency* is one request, `infer()` frame after frame; *throughput* "
              "keeps the device's optimal number of requests busy with `submit()` and counts frames per second over "
              "the batch (per-frame times there include waiting for a free request).", "",
              "| precision | mode | network | requests | frames | FPS | mean ms | p50 ms | p99 ms |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for inf in report["inference"]:
        net = "×".join(map(str, inf["network_size"])) if inf.get("network_size") else "n/a"
        lat = inf["latency_ms"]
        lines.append(f"| {inf['precision']} | {inf['mode']} | {net} | {inf['requests']} | {inf['frames']} | "
                     f"{fmt(inf['fps'])} | {fmt(lat['mean'])} | {fmt(lat['p50'])} | {fmt(lat['p99'])} |")

    lines += ceiling_lines(report)

    dec = report["decode"]
    base = find_row(report["inference"], precision=primary, mode="latency")
    lines += ["", "## Decoding", "",
              f"Each decoder turns the same {dec['frames']} real model outputs ({primary}, heatmaps "
              f"{dec['heatmap_size'][0]}×{dec['heatmap_size'][1]}) into people, {dec['calls_per_backend']} calls "
              f"each. *× Cython* and *share of inference* compare medians: the p50 decode time over Cython's, and "
              f"over the p50 {primary} latency-mode inference time ({fmt(base['latency_ms']['p50'] if base else None)}"
              " ms); on a shared machine other processes' bursts land in the means and tails. The peer is "
              "Open Model Zoo's `OpenPoseDecoder` (openvino-model-api 0.2.5) behind the OpenVINO pose notebook's "
              "3×3 max-pool NMS, timed whole as the notebook runs it and, right after each such call on the "
              "same output, its two parts apart (the p50s of the parts need not add up to the whole's exactly).",
              ""]
    lines += decode_rows(report)
    for skip in dec["skipped"]:
        lines.append(f"\n*{skip['name']} not measured:* {skip['reason']}")
    crowd = dec.get("crowd") or {}
    lines += ["", f"### A {CROWD_PEOPLE}-person scene", ""]
    if crowd.get("backends"):
        wider = crowd["heatmap_size"][0] / max(1, dec["heatmap_size"][0])
        lines += [f"The video shows 2-5 people per frame; the targets speak of scenes of up to {CROWD_PEOPLE}. The "
                  f"scene here is {crowd['scene']} (the model's map is {dec['heatmap_size'][0]}×"
                  f"{dec['heatmap_size'][1]}, so the peak search covers {wider:.1f}× "
                  "the pixels a real frame with that many people would: a harsher test). Real tensors, nothing "
                  f"synthetic; {crowd['calls_per_backend']} calls per decoder.", ""]
        lines += crowd_rows(report)
    else:
        lines.append(f"Not measured: {crowd.get('skipped', 'no decoder')}.")
    lines += ["", "### numba's first call", ""] + numba_lines(report)

    lines += ["", "## Pipeline", "",
              "Capture → inference → decode → tracker (events to a temporary SQLite) → overlay, no display. "
              "Per-frame stage times in ms (p50 / p99); *capture→shown* is from the end of capture to the end of "
              "the overlay; *decode / inference* compares the p50s.", "",
              "| precision | mode | in flight | FPS | capture | inference | decode | render | capture→shown | "
              "decode / inference |",
              "| --- | --- | ---: | ---: | --- | --- | --- | --- | --- | ---: |"]
    for pipe in report["pipeline"]:
        s = pipe["stages"]
        cells = " | ".join(f"{fmt(s[k]['p50'])} / {fmt(s[k]['p99'])}"
                           for k in ("capture", "inference", "decode", "render", "latency"))
        share = report["ratios"]["pipeline_decode_over_inference"].get(f"{pipe['precision']} {pipe['mode']}")
        lines.append(f"| {pipe['precision']} | {pipe['mode']} | {pipe['in_flight']} | {fmt(pipe['fps'])} | {cells} | "
                     f"{pct(share, 2)} |")

    lines += streams_lines(report)
    lines += tracking_lines(report)

    ev = report.get("events")
    if ev:
        d = ev["detections"]
        lines += ["", "## Event store and /detections", "",
                  f"- Writer: {ev['written']:,} events added and committed in {fmt(ev['write_s'], 2)} s = "
                  f"**{ev['events_per_s']:,.0f} events/s**."]
        if d:
            lines.append(f"- `GET /detections?page=k&per-page=50` over {d['rows']:,} events, {d['requests']} random "
                         f"pages (Flask test client, no network): p50 **{fmt(d['p50'], 2)} ms**, p99 "
                         f"{fmt(d['p99'], 2)} ms.")
        else:
            lines.append("- `GET /detections`: not measured (run_bench was given no web app to measure it on).")

    lines += ["", "## Plots", ""]
    captions = {"stages": "Pipeline: mean time per stage", "latency_hist": "Latency per frame",
                "fps": "Frames per second per precision and mode", "decode": "Decode time per backend"}
    for key, name in report.get("plots", {}).items():
        lines += [f"![{captions.get(key, key)}]({name})", ""]
    lines += ["## Reproduce", "",
              "From the project folder (the default video is `../shared/videos/" + DEFAULT_VIDEO + "`; the model is "
              "found through `POSE_FAST_MODEL_DIR` or the user cache):", "", "```", _command(report), "```", "",
              "The pytest-benchmark suites measure the same parts one by one and compare runs: "
              "`pytest bench --benchmark-autosave`, then `pytest bench --benchmark-compare "
              "--benchmark-compare-fail=median:15%`.", ""]
    return "\n".join(lines)


def _command(report: dict) -> str:
    """The command line that measures the same things (default options left out)."""
    settings = report["settings"]
    parts = ["pose-fast bench"]
    if report["video"]["name"] != DEFAULT_VIDEO:
        parts.append(f"--video-url {report['video']['spec']}")
    if settings.get("device_requested", report["device"]) != "CPU":
        parts.append(f"--device-name {settings.get('device_requested', report['device'])}")
    requested = settings.get("precisions_requested") or report["precisions"]
    if not report.get("server") and sorted(requested) != sorted(PRECISIONS):
        parts += [f"--precision {p}" for p in requested]
    if settings["frames"] != DEFAULT_FRAMES:
        parts.append(f"--frames {settings['frames']}")
    if report.get("server"):
        parts.append(f"--server {report['server']}")
    return " ".join(parts) + " --out DIR"
