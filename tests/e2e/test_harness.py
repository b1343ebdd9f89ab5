"""The harness itself works: a notebook runs in real JupyterLab, its output is visible in Chromium,
a second kernel client reads (and changes) the notebook's Python state, and WebGL2 is available."""

from __future__ import annotations

import nbformat
import numpy as np
from e2e._harness import (
    centroid,
    colored_mask,
    count_foreground,
    element_image,
    kernel_exec,
    open_notebook,
    open_notebook7,
    output_texts,
    webgl2_renderer,
)


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def test_notebook_output_is_visible_and_kernel_state_is_readable(lab_server, page):
    name = lab_server.add_notebook(
        _notebook(
            "import os\nanswer = 6 * 7\nprint('hello from the kernel', answer)",
            "print('fast mode', os.environ.get('PATTERNVIZ_FAST'))",
        ),
        name="harness_hello.ipynb",
    )
    open_notebook(page, name)

    # What a person sees: the printed text is in the page, in cell order.
    texts = output_texts(page)
    assert texts[:2] == ["hello from the kernel 42", "fast mode 1"]
    assert page.get_by_text("hello from the kernel 42").is_visible()

    # A second client reads and changes the same namespace while the page stays open.
    assert kernel_exec(page, "print(answer * 2)") == "84"
    kernel_exec(page, "answer = -1")
    assert kernel_exec(page, "answer") == "-1"


def test_webgl2_and_canvas_pixels(lab_server, page):
    page.goto(lab_server.url + "/api/status")  # any same-origin page will do
    renderer = webgl2_renderer(page)
    assert renderer is not None, "WebGL2 is unavailable in headless Chromium with CHROMIUM_ARGS"

    # A WebGL2 canvas without preserveDrawingBuffer: an orange square in the right half of a
    # white canvas. Element screenshots must see it where it was drawn.
    page.set_content("<canvas id='c' width='200' height='100' style='display:block'></canvas>")
    page.evaluate(
        """() => {
          const gl = document.getElementById('c').getContext('webgl2');
          gl.clearColor(1, 1, 1, 1); gl.clear(gl.COLOR_BUFFER_BIT);
          gl.enable(gl.SCISSOR_TEST); gl.scissor(140, 30, 40, 40);
          gl.clearColor(1, 0.5, 0, 1); gl.clear(gl.COLOR_BUFFER_BIT);
        }"""
    )
    img = element_image(page.locator("#c"))
    assert img.shape == (100, 200, 3)
    assert count_foreground(img) == 40 * 40
    cx, cy = centroid(colored_mask(img))
    assert np.isclose(cx, 159.5, atol=1) and np.isclose(cy, 49.5, atol=1)


def test_notebook7_helper_runs_a_notebook(lab_server, page):
    name = lab_server.add_notebook(
        _notebook("print('notebook seven', 3 * 3)"), name="harness_nb7.ipynb"
    )
    open_notebook7(page, name)
    assert "/notebooks/harness_nb7.ipynb" in page.url
    assert output_texts(page) == ["notebook seven 9"]
