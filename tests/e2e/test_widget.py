"""The widget in real JupyterLab + headless Chromium: what a person sees (pixels, DOM) and what
Python reads back (traits), for every interaction the widget offers.

One study is built once per session with the real pipeline (train a small CNN on digits, capture two
epochs, attack, embed) and saved; notebooks load it. The quickstart notebook itself (which runs the
pipeline in the kernel) is the first test.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from e2e._harness import (
    centroid,
    colored_mask,
    count_foreground,
    element_image,
    kernel_exec,
    open_notebook,
    open_notebook7,
    save_png,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "widget"


# ---- the study the notebooks load ----------------------------------------------------------------


@pytest.fixture(scope="session")
def study_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study made by the real pipeline: digits, SmallVGG, epochs 0 (untrained) and 1 (after three
    passes over the training set: after one, P(Y|x) at T = 4 is still nearly uniform and the deep
    layer has no knowledge points yet), PGD, embed."""
    given = os.environ.get("PV_E2E_STUDY")  # reuse a study file to iterate faster locally
    if given:
        return given
    import torch

    import patternviz_widget as pv

    torch.manual_seed(0)  # the same trained net, and so the same knowledge points, every run
    train, test = pv.datasets.digits("train"), pv.datasets.digits("test")
    net = pv.models.SmallVGG(in_channels=1, num_classes=10)
    study = pv.Study(net, test, layers=net.default_layers, max_images=120, regions_per_image=16)
    study.capture(epoch=0, progress=False)
    pv.models.train(net, train, epochs=3, progress=False)
    study.capture(epoch=1, progress=False)
    study.attack(eps=0.1, steps=5, epoch=1, progress=False)
    study.embed(progress=False)
    return str(study.save(tmp_path_factory.mktemp("study") / "digits.pvz"))


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _open_study(
    lab_server,
    page,
    study_file: str,
    last: str = "w = pv.PatternViz(study)\nw",
    name: str = "widget.ipynb",
    nb7: bool = False,
):
    cells = (f"import patternviz_widget as pv\nstudy = pv.Study.load({study_file!r})", last)
    nb = lab_server.add_notebook(_notebook(*cells), name=name)
    (open_notebook7 if nb7 else open_notebook)(page, nb)
    return _ready(page)


def _ready(page, timeout: float = 60_000):
    """Wait until the widget drew its first points; return the root locator."""
    page.wait_for_function(
        """() => { const r = document.querySelector('.pv-root'); if (!r || !r.__pv) return false;
                   const p = r.__pv.points(0); return p && p.xy.length > 0; }""",
        timeout=timeout,
    )
    page.wait_for_timeout(300)
    return page.locator(".pv-root").first


def _points(page, pane: int = 0) -> dict:
    return page.evaluate(f"() => document.querySelector('.pv-root').__pv.points({pane})")


def _py(page, expr: str) -> str:
    return kernel_exec(page, f"print({expr})")


def _wait_py(page, expr: str, expected: str, timeout: float = 15) -> None:
    """Poll Python until ``expr`` prints ``expected`` (traits reach the kernel asynchronously)."""
    deadline, got = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        got = _py(page, expr)
        if got == expected:
            return
        time.sleep(0.3)
    raise AssertionError(f"{expr} = {got!r}, expected {expected!r}")


def _canvas(page):
    return page.locator(".pv-main canvas.pv-canvas").first


def _shot(page, name: str) -> np.ndarray:
    """The main canvas's pixels (HTML overlays — legend, labels, tooltip — hidden for the shot)."""
    page.evaluate("() => document.querySelector('.pv-root').classList.add('pv-bare')")
    try:
        img = element_image(_canvas(page))
    finally:
        page.evaluate("() => document.querySelector('.pv-root').classList.remove('pv-bare')")
    save_png(img, ARTIFACTS / f"{name}.png")
    return img


def _docs_shot(locator, name: str) -> None:
    """With PATTERNVIZ_DOCS_SHOTS=1, save ``locator`` as docs/assets/<name>.png (the screenshots
    of the documentation are taken here, by the real widget in a real browser)."""
    if os.environ.get("PATTERNVIZ_DOCS_SHOTS") != "1":
        return
    import PIL.Image

    path = Path(__file__).resolve().parents[2] / "docs" / "assets" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(path), animations="disabled")
    PIL.Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)  # keep it small


def _bg(img: np.ndarray) -> np.ndarray:
    return img[2, 2]


def _on_canvas(page, pts: dict) -> np.ndarray:
    """Point positions (pixels) inside the canvas image."""
    box = _canvas(page).bounding_box()
    xy = np.asarray(pts["xy"], float).reshape(-1, 2) - [box["x"], box["y"]]
    ok = (
        np.isfinite(xy).all(1)
        & (xy[:, 0] >= 3)
        & (xy[:, 1] >= 3)
        & (xy[:, 0] < box["width"] - 3)
        & (xy[:, 1] < box["height"] - 3)
    )
    return xy[ok]


# ---- 1. the quickstart notebook: real pipeline in the kernel --------------------------------------


def test_quickstart_widget_draws_follows_python_pans_and_snapshots(lab_server, page):
    name = lab_server.add_notebook("01_quickstart.ipynb")
    open_notebook(page, name, timeout=420)
    root = _ready(page)
    assert root.is_visible()
    _wait_py(page, "w.backend", "webgl")

    # Points are drawn where they project: the pixel under (almost) every point is not background.
    img = _shot(page, "quickstart")
    fg = np.abs(img.astype(int) - _bg(img)).max(axis=2) > 24
    xy = _on_canvas(page, _points(page)).round().astype(int)
    assert len(xy) > 50
    near = [fg[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].any() for x, y in xy]
    assert np.mean(near) > 0.9, f"only {np.mean(near):.0%} of the points have ink under them"
    assert count_foreground(img, _bg(img)) > 300
    _assert_legible(page, img)

    # Changing the layer from Python changes the picture and the header.
    layers = json.loads(_py(page, "__import__('json').dumps(net.default_layers)"))
    kernel_exec(page, f"w.layer = {layers[-1]!r}")
    page.wait_for_function(
        f"() => document.querySelector('[data-pv=crumb]').textContent.startsWith({layers[-1]!r})"
    )
    page.wait_for_timeout(600)
    img2 = _shot(page, "quickstart_last_layer")
    _docs_shot(root, "widget")  # the deepest layer: where the knowledge points are

    # That view shows knowledge points: the side panel prints Python's count, several per image,
    # with no note that the fit is degenerate (a trained net, not a uniform posterior).
    page.wait_for_function(
        "() => /KP \\/ image\\s*[0-9]/.test(document.querySelector('[data-pv=stats]').innerText)"
    )
    stats = page.locator("[data-pv=stats]").inner_text()
    shown = re.search(r"KP / image\s*([0-9.]+)", stats)
    want = float(_py(page, f"round(study.knowledge_points({layers[-1]!r}).mean_total, 2)"))
    assert shown and float(shown.group(1)) == pytest.approx(want, abs=0.011), (stats, want)
    assert want > 1.0 and "note" not in stats, stats
    assert (np.abs(img2.astype(int) - img.astype(int)).max(axis=2) > 24).mean() > 0.005

    # A drag with the pan tool moves the picture by the drag, and the camera trait follows.
    page.click("[data-pv=tool-pan]")
    before = centroid(colored_mask(img2))
    box = _canvas(page).bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 120, y0 + 60, steps=8)
    page.mouse.up()
    page.wait_for_timeout(300)
    after = centroid(colored_mask(_shot(page, "quickstart_panned")))
    assert after[0] - before[0] == pytest.approx(120, abs=30) and after[1] - before[
        1
    ] == pytest.approx(60, abs=30)
    _wait_py(page, "bool(w.camera.get('target'))", "True")

    # Reset returns to the data-chosen view (the one exported figures use), centred again.
    page.click("[data-pv=reset]")
    _wait_py(
        page,
        "(lambda c, d: [round(c[k], 3) for k in ('azimuth', 'elevation')] + list(c['target'])"
        " == [round(d[k], 3) for k in ('azimuth', 'elevation')] + [0, 0, 0])"
        "(w.camera, next(iter(w.catalog['cameras'].values())))",
        "True",
    )

    # The live picture as PNG bytes, asked from Python while the page is open.
    out = kernel_exec(
        page, "p = w.snapshot('snap.png'); import PIL.Image as I; print(I.open(p).size)"
    )
    w_px, h_px = (int(v) for v in out.strip("()").split(","))
    assert w_px >= box["width"] - 2 and h_px >= box["height"] - 2

    # Without WebGL the Canvas2D renderer draws the same points.
    kernel_exec(page, "w.renderer = 'canvas2d'")
    _wait_py(page, "w.backend", "canvas2d")
    page.wait_for_timeout(500)
    assert count_foreground(_shot(page, "quickstart_canvas2d")) > 300


def _assert_legible(page, img: np.ndarray) -> None:
    """The first look: the canvas on the notebook's own background, class labels apart, and
    strip thumbnails that show structure."""
    behind = page.evaluate(
        """() => { for (let n = document.querySelector('.pv-root').parentElement; n; n = n.parentElement) {
                     const c = getComputedStyle(n).backgroundColor;
                     const m = c.match(/rgba?\\(([^)]+)\\)/);
                     const p = m ? m[1].split(/[ ,/]+/).map(Number) : [];
                     if (p.length >= 3 && (p.length < 4 || p[3] > 0.5)) return p.slice(0, 3); }
                   return null; }"""
    )
    assert behind is not None
    assert np.abs(_bg(img).astype(int) - behind).max() <= 3, (_bg(img), behind)
    labels = page.evaluate(
        """() => [...document.querySelectorAll('.pv-mu-label')].filter(e => e.offsetParent !== null)
                 .map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"""
    )
    assert len(labels) >= 2, labels
    for i, a in enumerate(labels):
        for b in labels[:i]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    tiles = page.locator("[data-pv=layer-tile] canvas")
    assert tiles.count() >= 3
    for i in range(tiles.count()):
        thumb = element_image(tiles.nth(i))
        inked = count_foreground(thumb, thumb[1, 1])
        assert inked > 0.01 * thumb.shape[0] * thumb.shape[1], f"thumbnail {i}: {inked} px of ink"
        assert thumb.reshape(-1, 3).std(axis=0).max() > 6, f"thumbnail {i} is near-uniform"


# ---- 2. layer strip, timeline, play, compare --------------------------------------------------------


def test_layer_tile_scrub_play_and_compare(lab_server, page, study_file):
    _open_study(lab_server, page, study_file, name="strip_timeline_compare.ipynb")
    layers = json.loads(_py(page, "__import__('json').dumps(w.catalog['layers'])"))
    first = layers[0]
    img_deep = _shot(page, "strip_before")

    # Click the first layer's thumbnail: the layer changes in Python and on the page.
    tile = page.locator(f"[data-pv=layer-tile][data-layer='{first}']")
    assert tile.locator("canvas").is_visible()
    assert count_foreground(element_image(tile.locator("canvas"))) > 30  # the thumbnail has points
    tile.click()
    _wait_py(page, "w.layer", first)
    assert "pv-on" in (tile.get_attribute("class") or "")
    page.wait_for_timeout(500)
    img_first = _shot(page, "strip_first_layer")
    assert (np.abs(img_first.astype(int) - img_deep.astype(int)).max(axis=2) > 24).mean() > 0.005

    # Scrub the timeline to the first epoch (keyboard on the range input fires its input event).
    assert _py(page, "w.epoch") == "1"
    page.locator("[data-pv=scrubber]").focus()
    page.keyboard.press("Home")
    _wait_py(page, "w.epoch", "0")
    page.wait_for_function(
        "() => document.querySelector('[data-pv=epoch-label]').textContent.startsWith('epoch 0')"
    )
    page.wait_for_timeout(400)
    img_e0 = _shot(page, "timeline_epoch0")
    assert (np.abs(img_e0.astype(int) - img_first.astype(int)).max(axis=2) > 24).mean() > 0.002
    assert page.locator("[data-pv=sparkline] path").count() >= 2  # KP/epoch sparkline drawn

    # Play advances the epoch by itself; pause stops it.
    page.click("[data-pv=play]")
    page.wait_for_function(
        "() => document.querySelector('[data-pv=epoch-label]').textContent.startsWith('epoch 1')",
        timeout=5000,
    )
    page.click("[data-pv=play]")
    assert page.get_attribute("[data-pv=play]", "aria-pressed") == "false"
    _wait_py(page, "w.epoch in (0, 1)", "True")

    # Compare clean | adversarial: two panes with one camera, titled, both drawn.
    page.select_option("[data-pv=compare]", "condition")
    _wait_py(page, "(w.compare, w.compare_with)", "('condition', 'adversarial')")
    page.wait_for_function("() => document.querySelectorAll('.pv-pane-title').length === 2")
    titles = page.locator(".pv-pane-title").all_inner_texts()
    assert titles == ["clean", "adversarial"]
    page.wait_for_timeout(500)
    img = _shot(page, "compare")
    half = img.shape[1] // 2
    assert count_foreground(img[:, : half - 4], _bg(img)) > 100
    assert count_foreground(img[:, half + 4 :], _bg(img)) > 100

    # Hover a point on the left: its twin on the right lights up too.
    left, right = _points(page, 0), _points(page, 1)
    lxy = np.asarray(left["xy"]).reshape(-1, 2)
    rxy = np.asarray(right["xy"]).reshape(-1, 2)
    i = _isolated(lxy, rxy)
    box = _canvas(page).bounding_box()
    rx, ry = (rxy[i] - [box["x"], box["y"]]).round().astype(int)
    page.mouse.move(*lxy[i])
    page.wait_for_function("() => !document.querySelector('[data-pv=tooltip]').hidden")
    lit = _shot(page, "compare_twin")
    win = (slice(max(ry - 12, 0), ry + 12), slice(max(rx - 12, 0), rx + 12))
    assert (np.abs(lit[win].astype(int) - img[win].astype(int)).max(axis=2) > 24).sum() > 10


def _isolated(a: np.ndarray, b: np.ndarray) -> int:
    """Index of a point well apart from the others in both panes (so hovering hits it)."""
    best, score = 0, -1.0
    for i in range(len(a)):
        if not (np.isfinite(a[i]).all() and np.isfinite(b[i]).all()):
            continue
        da = np.sort(np.hypot(*(a - a[i]).T))[1] if len(a) > 1 else 1e9
        db = np.sort(np.hypot(*(b - b[i]).T))[1] if len(b) > 1 else 1e9
        if min(da, db) > score:
            best, score = i, min(da, db)
    return best


# ---- 3. tooltip and lasso ---------------------------------------------------------------------------


def test_hover_shows_the_patch_and_lasso_selection_reads_back(lab_server, page, study_file):
    _open_study(lab_server, page, study_file, name="hover_lasso.ipynb")
    pts = _points(page)
    xy = np.asarray(pts["xy"]).reshape(-1, 2)
    glyph = np.asarray(pts["glyph"])
    kp = np.flatnonzero(glyph == 1)
    assert kp.size, "the trained deep layer has reliable knowledge points"
    i = int(kp[_isolated(xy[kp], xy[kp])])

    page.mouse.move(*xy[i])
    tip = page.locator("[data-pv=tooltip]")
    tip.wait_for(state="visible")
    page.locator("[data-pv=tooltip-probs]").wait_for(state="visible")  # class probabilities arrived
    assert "reliable knowledge point" in page.locator("[data-pv=tooltip-status]").inner_text()
    assert "true class:" in tip.inner_text()
    patch = element_image(page.locator("[data-pv=tooltip-patch]"))
    assert patch.reshape(-1, 3).std(axis=0).max() > 5, (
        "the patch shows part of a digit, not a flat box"
    )
    _wait_py(page, "w.hover", str(i))

    # Lasso around the points of one class; Python reads back exactly the points inside.
    page.mouse.move(5, 5)
    labels = np.asarray(pts["label"])
    c = int(np.bincount(labels[glyph == 1]).argmax())
    members = xy[(labels == c) & (glyph == 1)]
    cx, cy = np.median(members, axis=0)
    r = 40
    poly = [
        (cx + r * np.cos(t), cy + r * np.sin(t))
        for t in np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ]
    page.click("[data-pv=tool-lasso]")
    page.mouse.move(*poly[0])
    page.mouse.down()
    for p in poly[1:] + poly[:1]:
        page.mouse.move(*p, steps=2)
    page.mouse.up()
    from matplotlib.path import Path as MplPath

    inside = set(np.flatnonzero(MplPath(poly).contains_points(xy)).tolist())
    assert len(inside) >= 3
    page.wait_for_timeout(800)
    got = set(json.loads(_py(page, "__import__('json').dumps(w.selected_ids.tolist())")))
    assert len(got ^ inside) <= max(2, 0.05 * len(inside)), (len(got), len(inside))
    table = json.loads(
        _py(
            page,
            "__import__('json').dumps({k: v.tolist() for k, v in w.selected_regions().items() if k in ('label', 'image')})",
        )
    )
    # the table's classes are the classes of the points the person circled
    k = max(labels.max(), max(table["label"])) + 1
    want = np.bincount(labels[sorted(got & inside)], minlength=k)
    assert np.abs(np.bincount(table["label"], minlength=k)[: len(want)] - want).sum() <= len(
        got ^ inside
    )
    assert (
        page.locator("[data-pv=clear-selection]")
        .inner_text()
        .strip()
        .replace(",", "")
        .startswith(f"{len(got)} selected")
    )

    # The selection shows in the image view too: selected cells get the accent outline.
    kernel_exec(page, f"w.probe_image = {table['image'][0]}")
    page.wait_for_function(
        f"() => document.querySelector('[data-pv=image-title]').textContent.startsWith('image {table['image'][0]} ')"
    )
    img = element_image(page.locator("[data-pv=image-canvas]"))
    accent = np.abs(img.astype(int) - [25, 118, 210]).max(axis=2) < 40
    assert accent.sum() > 20


# ---- 4. dashboard: ipywidgets slider and bqplot chart -----------------------------------------------


def test_dashboard_slider_recomputes_and_bar_click_selects_layer(lab_server, page, study_file):
    _open_study(
        lab_server,
        page,
        study_file,
        last="d = pv.dashboard(study)\nw = d.viz\nd",
        name="dash.ipynb",
    )
    kp_text = page.locator("[data-pv=stats]").inner_text()
    img = _shot(page, "dash_before")

    handle = page.locator(".pv-dashboard .widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(20):
        page.keyboard.press("ArrowRight")
    _wait_py(page, "round(w.threshold, 2)", "0.6")
    page.wait_for_function(
        "(old) => document.querySelector('[data-pv=stats]').innerText !== old", arg=kp_text
    )
    page.wait_for_timeout(500)
    after = _shot(page, "dash_tau")
    assert (
        np.abs(after.astype(int) - img.astype(int)).max(axis=2) > 24
    ).mean() > 0.0005  # glyphs changed
    assert "0.60" in page.locator("[data-pv=stats]").inner_text()

    # click the tallest bar (a layer with no knowledge points has a 0-high bar, nothing to click)
    layers = json.loads(_py(page, "__import__('json').dumps(list(d.layer_bars.x))"))
    heights = np.atleast_2d(
        json.loads(
            _py(
                page,
                "__import__('json').dumps(__import__('numpy').asarray(d.layer_bars.y).tolist())",
            )
        )
    )[0]
    i = int(np.argmax(heights))
    assert heights[i] > 0, f"no layer has knowledge points at τ = 0.6: {dict(zip(layers, heights))}"
    other = layers[(i + 1) % len(layers)]  # start from another layer, so the click must change it
    kernel_exec(page, f"w.layer = {other!r}")
    _wait_py(page, "w.layer", other)
    page.locator(".pv-dashboard .bqplot .bargroup").nth(i).locator("rect").first.click()
    _wait_py(page, "w.layer", layers[i])
    page.wait_for_function(
        f"() => document.querySelector('[data-pv=crumb]').textContent.startsWith({layers[i]!r})"
    )


# ---- 5. Notebook 7 ------------------------------------------------------------------------------------


def test_notebook7_shows_the_widget(lab_server, page, study_file):
    _open_study(lab_server, page, study_file, name="nb7.ipynb", nb7=True)
    img = _shot(page, "notebook7")
    assert count_foreground(img, _bg(img)) > 300
    assert page.locator("[data-pv=layer-tile]").count() >= 3
