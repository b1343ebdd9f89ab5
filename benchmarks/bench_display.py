"""Sections 3 and 4: transfer + render, and scrubbing, in headless Chromium through real JupyterLab.

Section 3 ("display"): for each size, one notebook holds the same points for both widgets. For each
widget the timed cell builds the widget and displays it (what a user types:
``pv.PatternViz(study)`` / ``jscatter.Scatter(...).show()``); we report the time from the keypress
that runs the cell to the first presented frame that draws every point, then drag across the
plot and report frame times while it redraws (pan for jupyter-scatter; the drag gesture of our
3-D view). For each size both widgets run in the same browser, page and kernel, one after the
other, on the same points (our 3-D xyz; jupyter-scatter gets x, y of them), coloured by class;
each size gets a fresh JupyterLab server and browser.

Section 4 ("scrub"): see :func:`scrub` (epoch change -> new frame, prefetch on and off).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _browser as B
from ._common import fmt_s

SETUP = """
import numpy as np, pandas as pd, torch  # a study session has torch loaded already
import patternviz_widget as pv, jscatter
import patternviz_widget.engine.study_embed  # noqa (what knowledge_points imports on first use)
from benchmarks.ours import make_store, LAYER
from patternviz_widget.results import Key
from patternviz_widget.results.records import RegionEmbedding, RegionRecord
store = make_store({n}, epochs={epochs})
_k = Key(epoch=0, layer=LAYER)
xyz = store.get(_k, RegionEmbedding).h
lab = store.probe.labels[store.get(_k, RegionRecord).image]
df = pd.DataFrame({{"x": xyz[:, 0], "y": xyz[:, 1], "c": pd.Categorical(lab)}})
print("ready", len(xyz))
"""

JSCATTER_CELL = 'jscatter.Scatter(data=df, x="x", y="y", color_by="c", height=480).show()'


def _measure(page: Any, cell: int, n: int, timeout_s: float, drag_steps: int = 40) -> dict:
    rx0 = page.ws_bytes["received"]
    t0 = B.run_cell(page, cell, timeout_s=timeout_s, wait=False)
    frame = B.wait_full_frame(page, n, t0, timeout_s=timeout_s)
    rx1 = page.ws_bytes["received"]
    B.wait_cell(page, cell, timeout_s)
    out = {
        "first_frame_s": round((frame["presented"] - t0) / 1000, 3),
        "first_draw_call_s": round((frame["drawn"] - t0) / 1000, 3),
        "received_mb_to_first_frame": round((rx1 - rx0) / 2**20, 2),
    }
    time.sleep(1.0)
    pan = page.locator(".jp-Notebook .jp-Cell").nth(cell).locator("[data-pv=tool-pan]")
    if pan.count():  # ours: switch the drag from orbit to pan, like jupyter-scatter's drag
        pan.first.click()
        time.sleep(0.3)
    box = B.largest_canvas_box(page, cell)
    out["pan"] = B.drag_frames(page, box, n, steps=drag_steps)
    return out


def display(
    sizes: tuple[int, ...] = (100_000, 1_000_000),
    widgets: tuple[str, ...] = ("ours", "jscatter"),
    timeout_s: float = 300.0,
    drag_steps: int = 40,
    log=print,
) -> dict:
    """Run section 3 and return its JSON-able result."""
    rows: list[dict] = []
    from .ours import OURS_CELL

    renderer = None
    for n in sizes:
        # a fresh server, kernel and browser per size: in one page, the second notebook's first
        # cell never ran (the 1e6 run of 2026-12-01), and a fresh kernel also keeps one size's
        # memory out of the next one's timings
        with tempfile.TemporaryDirectory(prefix="pvbench_display_") as tmp:
            root = Path(tmp)
            with B.jupyterlab(root) as url, B.chromium() as page:
                renderer = B.webgl_renderer(page)
                cells, order = [SETUP.format(n=n, epochs=1)], []
                for w in widgets:
                    cells.append(JSCATTER_CELL if w == "jscatter" else OURS_CELL)
                    order.append(w)
                name = f"display_{n}.ipynb"
                B.write_notebook(root / name, cells)
                B.open_notebook(page, url, name)
                B.run_cell(page, 0, timeout_s=timeout_s)
                for i, w in enumerate(order, start=1):
                    try:
                        res = _measure(page, i, n, timeout_s, drag_steps)
                        res["status"] = "ok"
                    except Exception as e:  # noqa: BLE001  (report, keep going)
                        res = {"status": "error", "error": f"{type(e).__name__}: {e}"[-800:],
                               "cell_output": B.cell_text(page, i)}
                    res.update(widget=w, n=n)
                    rows.append(res)
                    log(f"[display] n={n:,} {w:9s} " + _line(res))
    _ratios(rows)
    return {"sizes": list(sizes), "rows": rows, "webgl_renderer": renderer, "drag_steps": drag_steps}


def _line(r: dict) -> str:
    if r.get("status") != "ok":
        return f"error: {r.get('error', '')[:300]}"
    p = r["pan"]
    return (
        f"first frame {fmt_s(r['first_frame_s'])}; drag: {p['frames']} frames, "
        f"median {p.get('median_frame_ms', float('nan'))} ms, fps {p.get('fps')}"
    )


def _ratios(rows: list[dict]) -> None:
    ok = {(r["widget"], r["n"]): r for r in rows if r.get("status") == "ok"}
    for (w, n), r in ok.items():
        js = ok.get(("jscatter", n))
        if w == "ours" and js:
            r["first_frame_vs_jscatter"] = round(r["first_frame_s"] / js["first_frame_s"], 3)
            a, b = r["pan"].get("mean_frame_ms"), js["pan"].get("mean_frame_ms")
            if a and b:
                r["frame_time_vs_jscatter"] = round(a / b, 3)


SCRUB_JS = """([cell, value]) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[cell];
  const r = c && c.querySelector('[data-pv=scrubber]');
  if (!r) return null;
  const t = performance.now();
  r.value = String(value);
  r.dispatchEvent(new Event('input', { bubbles: true }));
  return t;
}"""


def _step(page: Any, cell: int, index: int, n: int, timeout_s: float) -> float:
    """Move cell's epoch scrubber to ``index``; return ms until the first presented full frame drawn
    from newly uploaded point data (a redraw of the old epoch does not count)."""
    t0 = page.evaluate(SCRUB_JS, [cell, index])
    if t0 is None:
        raise RuntimeError("no epoch scrubber ([data-pv=scrubber]) in the widget")
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        up = B.first_upload(page, n * 12, t0)  # xyz float32 of n points
        if up is not None:
            frames = [f for f in B.full_frames(page, n, up) if f["presented"] is not None]
            if frames:
                return frames[0]["presented"] - t0
        time.sleep(0.01)
    raise TimeoutError(f"no new frame within {timeout_s} s of moving the scrubber to {index}")


def scrub(n: int = 100_000, epochs: int = 9, settle_s: float = 2.0, timeout_s: float = 300.0,
          log=print) -> dict:
    """Run section 4: epoch change -> new frame, on a cache miss and on a prefetched neighbour.

    The widget prefetches the neighbouring epochs (±1) of what it shows, and has no switch to turn
    that off; so "without prefetch" is measured as what every step costs when the epoch is not in
    the page's cache: a fresh widget jumps 0 -> 2 -> 4 ... (never a prefetched neighbour). "With
    prefetch": a second fresh widget steps 0 -> 1 -> 2 ..., waiting ``settle_s`` after each frame so
    that the prefetch of the next epoch has landed (what scrubbing at human pace gets).
    """
    from .ours import OURS_CELL

    rows = []
    with tempfile.TemporaryDirectory(prefix="pvbench_scrub_") as tmp:
        root = Path(tmp)
        with B.jupyterlab(root) as url, B.chromium() as page:
            B.write_notebook(root / "scrub.ipynb", [SETUP.format(n=n, epochs=epochs), OURS_CELL, OURS_CELL])
            B.open_notebook(page, url, "scrub.ipynb")
            B.run_cell(page, 0, timeout_s=timeout_s)
            for cell, prefetch, targets in ((1, False, range(2, epochs, 2)), (2, True, range(1, epochs))):
                try:
                    t0 = B.run_cell(page, cell, timeout_s=timeout_s, wait=False)
                    B.wait_full_frame(page, n, t0, timeout_s)
                    B.wait_cell(page, cell, timeout_s)
                    time.sleep(settle_s)
                    lat = []
                    for e in targets:
                        lat.append(_step(page, cell, e, n, timeout_s))
                        time.sleep(settle_s)
                    lat_s = sorted(lat)
                    row = {"prefetch": "on (prefetched neighbour)" if prefetch else "off (cache miss)",
                           "status": "ok", "steps": len(lat), "latencies_ms": [round(x, 1) for x in lat],
                           "median_ms": round(statistics.median(lat_s), 1),
                           "p95_ms": round(lat_s[min(len(lat_s) - 1, int(0.95 * len(lat_s)))], 1),
                           "max_ms": round(lat_s[-1], 1)}
                except Exception as e:  # noqa: BLE001
                    row = {"prefetch": "on" if prefetch else "off", "status": "error",
                           "error": f"{type(e).__name__}: {e}"[-800:], "cell_output": B.cell_text(page, cell)}
                rows.append(row)
                log(f"[scrub] n={n:,} prefetch {row['prefetch']}: "
                    + (f"median {row['median_ms']} ms, max {row['max_ms']} ms over {row['steps']} steps"
                       if row["status"] == "ok" else row["error"][:300]))
    out = {"n": n, "epochs": epochs, "rows": rows, "note": (
        f"{n:,} points, {epochs} epochs; latency = scrubber input event → first presented frame drawn "
        "from newly uploaded points. 'off' = epoch not in the page cache (what every step costs "
        "without prefetch); 'on' = the widget's prefetched neighbour.")}
    ok = [r for r in rows if r["status"] == "ok"]
    if len(ok) == 2 and ok[1]["median_ms"] > 0:
        out["prefetch_speedup"] = round(ok[0]["median_ms"] / ok[1]["median_ms"], 2)
    return out
