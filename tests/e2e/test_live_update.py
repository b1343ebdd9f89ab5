"""Live updates: a widget displayed before training shows each new epoch on its timeline while the
training loop is still running in the same kernel, without being displayed again."""

from __future__ import annotations

import threading
import time

import nbformat
from e2e._harness import kernel_exec, open_notebook

SETUP = """\
import os, time
import torch
import patternviz_widget as pv

FAST = os.environ.get("PATTERNVIZ_FAST") == "1"
train = pv.datasets.shapes(n=96, size=32, seed=0)
probe = pv.datasets.shapes(n=24, size=32, seed=1)
torch.manual_seed(0)
net = pv.models.SmallVGG(in_channels=3, num_classes=6, widths=(8, 16), hidden=32)
study = pv.Study(net, probe, layers=net.default_layers, regions_per_image=8)
tracker = study.tracker()
tracker.snapshot(0)
"""

SHOW = """\
w = pv.PatternViz(study, layer=net.default_layers[-1])
w
"""

# Runs in the notebook's kernel through a second client while the page watches: two epochs, each
# followed by a pause, so the kernel is still busy when the new epoch must show up.
TRAIN = """\
for _ in range(2):
    pv.models.train(net, train, epochs=1, progress=False)
    tracker.step()
    time.sleep(4)
print("trained", tracker.epochs)
"""


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(SHOW)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _timeline_state(page) -> dict:
    return page.evaluate(
        """() => {
          const tl = document.querySelectorAll('[data-pv="timeline"]');
          const s = document.querySelector('[data-pv="scrubber"]');
          const l = document.querySelector('[data-pv="epoch-label"]');
          return {count: tl.length, max: s ? Number(s.max) : -1,
                  label: l ? l.textContent : null, marked: tl.length ? !!tl[0].__pvLive : false};
        }"""
    )


def test_new_epochs_reach_the_timeline_while_training_runs(lab_server, page):
    name = lab_server.add_notebook(_notebook(), name="live_update.ipynb")
    open_notebook(page, name)
    page.wait_for_selector('[data-pv="timeline"]', timeout=60_000)
    page.wait_for_function(
        "() => (document.querySelector('[data-pv=\"epoch-label\"]') || {}).textContent"
        " === 'epoch 0'",
        timeout=60_000,
    )
    first = _timeline_state(page)
    assert first["count"] == 1 and first["max"] == 0  # one epoch: a single-position scrubber
    page.evaluate("() => { document.querySelector('[data-pv=\"timeline\"]').__pvLive = true; }")

    kernel_exec(page, "print(tracker.epochs)")  # connect the second client here, in this thread
    conn = page.context.pv_kernels[name]
    result: dict[str, object] = {}

    def run_training() -> None:
        try:
            result["out"] = conn.exec(TRAIN, timeout=300)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            result["error"] = e

    worker = threading.Thread(target=run_training, daemon=True)
    worker.start()
    seen_while_busy = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = _timeline_state(page)
        if state["max"] >= 1 and worker.is_alive():
            seen_while_busy.append(state["max"])
        if state["max"] >= 2 or not worker.is_alive():
            break
        page.wait_for_timeout(200)
    worker.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert result.get("out") == "trained [0, 1, 2]"

    # the new epochs reached the page while the training loop was still running ...
    assert seen_while_busy, "no new epoch appeared on the timeline before training finished"
    page.wait_for_function(
        "() => Number((document.querySelector('[data-pv=\"scrubber\"]') || {}).max) === 2",
        timeout=30_000,
    )
    final = _timeline_state(page)
    # ... in the same, never re-displayed widget: one timeline, the element we marked
    assert final["count"] == 1 and final["marked"]
    assert final["label"].endswith("(1/3)")  # still on epoch 0, now one of three
    # and scrubbing to the newest epoch shows it
    kernel_exec(page, "w.epoch = 2")
    page.wait_for_function(
        "() => (document.querySelector('[data-pv=\"epoch-label\"]') || {}).textContent"
        ".startsWith('epoch 2')",
        timeout=30_000,
    )
