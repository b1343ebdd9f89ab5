"""Compare what ``w.snapshot()`` writes under two builds of the widget's bundle, pixel by pixel.

A tool for renderer changes (not collected by pytest): the same study, view and browser window are
snapshotted with each bundle at device pixel ratio 1 and 2, with and without a selection, in one
browser (a fresh JupyterLab server each), and the PNGs are compared (share of pixels that differ by more than ``tol`` in any
channel, and the mean absolute difference)::

    .venv/bin/python tests/e2e/snapshot_pixels.py OLD.js NEW.js --out /tmp/shots

Exit status 1 when a pair differs by more than ``--max-share`` of its pixels. To compare renderers
alone, build OLD.js from the current sources with only ``js/src/gl/`` taken from the older commit
(``git show REV:js/src/gl/webgl.ts > copy/src/gl/webgl.ts`` ..., then esbuild the copy): view changes
made since then (camera, labels, palette) are then in both pictures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from e2e._harness import (  # noqa: E402
    VIEWPORT,
    kernel_exec,
    launch_chromium,
    open_notebook,
    start_lab_server,
)

FIGURES = HERE.parent / "figures"


def _notebook(bundle: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import sys\n"
        f"sys.path.insert(0, {str(FIGURES)!r})\n"
        "from pathlib import Path\n"
        "from figure_synth import make_store\n"
        "import patternviz_widget as pv\n"
        "from patternviz_widget.figures._data import as_study\n"
        f"pv.PatternViz._esm = Path({str(bundle)!r}).read_text()\n"
        "study = as_study(make_store(n_images=30, grid=6))\n"
        "w = pv.PatternViz(study, layer='features.9')\n"
        "w"
    )]  # fmt: skip
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def capture(bundles: list[Path], out: Path, dprs: tuple[int, ...] = (1, 2)) -> dict[tuple, Path]:
    """Snapshot PNGs {(bundle index, dpr, "plain" | "selected"): path}."""
    from playwright.sync_api import sync_playwright

    shots: dict[tuple, Path] = {}
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            for dpr in dprs:
                for b, bundle in enumerate(bundles):
                    # a fresh server each (one server's later notebooks have drawn on grey)
                    server = start_lab_server(Path(tempfile.mkdtemp(prefix="pvsnap_")))
                    try:
                        for attempt in range(3):
                            if _one(server, browser, bundle, out, b, dpr, attempt, shots):
                                break
                    finally:
                        server.stop()
        finally:
            browser.close()
    return shots


def _one(
    server, browser, bundle: Path, out: Path, b: int, dpr: int, attempt: int, shots: dict
) -> bool:
    """One page's snapshots; False when the page drew on a non-white background (a page whose
    theme was read before JupyterLab's light theme applied has come up grey: try another page)."""
    from PIL import Image

    ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=dpr)
    ctx.pv_base_url, ctx.pv_server, ctx.pv_kernels = server.url, server, {}
    page = ctx.new_page()
    name = server.add_notebook(_notebook(bundle), name=f"snap_{b}_{dpr}_{attempt}.ipynb")
    open_notebook(page, name)
    page.wait_for_selector("canvas", timeout=60_000)
    for _ in range(120):
        if kernel_exec(page, "print(w.backend)"):
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)  # atlas, layout, strip: the page settles
    for view, code in (("plain", ""), ("selected", "w.select(range(0, 400, 3))")):
        if code:
            kernel_exec(page, code)
            page.wait_for_timeout(1500)
        path = out / f"snapshot_{b}_dpr{dpr}_{view}.png"
        prev = None
        for _ in range(5):  # until two snapshots in a row agree
            kernel_exec(page, f"w.snapshot({str(path)!r}, timeout=30)", timeout=60)
            cur = path.read_bytes()
            if cur == prev:
                break
            prev = cur
            page.wait_for_timeout(1000)
        shots[(b, dpr, view)] = path
    for conn in ctx.pv_kernels.values():
        conn.close()
    ctx.close()
    server.shutdown_sessions()
    corner = np.asarray(Image.open(shots[(b, dpr, "plain")]).convert("RGB"))[2, 2]
    return bool((corner == 255).all())


def compare(a: Path, b: Path, tol: int = 48) -> dict:
    """Share of pixels differing by more than ``tol`` in a channel, and the mean |difference|."""
    from PIL import Image

    x = np.asarray(Image.open(a).convert("RGB")).astype(np.int16)
    y = np.asarray(Image.open(b).convert("RGB")).astype(np.int16)
    if x.shape != y.shape:
        return {"shape": [x.shape, y.shape], "share": 1.0, "mean_abs": float("nan")}
    d = np.abs(x - y)
    return {
        "shape": list(x.shape),
        "share": float((d.max(axis=2) > tol).mean()),
        "mean_abs": float(d.mean()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="pvshots_")))
    ap.add_argument("--tol", type=int, default=48)
    ap.add_argument("--max-share", type=float, default=0.01)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shots = capture([args.old.resolve(), args.new.resolve()], args.out)
    worst = 0.0
    for dpr in (1, 2):
        for view in ("plain", "selected"):
            a, b = shots[(0, dpr, view)], shots[(1, dpr, view)]
            r = compare(a, b, args.tol)
            worst = max(worst, r["share"])
            print(
                f"dpr {dpr} {view}: {r['shape']}, pixels differing by > {args.tol}: "
                f"{100 * r['share']:.3f} %, mean |diff| {r['mean_abs']:.3f} ({a} vs {b})"
            )
    return 0 if worst <= args.max_share else 1


if __name__ == "__main__":
    raise SystemExit(main())
