"""Sections 3 and 4: transfer + render, and scrubbing, in headless Chromium through real JupyterLab.

Section 3 ("display"): for each size, one notebook holds the same points for both widgets. For each
widget the timed cell builds the widget and displays it (what a user types:
``pv.PatternViz(study)`` / ``jscatter.Scatter(...).show()``); we report the time from the keypress
that runs the cell to the first presented frame that draws every point, then drag across the
plot and report frame times while it redraws (pan for jupyter-scatter; the drag gesture of our
3-D view). For each size both widgets run in the same browser, page and kernel, one after the
other, on the same points (our 3-D xyz; jupyter-scatter gets x, y of them), coloured by class;
each size gets a fresh JupyterLab server and browser.

Section 4 ("scrub"): see :func:`scrub` (epoch change -> new frame, prefetch on and off; layer
change -> new frame at 10^5 and 10^6 points).

Every measurement records the machine's 1-minute load average when it starts; each section reports
their range (the machine is shared: a timing is read as a ratio within one run).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _browser as B
from ._common import fmt_s

SETUP = """
from benchmarks._display_kernel import *  # noqa
store, df, N, PS = setup({n}, epochs={epochs}, old={old!r}, layers={layers})
"""

CELLS = {
    "ours": "show(pv.PatternViz(store, layer=LAYER, epoch=0, height=480))",
    # ours with its points forced onto GPU point sprites (what "auto" drew before the CPU point path)
    "ours-gpu": "show(pv.PatternViz(store, layer=LAYER, epoch=0, height=480, renderer='webgl'))",
    "old": "show(old_widget(store, layer=LAYER, epoch=0, height=480))",
    "jscatter": "PW, PH = plot()\n"
    'show(jscatter.Scatter(data=df, x="x", y="y", color_by="c", size=PS, width=PW, height=PH).show())',
    "floor": "PW, PH = plot()\nshow(Floor(n=N, width=PW, height=PH))",
}
CLOSE_CELL = "close_shown()"
#: widgets dragged after their first frame; the floor widget redraws its n points on every move
#: (no data, one-pixel points): the floor of a frame of n points in this browser
DRAGGED = ("ours", "ours-gpu", "old", "jscatter", "floor")
#: our widgets: the point path they drew with is recorded ("cpu", "gpu"; the page's data-points)
OURS = ("ours", "ours-gpu", "old")

POINT_PATH_JS = """(cell) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
  const e = c && c.querySelector('[data-points]');
  return e ? e.dataset.points : null;
}"""


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def _load_summary(values: list[float]) -> tuple[dict, str]:
    """The range of 1-minute load averages seen at the start of each measurement, and its sentence."""
    if not values:
        return {}, "the machine was shared with other jobs (2 cores): timings under load"
    lo, med, hi = min(values), statistics.median(values), max(values)
    return (
        {"min": lo, "median": round(med, 2), "max": hi, "samples": len(values)},
        f"the machine was shared with other jobs (2 cores): load average (1 min) {lo:.1f}-{hi:.1f}, "
        f"median {med:.1f}, at the start of the {len(values)} measurements",
    )


def _canvas_box(page: Any, cell: int) -> dict:
    canvases = (
        page.locator(".jp-Notebook:visible .jp-Cell").nth(cell).locator(".jp-OutputArea canvas")
    )
    if canvases.count():
        canvases.first.scroll_into_view_if_needed()
    return B.largest_canvas_box(page, cell)


def _measure(
    page: Any,
    cell: int,
    widget: str,
    n: int,
    bundle_bytes: int,
    timeout_s: float,
    drag_steps: int = 40,
) -> dict:
    load = _load1()
    B.keep_messages(page)  # the messages themselves, to tell the bundle and Jupyter's own apart
    t0 = B.run_cell(page, cell, timeout_s=timeout_s, wait=False)
    py0 = page.pressed_at
    frame = B.wait_full_frame(page, n, t0, timeout_s=timeout_s)
    B.wait_cell(page, cell, timeout_s)
    # what the page received from the keypress until the frame was drawn, on the page's clock
    # (Playwright reports a large websocket frame to Python late: counted on our clock, a first frame
    # drawn within about a second of the data missed the data that drew it)
    parts = B.received_breakdown(page, t0, frame["drawn"])
    B.keep_messages(page, False)
    received = B.page_received_between(page, t0, frame["drawn"])
    if received is None:
        received = B.received_between(page, py0, py0 + (frame["drawn"] - t0) / 1000)
    out = {
        "first_frame_s": round((frame["presented"] - t0) / 1000, 3),
        "first_draw_call_s": round((frame["drawn"] - t0) / 1000, 3),
        "received_mb_to_first_frame": round(received / 2**20, 2),
        "bundle_mb": round(bundle_bytes / 2**20, 3),
        "load_1min": load,
    }
    if parts and parts["total"] and not parts["unparsed"]:
        # read from the frames: the widget's own bytes (its state and buffers, the bundle as it
        # travels taken out), apart from the bundle and from Jupyter's own messages and envelopes
        out.update(
            data_bytes_per_point=round(parts["widget"] / n, 3),
            bytes_received={k: parts[k] for k in ("total", "bundle", "widget", "jupyter")},
            bytes_by_message_type=parts["types"],
            bundle_sent_mb=round(parts["bundle"] / 2**20, 3),
            jupyter_bytes_per_point=round(parts["jupyter"] / n, 3),
        )
    else:  # frames not readable (another websocket protocol): all but the bundle's file length
        out["data_bytes_per_point"] = round(max(received - bundle_bytes, 0) / n, 2)
        out["data_bytes_counted_as"] = "received less the bundle's file length"
        out["frames_not_read"] = (
            {k: parts[k] for k in ("total", "unparsed", "messages")} if parts else None
        )
    if widget in OURS:
        out["point_path"] = (
            page.evaluate(POINT_PATH_JS, cell) or "gpu (bundle without the CPU path)"
        )
    time.sleep(1.0)
    box = _canvas_box(page, cell)
    out["plot_css_px"] = [round(box["width"]), round(box["height"])]
    # and once more after the drag (below): the size the other widgets are then given
    if widget in DRAGGED:
        pan = page.locator(".jp-Notebook .jp-Cell").nth(cell).locator("[data-pv=tool-pan]")
        if pan.count():  # ours: switch the drag from orbit to pan, like jupyter-scatter's drag
            pan.first.click()
            time.sleep(0.3)
        box = _canvas_box(page, cell)
        out["pan"] = B.drag_frames(page, box, n, steps=drag_steps)
    box = _canvas_box(page, cell)
    out["plot_css_px_end"] = [round(box["width"]), round(box["height"])]
    return out


def med_of(values: list[float]) -> float:
    return statistics.median(values)


def _median_rows(runs: list[dict]) -> list[dict]:
    """One row per (n, dpr, widget): medians over the repeats that succeeded."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["n"], r["dpr"], r["widget"]), []).append(r)
    rows = []
    for (n, dpr, w), rs in groups.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        row: dict[str, Any] = {
            "n": n,
            "dpr": dpr,
            "widget": w,
            "repeats": len(ok),
            "failed": len(rs) - len(ok),
        }
        if not ok:
            row.update(status="error", error=rs[0].get("error", ""))
            rows.append(row)
            continue

        def med(k: str, ok: list[dict] = ok) -> float:
            return statistics.median(r[k] for r in ok)

        row.update(
            status="ok",
            first_frame_s=round(med("first_frame_s"), 3),
            first_frame_all_s=[r["first_frame_s"] for r in ok],
            first_draw_call_s=round(med("first_draw_call_s"), 3),
            received_mb_to_first_frame=round(med("received_mb_to_first_frame"), 2),
            bundle_mb=ok[0]["bundle_mb"],
            data_bytes_per_point=round(med("data_bytes_per_point"), 3),
            plot_css_px=ok[0]["plot_css_px"],
            plot_css_px_all=sorted({tuple(r["plot_css_px"]) for r in ok}),
        )
        # the bytes as read from the websocket frames, from the repeats where they could be read
        # (a repeat whose frames were not readable counted received less the bundle's file)
        split = [r for r in ok if "bytes_received" in r]
        if split:
            row["bytes_received"] = {
                k: int(med_of([r["bytes_received"][k] for r in split]))
                for k in ("total", "bundle", "widget", "jupyter")
            }
            row["data_bytes_per_point"] = round(med("data_bytes_per_point", split), 3)
            row["jupyter_bytes_per_point"] = round(med("jupyter_bytes_per_point", split), 3)
            row["bundle_sent_mb"] = split[0]["bundle_sent_mb"]
            if len(split) < len(ok):
                row["bytes_read_from_frames_in"] = f"{len(split)} of {len(ok)} repeats"
        paths = sorted({r["point_path"] for r in ok if r.get("point_path")})
        if paths:
            row["point_path"] = "/".join(paths)
        pans = [r["pan"] for r in ok if r.get("pan", {}).get("median_frame_ms") is not None]
        if pans:
            row["pan"] = {
                k: round(statistics.median(p[k] for p in pans), 1)
                for k in (
                    "median_frame_ms",
                    "p95_frame_ms",
                    "mean_frame_ms",
                    "frames",
                    "frames_with_points",
                )
            }
            row["pan"]["fps"] = (
                round(1000.0 / row["pan"]["mean_frame_ms"], 2)
                if row["pan"]["mean_frame_ms"]
                else None
            )
            row["pan_median_frame_all_ms"] = [p["median_frame_ms"] for p in pans]
        rows.append(row)
    return rows


def display(
    sizes: tuple[int, ...] = (100_000, 1_000_000),
    widgets: tuple[str, ...] = ("ours", "jscatter", "floor"),
    dprs: tuple[int, ...] = (1, 2),
    repeats: int = 3,
    old_bundle: str | None = None,
    timeout_s: float = 300.0,
    drag_steps: int = 40,
    log=print,
) -> dict:
    """Run section 3 and return its JSON-able result.

    Per (size, device pixel ratio): a fresh JupyterLab server, kernel and browser; one warm-up
    display of each widget (not counted; it also measures our plot area, which jupyter-scatter and
    the floor widget then get in CSS px); then ``repeats`` rounds that display every widget, the
    order reversed every other round, each display preceded by closing the previous widget.
    ``old_bundle``: also time our widget drawn by that build of the bundle (same data, same page).
    """
    if old_bundle and "old" not in widgets:
        widgets = (*widgets, "old")
    runs: list[dict] = []
    renderer = None
    bundles: dict[str, int] = {}
    for n in sizes:
        for dpr in dprs:
            # a fresh server, kernel and browser per size: in one page, the second notebook's first
            # cell never ran (the 1e6 run of 2026-12-01), and a fresh kernel also keeps one size's
            # memory out of the next one's timings
            with tempfile.TemporaryDirectory(prefix="pvbench_display_") as tmp:
                root = Path(tmp)
                order = list(widgets)  # warm-up: ours first (it measures the plot area)
                plan = [(w, None) for w in order]
                for r in range(repeats):
                    plan += [(w, r) for w in (order if r % 2 == 0 else order[::-1])]
                cells = [SETUP.format(n=n, epochs=1, old=old_bundle or "", layers=1)]
                for w, _ in plan:
                    cells += [CLOSE_CELL, CELLS[w]]
                with B.jupyterlab(root) as url, B.chromium(device_scale_factor=dpr) as page:
                    renderer = B.webgl_renderer(page)
                    name = f"display_{n}_{dpr}.ipynb"
                    B.write_notebook(root / name, cells)
                    B.open_notebook(page, url, name)
                    B.run_cell(page, 0, timeout_s=timeout_s)
                    text = B.cell_text(page, 0, limit=2000)
                    if "BUNDLES " in text:
                        bundles = json.loads(text.split("BUNDLES ", 1)[1].split("}", 1)[0] + "}")
                    for k, (w, rep) in enumerate(plan):
                        cell = 2 + 2 * k
                        B.run_cell(page, cell - 1, timeout_s=timeout_s)
                        try:
                            res = _measure(
                                page,
                                cell,
                                w,
                                n,
                                bundles.get("ours" if w == "ours-gpu" else w, 0),
                                timeout_s,
                                drag_steps,
                            )
                            res["status"] = "ok"
                            if w == "ours":
                                # our plot area once settled (in the warm-up's first display it
                                # was 6 px taller at the first check than in every later one),
                                # measured again in every round: the size the others get next
                                (root / "plot.json").write_text(json.dumps(res["plot_css_px_end"]))
                        except Exception as e:  # noqa: BLE001  (report, keep going)
                            res = {
                                "status": "error",
                                "error": f"{type(e).__name__}: {e}"[-800:],
                                "cell_output": B.cell_text(page, cell),
                            }
                        res.update(widget=w, n=n, dpr=dpr, repeat=rep)
                        if rep is not None:
                            runs.append(res)
                        log(
                            f"[display] n={n:,} dpr={dpr} {w:9s} {'warm-up' if rep is None else f'repeat {rep}'}: "
                            + _line(res)
                        )
    rows = _median_rows(runs)
    _ratios(rows)
    load, load_text = _load_summary([r["load_1min"] for r in runs if "load_1min" in r])
    return {
        "sizes": list(sizes),
        "dprs": list(dprs),
        "repeats": repeats,
        "rows": rows,
        "runs": runs,
        "webgl_renderer": renderer,
        "drag_steps": drag_steps,
        "bundle_bytes": bundles,
        "load": load_text,
        "load_avg_1min": load,
        "old_bundle": old_bundle,
    }


def _line(r: dict) -> str:
    if r.get("status") != "ok":
        return f"error: {r.get('error', '')[:300]}"
    p = r.get("pan")
    drag = (
        f"; drag: {p['frames']} frames, median {p.get('median_frame_ms', float('nan'))} ms"
        if p
        else ""
    )
    return (
        f"first frame {fmt_s(r['first_frame_s'])}, {r['data_bytes_per_point']} B/pt data, "
        f"plot {r['plot_css_px']} CSS px{drag}"
    )


def _ratios(rows: list[dict]) -> None:
    ok = {(r["widget"], r["n"], r["dpr"]): r for r in rows if r.get("status") == "ok"}
    for (w, n, dpr), r in ok.items():
        js = ok.get(("jscatter", n, dpr))
        if w in OURS and js:
            r["first_frame_vs_jscatter"] = round(r["first_frame_s"] / js["first_frame_s"], 3)
            a, b = r.get("pan", {}).get("median_frame_ms"), js.get("pan", {}).get("median_frame_ms")
            if a and b:
                r["frame_time_vs_jscatter"] = round(a / b, 3)
        fl = ok.get(("floor", n, dpr))
        a, b = (
            r.get("pan", {}).get("median_frame_ms"),
            (fl or {}).get("pan", {}).get("median_frame_ms"),
        )
        if w != "floor" and a and b:
            r["frame_time_vs_floor"] = round(a / b, 3)


SCRUB_JS = """([cell, value]) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
  const r = c && c.querySelector('[data-pv=scrubber]');
  if (!r) return null;
  const t = performance.now();
  r.value = String(value);
  r.dispatchEvent(new Event('input', { bubbles: true }));
  return t;
}"""


LAYER_JS = """([cell, layer]) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
  const t = c && c.querySelector('[data-pv=layer-tile][data-layer="' + CSS.escape(layer) + '"]');
  if (!t) return null;
  const t0 = performance.now();
  t.click();
  return t0;
}"""


PROBE_JS = """([cell, part, value, since]) => {
  // our frame probe: [time, points, ms, key] per frame; the first frame whose key (model |
  // condition | epoch | layer) has `value` at `part` (2 = epoch, 3 = layer), and the time the
  // browser presented it (the draw-call clock of the init script)
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
  const root = c && c.querySelector('[data-pv=root]');
  if (!root || !root.__pv) return null;
  const at = (k) => { const s = k.split('|'); return part === 3 ? s.slice(3).join('|') : s[part]; };
  const f = root.__pv.frames(since).find((f) => f[3] && at(f[3]) === String(value));
  if (!f) return null;
  const p = window.__pv;
  const d = p.draws.find(([seq, t]) => t >= f[0]);
  if (!d) return null;
  const pres = p.presented.find(([s]) => s === d[0]);
  return pres ? pres[1] : null;
}"""


def _step(
    page: Any, cell: int, index: int, epoch: int, n: int, timeout_s: float, probe: bool = True
) -> float:
    """Move cell's epoch scrubber to ``index``; return ms until the first presented frame that drew
    ``epoch``, read from the widget's frame probe (tagged with the key drawn). ``probe=False`` (a
    bundle without the tag): the first full frame after a buffer upload of float32 xyz."""
    t0 = page.evaluate(SCRUB_JS, [cell, index])
    if t0 is None:
        raise RuntimeError("no epoch scrubber ([data-pv=scrubber]) in the widget")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if probe:
            t = page.evaluate(PROBE_JS, [cell, 2, epoch, t0])
            if t is not None:
                return t - t0
        else:
            up = B.first_upload(page, n * 12, t0)
            if up is not None:
                frames = [f for f in B.full_frames(page, n, up) if f["presented"] is not None]
                if frames:
                    return frames[0]["presented"] - t0
        time.sleep(0.01)
    raise TimeoutError(f"no new frame within {timeout_s} s of moving the scrubber to {index}")


def _switch_layer(page: Any, cell: int, layer: str, timeout_s: float) -> float:
    """Click cell's layer-strip tile of ``layer``; return ms until the first presented frame that
    drew that layer, read from the widget's frame probe (tagged with the key drawn)."""
    t0 = page.evaluate(LAYER_JS, [cell, layer])
    if t0 is None:
        raise RuntimeError(f"no layer tile for {layer!r} ([data-pv=layer-tile]) in the widget")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        t = page.evaluate(PROBE_JS, [cell, 3, layer, t0])
        if t is not None:
            return t - t0
        time.sleep(0.01)
    raise TimeoutError(f"no frame of layer {layer} within {timeout_s} s of clicking its tile")


def _latency_row(
    widget: str, what: str, lat: list[float], loads: list[float], **extra: Any
) -> dict:
    lat_s = sorted(lat)
    return {
        "widget": widget,
        "prefetch": what,
        "status": "ok",
        "steps": len(lat),
        "latencies_ms": [round(x, 1) for x in lat],
        "median_ms": round(statistics.median(lat_s), 1),
        "p95_ms": round(lat_s[min(len(lat_s) - 1, int(0.95 * len(lat_s)))], 1),
        "max_ms": round(lat_s[-1], 1),
        "load_1min": loads,
        **extra,
    }


#: layer-strip clicks from the middle layer, each to a neighbour of the layer shown (prefetched)
LAYER_STEPS = ("features.4", "features.8", "features.12", "features.8", "features.4", "features.8")


def switches(
    n: int,
    steps: int,
    settle_s: float,
    timeout_s: float,
    log=print,
    widget: str = "ours",
    kind: str = "layer",
) -> dict:
    """Layer (``kind="layer"``) or epoch change -> new frame, each to a prefetched neighbour.

    Layer change: a fresh server, kernel and browser; a store of the three layers
    of ``_display_kernel.LAYERS`` (one epoch); the widget opens on the middle one, which prefetches
    both neighbours; then ``steps`` clicks on the strip tile of a neighbouring layer, ``settle_s``
    after each frame (the prefetch of the next neighbours lands). ``widget``: "ours" or "ours-gpu"
    (its points forced onto GPU point sprites).

    ``kind="epoch"``: the same at an epoch change instead, in a store of one layer and
    ``steps + 1`` epochs, the scrubber stepped 0 -> 1 -> 2 ... (each a prefetched neighbour): the
    epoch switch at sizes where the section's own 9-epoch store would be too large."""
    if kind not in ("layer", "epoch"):
        raise ValueError(f"kind must be 'layer' or 'epoch', not {kind!r}")
    epochs, layers = (1, 3) if kind == "layer" else (steps + 1, 1)
    with tempfile.TemporaryDirectory(prefix=f"pvbench_{kind}s_") as tmp:
        root = Path(tmp)
        with B.jupyterlab(root) as url, B.chromium() as page:
            B.write_notebook(
                root / "switches.ipynb",
                [SETUP.format(n=n, epochs=epochs, old="", layers=layers), CELLS[widget]],
            )
            B.open_notebook(page, url, "switches.ipynb")
            B.run_cell(page, 0, timeout_s=timeout_s)
            try:
                t0 = B.run_cell(page, 1, timeout_s=timeout_s, wait=False)
                B.wait_full_frame(page, n, t0, timeout_s)
                B.wait_cell(page, 1, timeout_s)
                path = page.evaluate(POINT_PATH_JS, 1)
                time.sleep(settle_s)
                lat, loads = [], []
                for i in range(steps):
                    loads.append(_load1())
                    if kind == "layer":
                        lat.append(_switch_layer(page, 1, LAYER_STEPS[i], timeout_s))
                    else:
                        lat.append(_step(page, 1, i + 1, i + 1, n, timeout_s))
                    time.sleep(settle_s)
                row = _latency_row(
                    f"{widget} · {kind} switch",
                    f"on (prefetched neighbour), {n:,} points",
                    lat,
                    loads,
                    n=n,
                    kind=kind,
                    point_path=path,
                )
            except Exception as e:  # noqa: BLE001
                row = {
                    "widget": f"{widget} · {kind} switch",
                    "prefetch": f"{n:,} points",
                    "status": "error",
                    "n": n,
                    "kind": kind,
                    "error": f"{type(e).__name__}: {e}"[-800:],
                    "cell_output": B.cell_text(page, 1),
                }
    log(
        f"[scrub] {widget} {kind} switch n={n:,}: "
        + (
            f"median {row['median_ms']} ms, max {row['max_ms']} ms over {row['steps']} steps"
            if row["status"] == "ok"
            else row["error"][:300]
        )
    )
    return row


def scrub(
    n: int = 100_000,
    epochs: int = 9,
    settle_s: float = 2.0,
    timeout_s: float = 300.0,
    old_bundle: str | None = None,
    log=print,
    layer_sizes: tuple[int, ...] | None = None,
) -> dict:
    """Run section 4: epoch change -> new frame, on a cache miss and on a prefetched neighbour; and
    layer change -> new frame (:func:`switches`) at each of ``layer_sizes`` (default: ``n``
    and 10^6 points, or ``n`` alone below 10^5 points, the smoke run); at 10^6 points the epoch
    change to a prefetched neighbour too, in a store of its own.

    The widget prefetches the neighbouring epochs (±1) of what it shows, and has no switch to turn
    that off; so "without prefetch" is measured as what every step costs when the epoch is not in
    the page's cache: a fresh widget jumps 0 -> 2 -> 4 ... (never a prefetched neighbour). "With
    prefetch": a second fresh widget steps 0 -> 1 -> 2 ..., waiting ``settle_s`` after each frame so
    that the prefetch of the next epoch has landed (what scrubbing at human pace gets).
    """
    if layer_sizes is None:
        layer_sizes = (n, 1_000_000) if n >= 100_000 else (n,)
    rows = []
    plan = [("ours", False, range(2, epochs, 2)), ("ours", True, range(1, epochs))]
    # the same prefetched steps with the points forced onto GPU point sprites (same run)
    plan += [("ours-gpu", True, range(1, epochs))]
    if old_bundle:
        plan += [("old", False, range(2, epochs, 2)), ("old", True, range(1, epochs))]
    with tempfile.TemporaryDirectory(prefix="pvbench_scrub_") as tmp:
        root = Path(tmp)
        with B.jupyterlab(root) as url, B.chromium() as page:
            cells = [SETUP.format(n=n, epochs=epochs, old=old_bundle or "", layers=1)]
            for w, _, _ in plan:
                cells += [CLOSE_CELL, CELLS[w]]
            B.write_notebook(root / "scrub.ipynb", cells)
            B.open_notebook(page, url, "scrub.ipynb")
            B.run_cell(page, 0, timeout_s=timeout_s)
            for k, (widget, prefetch, targets) in enumerate(plan):
                cell = 2 + 2 * k
                B.run_cell(page, cell - 1, timeout_s=timeout_s)
                try:
                    t0 = B.run_cell(page, cell, timeout_s=timeout_s, wait=False)
                    B.wait_full_frame(page, n, t0, timeout_s)
                    B.wait_cell(page, cell, timeout_s)
                    path = page.evaluate(POINT_PATH_JS, cell)
                    time.sleep(settle_s)
                    lat, loads = [], []
                    for e in targets:  # the study's epochs are 0..epochs-1: index = epoch
                        loads.append(_load1())
                        lat.append(_step(page, cell, e, e, n, timeout_s, probe=widget != "old"))
                        time.sleep(settle_s)
                    row = _latency_row(
                        widget,
                        "on (prefetched neighbour)" if prefetch else "off (cache miss)",
                        lat,
                        loads,
                        n=n,
                        kind="epoch",
                        point_path=path,
                    )
                except Exception as e:  # noqa: BLE001
                    row = {
                        "widget": widget,
                        "prefetch": "on" if prefetch else "off",
                        "status": "error",
                        "error": f"{type(e).__name__}: {e}"[-800:],
                        "cell_output": B.cell_text(page, cell),
                    }
                rows.append(row)
                log(
                    f"[scrub] n={n:,} {widget} prefetch {row['prefetch']}: "
                    + (
                        f"median {row['median_ms']} ms, max {row['max_ms']} ms over {row['steps']} steps"
                        if row["status"] == "ok"
                        else row["error"][:300]
                    )
                )
    for m in layer_sizes:
        big = m >= 1_000_000
        # the epoch switch at 10^6 in its own store (the 9-epoch store above is 10^5 points)
        for kind in ("layer", "epoch") if big else ("layer",):
            for widget in ("ours", "ours-gpu"):
                rows.append(
                    switches(
                        m,
                        steps=4 if big else len(LAYER_STEPS),
                        settle_s=max(settle_s, 12.0) if big else settle_s,
                        timeout_s=max(timeout_s, 600.0) if big else timeout_s,
                        log=log,
                        widget=widget,
                        kind=kind,
                    )
                )
    load, load_text = _load_summary([x for r in rows for x in r.get("load_1min", [])])
    out = {
        "n": n,
        "epochs": epochs,
        "rows": rows,
        "old_bundle": old_bundle,
        "layer_sizes": list(layer_sizes),
        "load": load_text,
        "load_avg_1min": load,
        "note": (
            f"{n:,} points, {epochs} epochs; latency = scrubber input event → first presented frame that "
            "drew the new epoch, read from the widget's frame probe (each frame tagged with the key it "
            "drew; 'old' = the previous bundle, which has no tag: first presented full frame after an "
            "upload of its float32 xyz). 'off' = epoch not in the page cache (what every step costs "
            "without prefetch); 'on' = the widget's prefetched neighbour. 'ours-gpu' = ours with its "
            "points forced onto GPU point sprites (`renderer='webgl'`); 'ours' = the default ('auto'), "
            "whose point path (cpu / gpu) the widget column names. 'ours · layer switch' = a click on the "
            "layer strip's tile of a neighbouring layer → first presented frame tagged with that layer (a "
            "store of three layers, one epoch, the widget opened on the middle one; a fresh server, kernel "
            "and browser per size); 'ours · epoch switch' at 10^6 points = the scrubber stepped to the "
            "next epoch, each a prefetched neighbour, in a store of one layer and 5 epochs (its own "
            "server, kernel and browser)."
        ),
    }
    ok = {
        (r["widget"], r["prefetch"].split()[0]): r
        for r in rows
        if r["status"] == "ok" and r.get("kind") != "layer"
    }
    if ("ours", "off") in ok and ("ours", "on") in ok and ok[("ours", "on")]["median_ms"] > 0:
        out["prefetch_speedup"] = round(
            ok[("ours", "off")]["median_ms"] / ok[("ours", "on")]["median_ms"], 2
        )
    return out
