"""The first frame is drawn from the first view alone (the points that travel with the widget's
initial state: 7 bytes a point up to 64 classes, 8 above, ``patternviz_widget/widget/rpc.py``
``lean_points``), and it is the picture the full slice that follows it draws: same pixels, same
class and glyph per point, on the CPU and GPU point paths and in Canvas2D.

The kernel sleeps in the cell that shows the widget, so it answers no request until the sleep ends:
what the page shows meanwhile comes from the first view and nothing else."""

from __future__ import annotations

import time

import nbformat
import numpy as np
import pytest
from e2e._harness import (
    ARTIFACTS,
    REPO,
    element_image,
    kernel_exec,
    open_notebook,
    save_png,
    wait_kernel_idle,
)
from e2e.test_point_path import _differ

SLEEP = 20  # seconds the kernel stays busy after display(w)


def _notebook(classes: int, renderer: str) -> nbformat.NotebookNode:
    figures = REPO / "tests" / "figures"
    names = [f"c{i}" for i in range(classes)]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import sys, time\n"
            f"sys.path.insert(0, {str(figures)!r})\n"
            "from figure_synth import make_store\n"
            "import patternviz_widget as pv\n"
            "from patternviz_widget.figures._data import as_study\n"
            f"study = as_study(make_store(n_images={2 * classes + 24}, grid=6, class_names={names!r}))\n"
            f"w = pv.PatternViz(study, layer='features.9', renderer={renderer!r})\n"
            "display(w)\n"
            f"time.sleep({SLEEP})"
        )
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


# the cell's prompt: "[*]:" while it runs (the kernel's status also flips with comm traffic)
_RUNNING = (
    "() => { const e = window.jupyterapp.shell.currentWidget.node"
    ".querySelector('.jp-CodeCell .jp-InputPrompt'); return !!e && e.textContent.includes('*'); }"
)


# the widget in the notebook this test opened (JupyterLab keeps earlier tests' tabs, hidden)
_ROOT = "const _root = () => window.jupyterapp.shell.currentWidget.node.querySelector('.pv-root');"


def _js(body: str) -> str:
    return "() => { " + _ROOT + " " + body + " }"


_CANVAS = ".jp-Notebook:visible .pv-main canvas.pv-canvas"


def _shot(page) -> np.ndarray:
    page.evaluate(_js("_root().__pv.renderNow();"))
    page.wait_for_timeout(400)
    page.evaluate(_js("_root().classList.add('pv-bare');"))
    try:
        return element_image(page.locator(_CANVAS).first).astype(np.int16)
    finally:
        page.evaluate(_js("_root().classList.remove('pv-bare');"))


def _points(page) -> dict:
    return page.evaluate(
        _js(
            "const p = _root().__pv.points(0);"
            " return p ? { label: p.label, glyph: p.glyph, n: p.xy.length / 2 } : null;"
        )
    )


@pytest.mark.parametrize(
    "classes, renderer",
    [(3, "auto"), (3, "webgl"), (3, "canvas2d"), (70, "auto")],
    ids=["7B-cpu", "7B-gpu", "7B-canvas2d", "8B-cpu"],
)
def test_first_frame_from_the_first_view_is_the_full_slices_picture(
    lab_server, page, classes, renderer
):
    name = lab_server.add_notebook(
        _notebook(classes, renderer), name=f"first_view_{classes}_{renderer}.ipynb"
    )
    open_notebook(page, name, run=False)
    wait_kernel_idle(page, name, 120_000)  # this notebook is current, its kernel up
    # not awaited: the command resolves only once the cell (and its sleep) is done
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    t0 = time.monotonic()
    page.wait_for_function(
        _js(
            "const r = _root(); return !!(r && r.__pv && r.__pv.points(0) && r.__pv.points(0).xy.length);"
        ),
        timeout=(SLEEP - 4) * 1000,
    )
    page.wait_for_timeout(600)
    first = _shot(page)
    seen = _points(page)
    assert page.evaluate(_RUNNING), "the cell finished before the first view was read"
    assert time.monotonic() - t0 < SLEEP - 1

    page.wait_for_function(f"() => !({_RUNNING})()", timeout=(SLEEP + 60) * 1000)
    page.wait_for_timeout(2500)  # the full slice the page asks for once the kernel is free
    full = _shot(page)
    later = _points(page)
    truth = kernel_exec(
        page,
        "from patternviz_widget.widget import rpc\n"
        "m, a = rpc.handle_slice(w, {'key': str(w.key), 'threshold': w.threshold})\n"
        "print(int(a['label'].max()), ','.join(map(str, a['glyph'].tolist())))",
    )
    top, glyphs = truth.split()
    tag = f"{classes}-{renderer}"
    for t, img in (("first", first), ("full", full)):
        save_png(img.astype(np.uint8), ARTIFACTS / "first_view" / f"{tag}-{t}.png")
    assert int(top) == classes - 1 and seen["n"] == later["n"] > 0
    assert seen["label"] == later["label"] and max(seen["label"]) == classes - 1
    assert seen["glyph"] == later["glyph"] == [int(g) for g in glyphs.split(",")]
    share = _differ(first, full)
    print(f"{tag}: {share:.3%} of the inked pixels differ between the first frame and the full one")
    assert share < 0.002
