"""Ellipsoids are drawn only when shown: the widget's first view does not carry them (they are off by
default), and turning them on after the first frame draws them from the full slice that follows it
— the same picture as a widget opened with them on."""

from __future__ import annotations

import numpy as np
from e2e._harness import (
    ARTIFACTS,
    element_image,
    kernel_exec,
    open_notebook,
    save_png,
    synthetic_widget_notebook,
)
from e2e.test_point_path import _differ, _drawn


def _shot(page) -> np.ndarray:
    page.evaluate("() => document.querySelector('.pv-root').__pv.renderNow()")
    page.wait_for_timeout(400)
    page.evaluate("() => document.querySelector('.pv-root').classList.add('pv-bare')")
    try:
        return element_image(page.locator(".pv-main canvas.pv-canvas").first).astype(np.int16)
    finally:
        page.evaluate("() => document.querySelector('.pv-root').classList.remove('pv-bare')")


def test_ellipsoids_turned_on_after_the_first_frame_are_drawn(lab_server, page):
    name = lab_server.add_notebook(synthetic_widget_notebook(30), name="ellipsoids.ipynb")
    open_notebook(page, name)
    page.wait_for_selector("canvas", timeout=60_000)
    _drawn(page, "cpu")
    # the first view left them out (off), the kernel never computed them for it
    assert kernel_exec(page, "print(w.ellipsoids)") == "False"
    page.wait_for_timeout(1500)  # the full slice that follows the first frame
    off = _shot(page)
    kernel_exec(page, "w.ellipsoids = True")
    page.wait_for_timeout(1500)
    on = _shot(page)
    kernel_exec(page, "w.ellipsoids = False")
    page.wait_for_timeout(1500)
    off_again = _shot(page)
    for tag, img in (("off", off), ("on", on), ("off-again", off_again)):
        save_png(img.astype(np.uint8), ARTIFACTS / "ellipsoids" / f"{tag}.png")
    changed = _differ(off, on)
    print(f"ellipsoids on: {changed:.2%} of the inked pixels changed")
    assert changed > 0.02  # the three class ellipsoids' outlines over the points
    assert _differ(off, off_again) < 0.005  # and off again is the first picture
