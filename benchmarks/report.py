"""Render ``RESULTS.md`` from the section JSON files in a results folder."""

from __future__ import annotations

import json
from pathlib import Path

from ._common import fmt_s

ORDER = (
    "capture",
    "embed",
    "region",
    "display",
    "scrub",
    "memory",
    "quickstart",
    "contention",
    "training",
)


def _load(out: Path) -> dict[str, dict]:
    docs = {}
    for name in ORDER:
        p = out / f"{name}.json"
        if p.exists():
            docs[name] = json.loads(p.read_text())
    return docs


def _machine(doc: dict) -> str:
    m = doc["machine"]
    return (
        f"{m['cpu']}, {m['cores']} cores (torch threads {m['torch_threads']}), {m['ram_gb']} GiB RAM, "
        f"Python {m['python']}, torch {m['torch']}, device **{m['device']}**; "
        f"load average before/after {m['load_avg_1_5_15'][0]} / {doc.get('load_avg_after', ['?'])[0]}"
    )


def _mb(x) -> str:
    return "—" if x is None else f"{x:,.0f} MiB"


def write(out: Path) -> Path:
    """Write ``out/RESULTS.md`` from the JSON files there and return its path."""
    out = Path(out)
    docs = _load(out)
    lines = ["# Benchmark results", ""]
    lines += [
        "Written by `scripts/bench` (`python -m benchmarks.run`); every figure below comes from the JSON",
        "file named in its section, which also holds the exact command, the machine and raw timings.",
        "Ratios are ours / the alternative (below 1 = ours is faster).",
        "",
    ]
    if not docs:
        lines.append("No results yet: run `scripts/bench`.")
    cuda = any(d["machine"].get("cuda") for d in docs.values())
    if docs and not cuda:
        lines += [
            "**GPU:** none on this machine, so every figure is CPU-only. The suite picks CUDA by itself",
            "when torch sees a GPU (`device=None`), so the same command measures the GPU there.",
            "",
        ]
    for name in ORDER:
        if name not in docs:
            continue
        doc = docs[name]
        lines += [
            f"## {doc['section']}",
            "",
            f"- command: `{doc['command']}` ({doc['started']}, {doc['seconds']} s)",
            f"- machine: {_machine(doc)}",
            f"- raw: [`{name}.json`]({name}.json)",
            "",
        ]
        if doc["status"] == "partial":
            lines += [
                "**Partial: the run was cut short during this section; rows below are what finished.**",
                "",
            ]
        elif doc["status"] != "ok":
            lines += ["**failed:**", "", "```", doc["result"].get("error", "")[-1500:], "```", ""]
            continue
        lines += globals()[f"_{name}"](doc["result"]) + [""]
    path = out / "RESULTS.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def _capture(r: dict) -> list[str]:
    rows = [
        "Same batches (the study's own batch iterator), batch size, device and eval/inference mode for both; "
        "alternating repeats, medians.",
        "",
        "| model / data | images | plain forward | capture of 4 layers | ratio (median) | ratio (min) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        rows.append(
            f"| {x['model']}, input {'x'.join(map(str, x['input']))}, batch {x['batch_size']}, {x['device']} | "
            f"{x['n_images']:,} | {fmt_s(x['forward_median_s'])} | {fmt_s(x['capture_median_s'])} | "
            f"**{x['ratio_median']:.3f}** | {x['ratio_min']:.3f} | ≤ {x['target']} "
            f"({'met' if x['meets_target'] else 'NOT met'}) |"
        )
    rows += [
        "",
        "Layers and regions kept per layer (default budget): "
        + "; ".join(
            f"{x['config']}: " + ", ".join(f"{k} {v:,}" for k, v in x["regions_kept"].items())
            for x in r["runs"]
        ),
    ]
    for x in r["runs"]:
        if x.get("profile_top_tottime"):
            rows += [
                "",
                f"{x['config']} above target; cProfile of one capture (top by own time):",
                "",
                "```",
                *x["profile_top_tottime"],
                "```",
            ]
    sc = r.get("scaling")
    if sc:
        rows += [
            "",
            f"Capture scaling under torchrun: {sc['model']}, the same {sc['n_images']:,} images, "
            f"{sc['cores']} cores; barriers around each capture, medians (P > 1: shards + gather to rank 0).",
            "",
            "| processes x threads | capture | speed-up |",
            "|---|---|---|",
        ]
        rows += [
            f"| {x['processes']} x {x['torch_threads']} | {fmt_s(x['capture_median_s'])} | {x['speedup']:.2f}x |"
            for x in sc["runs"]
        ]
        if sc.get("command"):  # measured on its own, after the section
            rows += [
                "",
                f"Scaling measured separately: `{sc['command']}` ({sc['started']}, {sc['seconds']} s); "
                f"load average before/after {sc['load_avg_before'][0]} / {sc['load_avg_after'][0]}. {sc.get('note', '')}",
            ]
    return rows


def _embed(r: dict) -> list[str]:
    from .bench_embed import LABELS

    rows = [
        f"Synthetic class-structured regional features (`benchmarks/synthetic.py`), dim {r['dim']}, "
        f"10 classes, 8x8 regions per image; each method alone in a fresh process; limit "
        f"{r['limit_s'] / 60:.0f} min per fit; {r['n_jobs']} threads. k-NN: k=10, split by image 80/20 "
        "(at most 50k train / 5k test points); 'object' = object regions only.",
        "",
    ]
    if r.get("real"):
        q = r["real"]
        rows += [
            "",
            f"Real features: {q['source']} (train accuracy {q['train_accuracy']}, probe accuracy "
            f"{q['probe_accuracy']}), {q['dim']} channels on a {q['grid'][0]}x{q['grid'][1]} grid, "
            f"{q['probe_images']} probe images, {q['on_object_share']:.0%} of regions on the object "
            "(mask at the box centre).",
        ]
    rows += [
        "",
        "| data | method | n | fit | ours ÷ this | peak RSS | k-NN all | k-NN object |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        label = f"{x.get('data', 'synthetic')} | {LABELS.get(x['method'], x['method'])}"
        n = f"{x['n']:,}"
        if x["method"] == "feature space":
            if x.get("status", "ok") == "ok":
                rows.append(
                    f"| {x.get('data', 'synthetic')} | *feature space ({x['dim']}-D), the ceiling* | {n} | — | — | — | "
                    f"{x['knn']['all']:.3f} | {x['knn']['object']:.3f} |"
                )
            continue
        if x.get("status") != "ok":
            why = x.get("reason") or x.get("status")
            if x.get("status") in ("timeout", "exceeded"):
                why = f"exceeded {r['limit_s'] / 60:.0f} min"
            elif x.get("status") == "error":
                why = "error: " + x.get("error", "")[-120:].replace("\n", " ").replace("|", "/")
            rows.append(f"| {label} | {n} | {why} | | | | |")
            continue
        ratio = x.get("ours_time_ratio")
        rows.append(
            f"| {label} | {n} | {fmt_s(x['fit_s'])} | {'' if ratio is None else f'{ratio:.2f}x'} | "
            f"{_mb(x.get('peak_rss_mb'))} | {x['knn']['all']:.3f} | {x['knn']['object']:.3f} |"
        )
    rows += [
        "",
        "'ours ÷ this' = our fit seconds / this method's at the same n (below 1: ours is faster). "
        "Warm-up (imports, numba JIT) is excluded from 'fit' and stored as `warmup_s`. Ours = sample "
        "embedding (2000 full-batch steps) + importance weights + region matching + Λ fit, engine "
        "defaults (the official code's; docs/method.md); its stage split is in the JSON (`info.region_stages_s`).",
    ]
    return rows


def _region(r: dict) -> list[str]:
    if "variants" in r:  # results with the reference path and CPU times
        from .bench_region import describe

        return describe(r)
    rows = [
        f"The paper's regional-feature fit on {r['n_images']:,} synthetic images x {r['regions_per_image']} regions "
        f"({r['grid'][0]}x{r['grid'][1]}) x {r['channels']} channels, preset: "
        f"{next((x['preset'] for x in r['rows'] if 'preset' in x), '?')}; each schedule in a fresh process on the "
        "same features.",
        "",
        "| r' schedule | total | importance (w, v) | final r' search | Λ fit | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        if x["status"] != "ok":
            rows.append(f"| {x['schedule']} | {x['status']} | | | | |")
            continue
        st = x["region_stages_s"]
        rows.append(
            f"| {x['schedule']} | **{fmt_s(x['region_fit_s'])}** | {fmt_s(st.get('importance'))} | "
            f"{fmt_s(st.get('match'))} | {fmt_s(st.get('fit'))} | {_mb(x.get('peak_rss_mb'))} |"
        )
    if "every_step_over_once" in r:
        a = r["agreement"]
        rows += [
            "",
            f"Every step / once: **{r['every_step_over_once']}x**. The two results: median cosine of a "
            f"region's h {a['h_cosine_median']} (5th percentile {a['h_cosine_p05']}), correlation of ‖h‖ "
            f"{a['h_norm_correlation']}; regions' w equal in {a['w_equal_share']:.1%} of regions, correlation "
            f"{a['w_correlation'] if a['w_correlation'] is not None else 'undefined (a w is constant)'}.",
        ]
    return rows


def _bytes_note(r: dict) -> str:
    """What the byte columns count, when the harness read them from the websocket frames."""
    b = r.get("bundle_bytes", {})
    sent = {x["widget"]: x.get("bundle_sent_mb") for x in r["rows"] if x.get("bundle_sent_mb")}
    return (
        "Bytes are read from the kernel websocket's messages themselves (Jupyter's v1 protocol: "
        "offsets, channel, header, parent header, metadata, content, buffers), from the keypress "
        "to the first frame: 'bundle as sent' = the JSON string values of the widget's `_esm` and "
        "`_css` in its comm messages, escaped as they travel (files: ours "
        f"{b.get('ours', 0) / 2**20:.3f} MiB, jupyter-scatter {b.get('jscatter', 0) / 2**20:.3f} MiB; "
        f"as sent: ours {sent.get('ours', 0) or 0:.3f} MiB, jupyter-scatter {sent.get('jscatter', 0) or 0:.3f} MiB); "
        "'data B/pt' = the rest of the widget's comm messages (`comm_open`, `comm_msg`: their "
        "content and binary buffers, i.e. the widget's state and data), per point; 'Jupyter's "
        "B/pt' = everything else (every message's offsets, channel, headers and metadata, and the "
        "other messages: status, execute_input / execute_reply, display_data, ...), per point. "
    )


def _display(r: dict) -> list[str]:
    if "dprs" not in r:  # results written before repeats and device pixel ratios
        return _display_v1(r)
    b = r.get("bundle_bytes", {})
    split = all("bytes_received" in x for x in r["rows"] if x.get("status") == "ok")
    rows = [
        "Headless Chromium (SwiftShader, software WebGL) through JupyterLab; the same points (ours 3-D, "
        "jupyter-scatter x/y) coloured by class. Per (n, device pixel ratio): a fresh server, kernel and "
        f"browser; one warm-up display of each widget (not counted), then {r.get('repeats')} rounds, the "
        "order reversed every other round, each display after closing the previous widget; medians. "
        + (
            "The same plot area in CSS px for every widget (ours measured at the end of each of its "
            "displays, after its drag, then given to jupyter-scatter and the floor in the displays "
            "that follow; the column shows each one's as measured), the same point size in CSS px "
            "(ours for that n, passed to "
            if split
            else "The same plot area in CSS px for every widget (ours measured in the warm-up, then "
            "given to jupyter-scatter and the floor), the same point size in CSS px (ours for that "
            "n, passed to "
        )
        + "jupyter-scatter as `size`). 'floor' = a trivial anywidget that draws n one-pixel points from no "
        "data: what Jupyter's own display path costs. 'first frame' = keypress that runs the cell → "
        f"first presented frame that draws every point; drag = {r.get('drag_steps', 40)} mouse moves "
        "across the plot (ours in its Pan tool), frame = interval between presented frames that redraw "
        "every point (no level-of-detail frames: every frame drew every point). "
        + (
            "'ours-gpu' = ours with its points forced onto GPU point sprites (`renderer='webgl'`); "
            "'ours' = the default ('auto'), which splats its points on the CPU where WebGL is software "
            "and shows them as one WebGL quad (frames counted from the widget's `patternviz:points` "
            "mark, as a draw call of that many points); the widget column names each one's point path. "
            if any(x.get("widget") == "ours-gpu" for x in r["rows"])
            else ""
        )
        + (
            _bytes_note(r)
            if split
            else "'data B/pt' = bytes "
            "over the kernel websocket from the keypress to the first frame, less the widget's bundle "
            f"(bundles: ours {b.get('ours', 0) / 2**20:.2f} MiB, jupyter-scatter {b.get('jscatter', 0) / 2**20:.2f} MiB), per point. "
        )
        + f"WebGL: {r.get('webgl_renderer', '?')}. {r.get('load', '').capitalize()}.",
        "",
        "| n | DPR | widget | plot (CSS px) | first frame (median) | all repeats | ÷ jupyter-scatter | data B/pt | "
        + ("Jupyter's B/pt | bundle as sent | " if split else "")
        + "drag: median frame | p95 frame | frame ÷ jupyter-scatter |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if split else ""),
    ]
    for x in r["rows"]:
        if x.get("status") != "ok":
            rows.append(
                f"| {x['n']:,} | {x['dpr']} | {x['widget']} | error: {x.get('error', '')[:150]} | | | | | | | |"
                + (" | |" if split else "")
            )
            continue
        p = x.get("pan", {})
        ratio, fr = x.get("first_frame_vs_jscatter"), x.get("frame_time_vs_jscatter")
        allr = ", ".join(fmt_s(v) for v in x.get("first_frame_all_s", []))
        plot = "×".join(str(v) for v in x.get("plot_css_px", []))
        wname = x["widget"] + (f" ({x['point_path']} points)" if x.get("point_path") else "")
        rows.append(
            f"| {x['n']:,} | {x['dpr']} | {wname} | {plot} | {fmt_s(x['first_frame_s'])} | {allr} | "
            f"{'' if ratio is None else f'**{ratio:.2f}**'} | {x.get('data_bytes_per_point', '—')} | "
            + (
                f"{x.get('jupyter_bytes_per_point', '—')} | "
                f"{x['bytes_received']['bundle'] / 2**20:.3f} MiB | "
                if split
                else ""
            )
            + (f"{p['median_frame_ms']} ms | {p['p95_frame_ms']} ms | " if p else "— | — | ")
            + f"{'' if fr is None else f'**{fr:.2f}**'} |"
        )
    rows += ["", "Targets (ours, every DPR measured):", ""]
    for x in r["rows"]:
        if x.get("widget") != "ours" or x.get("status") != "ok":
            continue
        ff, fr = x.get("first_frame_vs_jscatter"), x.get("frame_time_vs_jscatter")
        goal = 0.5 if x["n"] >= 1_000_000 else 1.0
        met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
        rows.append(
            f"- n = {x['n']:,}, DPR {x['dpr']}: first frame {ff if ff is not None else '—'}× jupyter-scatter's "
            f"(target ≤ {goal}×: {met(ff is not None and ff <= goal)}); drag frame {fr if fr is not None else '—'}× "
            f"(target ≤ 0.6×: {met(fr is not None and fr <= 0.6)}); data {x.get('data_bytes_per_point')} B/pt before "
            f"the first frame (target ≤ 8: {met((x.get('data_bytes_per_point') or 99) <= 8)})"
        )
    if r.get("floor_note"):
        rows += ["", r["floor_note"]]
    return rows


def _display_v1(r: dict) -> list[str]:
    rows = [
        "Headless Chromium (SwiftShader, software WebGL) through JupyterLab; the same points (ours 3-D, "
        "jupyter-scatter x/y) coloured by class, one kernel, one page. 'first frame' = keypress that runs "
        f"the cell → first presented frame that draws every point; drag = {r.get('drag_steps', 40)} mouse moves across the "
        "plot (ours in its Pan tool), frame = interval between presented frames that redraw every point. "
        f"WebGL: {r.get('webgl_renderer', '?')}. 'received before it' = bytes over the kernel websocket "
        "from the keypress to that frame (each widget's JS bundle included).",
        "",
        "| n | widget | first frame | ours ÷ jupyter-scatter | received before it | drag: full frames | median frame | p95 frame | fps | frame time ours ÷ jupyter-scatter |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        if x.get("status") != "ok":
            rows.append(
                f"| {x['n']:,} | {x['widget']} | error: {x.get('error', '')[:150]} | | | | | | | |"
            )
            continue
        p = x["pan"]
        ratio, fr = x.get("first_frame_vs_jscatter"), x.get("frame_time_vs_jscatter")
        rows.append(
            f"| {x['n']:,} | {x['widget']} | {fmt_s(x['first_frame_s'])} | {'' if ratio is None else f'**{ratio:.2f}**'} | "
            f"{x.get('received_mb_to_first_frame', '—')} MiB | {p['frames']} | {p.get('median_frame_ms', '—')} ms | {p.get('p95_frame_ms', '—')} ms | {p.get('fps', '—')} | "
            f"{'' if fr is None else f'**{fr:.2f}**'} |"
        )
    return rows


def _scrub(r: dict) -> list[str]:
    rows = [
        r.get("note", "") + (f" {r['load'].capitalize()}." if r.get("load") else ""),
        "",
        "| widget | prefetch | steps | median latency | p95 latency | max |",
        "|---|---|---|---|---|---|",
    ]
    for x in r.get("rows", []):
        w = x.get("widget", "ours")
        if x.get("point_path"):
            w += f" ({x['point_path']} points)"
        if x.get("status") != "ok":
            rows.append(f"| {w} | {x['prefetch']} | error: {x.get('error', '')[:150]} | | | |")
            continue
        rows.append(
            f"| {w} | {x['prefetch']} | {x['steps']} | {x['median_ms']} ms | {x['p95_ms']} ms | {x['max_ms']} ms |"
        )
    if r.get("prefetch_speedup"):
        rows += [
            "",
            f"Median latency without / with prefetch (ours): **{r['prefetch_speedup']:.1f}x**.",
        ]
    targets = _scrub_targets(r.get("rows", []))
    if targets:
        rows += [
            "",
            "Targets (ours, the default point path; a switch to data already in the page):",
        ]
        rows += [f"- {t}" for t in targets]
    if r.get("floor_note"):
        rows += ["", r["floor_note"]]
    return rows


def _scrub_targets(rows: list[dict]) -> list[str]:
    """One line per measured switch of ours to a prefetched neighbour at 10^5 or 10^6 points: its
    median against the target (≤ 100 ms at 10^5 points, ≤ 300 ms at 10^6)."""
    out = []
    for x in rows:
        n, kind = x.get("n"), x.get("kind")
        on = str(x.get("prefetch", "")).startswith("on")
        ours = x.get("widget", "").split(" · ")[0] == "ours"  # (not ours-gpu, not the old bundle)
        if x.get("status") != "ok" or not on or not ours or n not in (100_000, 1_000_000):
            continue
        limit = 100 if n == 100_000 else 300
        met = "met" if x["median_ms"] <= limit else "NOT met"
        out.append(
            f"{kind} switch at {n:,} points: median {x['median_ms']} ms, max {x['max_ms']} ms "
            f"(target ≤ {limit} ms: {met})"
        )
    return out


def _memory(r: dict) -> list[str]:
    rows = [
        f"{r['n_images']:,} images x {len(r['layers'])} layers on {r['device']}, default budget "
        f"(regions_per_image={r['regions_per_image']}, max_regions={r['max_regions']:,}): regions kept "
        + ", ".join(f"{v:,}" for v in r["regions_kept"].values())
        + f"; images {r['images_mb']} MiB; store {r['store_after_capture_mb']} MiB after capture, "
        f"{r['store_after_embed_mb']} MiB after embed (embedding preset: {r.get('embed_preset', 'paper')}).",
        "",
        "| stage | peak RSS so far | RSS after | seconds |",
        "|---|---|---|---|",
    ]
    for name, s in r["stages"].items():
        rows.append(
            f"| {name} | {_mb(s['peak_rss_mb'])} | {_mb(s['rss_mb'])} | {fmt_s(s.get('seconds'))} |"
        )
    return rows


def _quickstart(r: dict) -> list[str]:
    from .bench_quickstart import describe

    lines = describe(r) + [""]
    for layer, a in (r.get("agreement") or {}).items():
        lines.append(
            f"- {layer}: median cos(h_ours, h_reference) {a['median_cos_h']}, KP/img {a['kp_ours']} vs "
            f"{a['kp_reference']}"
        )
    return lines


def _contention(r: dict) -> list[str]:
    return _quickstart(r)


def _training(r: dict) -> list[str]:
    from .bench_training import describe

    return describe(r)
