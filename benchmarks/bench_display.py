"""Sections 3 and 4: transfer + render, and scrubbing, in headless Chromium through real JupyterLab.

Section 3 ("display"): for each size, one notebook holds the same points for both widgets. For each
widget the timed cell builds the widget and displays it (what a user types:
``pv.PatternViz(study)`` / ``jscatter.Scatter(...).show()``); we report the time from the keypress
that runs the cell to the first presented frame that draws every point, then drag across the
plot and report frame times while it redraws (pan for jupyter-scatter; the drag gesture of our
3-D view). Both widgets run in the same browser, the same page and the same kernel, one after the
other, on the same points (our 3-D xyz; jupyter-scatter gets x, y of them), coloured by class.

Section 4 ("scrub"): see :func:`scrub` (epoch change -> new frame, prefetch on and off).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _browser as B
from ._common import fmt_s

SETUP = """
import numpy as np, pandas as pd, time
DATA = {data!r}
xyz = np.load(DATA + "/xyz.npy"); lab = np.load(DATA + "/label.npy")
df = pd.DataFrame({{"x": xyz[:, 0], "y": xyz[:, 1], "c": pd.Categorical(lab)}})
import jscatter
{ours_setup}
print("ready", len(xyz))
"""

JSCATTER_CELL = 'jscatter.Scatter(data=df, x="x", y="y", color_by="c", height=480).show()'


def make_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (xyz float32[n, 3], label uint8[n]): 10 class lobes with noise, like a region embedding."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 10, n).astype(np.uint8)
    dirs = rng.standard_normal((10, 3)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    r = rng.gamma(2.0, 0.5, n).astype(np.float32)[:, None]
    xyz = dirs[lab] * r + 0.25 * rng.standard_normal((n, 3)).astype(np.float32)
    return xyz.astype(np.float32), lab


def _measure(page: Any, cell: int, n: int, timeout_s: float, drag_button: str = "left") -> dict:
    t0 = B.run_cell(page, cell, timeout_s=timeout_s, wait=False)
    frame = B.wait_full_frame(page, n, t0, timeout_s=timeout_s)
    B.wait_cell(page, cell, timeout_s)
    out = {
        "first_frame_s": round((frame["presented"] - t0) / 1000, 3),
        "first_draw_call_s": round((frame["drawn"] - t0) / 1000, 3),
    }
    time.sleep(1.0)
    box = B.largest_canvas_box(page, cell)
    out["pan"] = B.drag_frames(page, box, n, button=drag_button)
    return out


def display(
    sizes: tuple[int, ...] = (100_000, 1_000_000),
    widgets: tuple[str, ...] = ("ours", "jscatter"),
    timeout_s: float = 300.0,
    log=print,
) -> dict:
    """Run section 3 and return its JSON-able result."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="pvbench_display_") as tmp:
        root = Path(tmp)
        for n in sizes:
            data = root / f"n{n}"
            data.mkdir()
            xyz, lab = make_points(n)
            np.save(data / "xyz.npy", xyz)
            np.save(data / "label.npy", lab)
        with B.jupyterlab(root) as url, B.chromium() as page:
            for n in sizes:
                cells, order = [], []
                ours_setup = ""
                if "ours" in widgets:
                    from .ours import widget_setup_code

                    ours_setup, ours_cell = widget_setup_code()
                cells.append(SETUP.format(data=str(root / f"n{n}"), ours_setup=ours_setup))
                for w in widgets:
                    cells.append(JSCATTER_CELL if w == "jscatter" else ours_cell)
                    order.append(w)
                name = f"display_{n}.ipynb"
                B.write_notebook(root / name, cells)
                B.open_notebook(page, url, name)
                B.run_cell(page, 0, timeout_s=timeout_s)
                for i, w in enumerate(order, start=1):
                    try:
                        res = _measure(page, i, n, timeout_s)
                        res["status"] = "ok"
                    except Exception as e:  # noqa: BLE001  (report, keep going)
                        res = {"status": "error", "error": f"{type(e).__name__}: {e}"[-800:]}
                    res.update(widget=w, n=n)
                    rows.append(res)
                    log(f"[display] n={n:,} {w:9s} " + _line(res))
                page.goto("about:blank")
    _ratios(rows)
    return {"sizes": list(sizes), "rows": rows}


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
