"""The WebGL renderer's two point paths show the same picture.

Where the browser's WebGL is software (SwiftShader here, llvmpipe), the widget splats its points on
the CPU and shows them through WebGL as one textured quad (``js/src/gl/splat.ts``); ``renderer =
"webgl"`` forces GPU point sprites, ``"webgl-cpu"`` the CPU path. A person must not be able to tell
them apart: the same view, at the same camera, drawn both ways, differs in a small share of its
pixels (point edges a pixel off where the two projections round differently), in glyph shapes,
selection rims and the μ arrows drawn over the points; and ``w.snapshot`` shows the same either way.
"""

from __future__ import annotations

import time

import numpy as np
from e2e._harness import (
    ARTIFACTS,
    element_image,
    kernel_exec,
    open_notebook,
    save_png,
    synthetic_widget_notebook,
)


def _points_path(page) -> str:
    return page.evaluate(
        "() => { const e = document.querySelector('[data-points]'); return e ? e.dataset.points : ''; }"
    )


def _drawn(page, path: str, timeout: float = 60) -> None:
    """Wait until the page draws with point path ``path`` and has presented a frame of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _points_path(page) == path:
            ok = page.evaluate(
                "() => { const r = document.querySelector('.pv-root');"
                " return !!(r && r.__pv && r.__pv.points(0) && r.__pv.points(0).xy.length); }"
            )
            if ok:
                page.evaluate("() => document.querySelector('.pv-root').__pv.renderNow()")
                page.wait_for_timeout(400)
                return
        time.sleep(0.2)
    raise AssertionError(
        f"the page never drew with point path {path!r} (now {_points_path(page)!r})"
    )


def _shot(page) -> np.ndarray:
    page.evaluate("() => document.querySelector('.pv-root').classList.add('pv-bare')")
    try:
        return element_image(page.locator(".pv-main canvas.pv-canvas").first).astype(np.int16)
    finally:
        page.evaluate("() => document.querySelector('.pv-root').classList.remove('pv-bare')")


def _differ(a: np.ndarray, b: np.ndarray, tol: int = 40) -> float:
    """Share of the pixels where either image has ink that differ by more than ``tol``."""
    bg = np.array([int(v) for v in np.median(a.reshape(-1, 3), axis=0)])
    ink = (np.abs(a - bg).max(axis=2) > 24) | (np.abs(b - bg).max(axis=2) > 24)
    diff = np.abs(a - b).max(axis=2) > tol
    return float((diff & ink).sum() / max(ink.sum(), 1))


def _compare(page, label: str) -> float:
    kernel_exec(page, "w.renderer = 'webgl'")
    _drawn(page, "gpu")
    gpu = _shot(page)
    kernel_exec(page, "w.renderer = 'webgl-cpu'")
    _drawn(page, "cpu")
    cpu = _shot(page)
    assert gpu.shape == cpu.shape
    for tag, img in (("gpu", gpu), ("cpu", cpu)):
        save_png(img.astype(np.uint8), ARTIFACTS / "point_path" / f"{label}-{tag}.png")
    share = _differ(gpu, cpu)
    print(f"{label}: {share:.2%} of the inked pixels differ")
    return share


def test_cpu_points_look_like_gpu_points(lab_server, page, tmp_path):
    name = lab_server.add_notebook(synthetic_widget_notebook(30), name="point_path.ipynb")
    open_notebook(page, name)
    page.wait_for_selector("canvas", timeout=60_000)
    # headless Chromium's WebGL is SwiftShader: "auto" picks the CPU path by itself
    _drawn(page, "cpu")
    assert kernel_exec(page, "print(w.backend)") == "webgl"

    # glyphs (about 1,000 points: 8 px), the μ arrows and axes over them
    assert _compare(page, "glyphs") < 0.03
    # a selection: the rest dimmed and shrunk, the selected rimmed in the accent colour
    kernel_exec(page, "w.select(list(range(0, 400, 3)))")
    page.wait_for_timeout(500)
    assert _compare(page, "selection") < 0.03
    kernel_exec(page, "w.select([])")

    # snapshots draw the points as GPU sprites on either path: the same pixels
    shots = {}
    for r in ("webgl", "webgl-cpu"):
        kernel_exec(page, f"w.renderer = {r!r}")
        _drawn(page, "gpu" if r == "webgl" else "cpu")
        path = tmp_path / f"{r}.png"
        kernel_exec(page, f"print(w.snapshot({str(path)!r}, timeout=30))", timeout=60)
        from PIL import Image

        shots[r] = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    assert shots["webgl"].shape == shots["webgl-cpu"].shape
    assert np.abs(shots["webgl"] - shots["webgl-cpu"]).max() <= 2

    # a bad choice names the valid ones
    err = kernel_exec(page, "try:\n    w.renderer = 'gpu'\nexcept Exception as e:\n    print(e)")
    assert "webgl-cpu" in err


def test_cpu_points_look_like_gpu_points_when_small(lab_server, page):
    # 36,000 points: under 5 device px, so both paths draw flat squares (no glyph cut)
    name = lab_server.add_notebook(synthetic_widget_notebook(1000), name="point_path_flat.ipynb")
    open_notebook(page, name, timeout=180)
    page.wait_for_selector("canvas", timeout=60_000)
    _drawn(page, "cpu", timeout=120)
    n = page.evaluate("() => document.querySelector('.pv-root').__pv.points(0).xy.length / 2")
    assert n > 30_000
    assert _compare(page, "flat") < 0.05
