"""``w.snapshot`` (the page's own pixels) and ``w.export`` (matplotlib, no browser) of one view state
show the same picture: the same classes, in the same colours, in roughly the same arrangement.

Fair comparison: both images are reduced to masks of pixels close to each class colour of
``_style.CLASS_COLORS`` inside the plot area (the snapshot's legend swatches and the export's
legend below the axes are left out). The classes present must be the same, and each class's
centroid must lie in the same direction from the centre of all class pixels (within 60°), since
both draw with the widget's camera (same elevation, azimuth, field of view and up axis).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
from e2e._harness import kernel_exec, open_notebook, synthetic_widget_notebook

from patternviz_widget._style import CLASS_COLORS

FIGURES = Path(__file__).resolve().parents[1] / "figures"
K = 3  # classes of the synthetic study


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def class_masks(img: np.ndarray, tol: float = 38.0) -> list[np.ndarray]:
    """One boolean mask per class: pixels within ``tol`` (RGB distance) of the class colour."""
    rgb = img[..., :3].astype(np.float64)
    return [np.linalg.norm(rgb - _rgb(CLASS_COLORS[c]), axis=-1) < tol for c in range(K)]


def arrangement(masks: list[np.ndarray], min_pixels: int) -> tuple[set[int], dict[int, float]]:
    """(classes present, angle in degrees of each class centroid around the centre of all)."""
    present = {c for c, m in enumerate(masks) if m.sum() >= min_pixels}
    union = np.logical_or.reduce([masks[c] for c in present]) if present else None
    if union is None:
        return present, {}
    cy, cx = np.argwhere(union).mean(axis=0)
    angles = {}
    for c in present:
        y, x = np.argwhere(masks[c]).mean(axis=0)
        if np.hypot(x - cx, y - cy) > 0.05 * max(union.shape):
            angles[c] = float(np.degrees(np.arctan2(-(y - cy), x - cx)))
    return present, angles


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def test_snapshot_and_export_show_the_same_view(lab_server, page, tmp_path):
    out = tmp_path / "shots"
    out.mkdir()
    name = lab_server.add_notebook(
        synthetic_widget_notebook(30, "The same view, drawn by the page and by matplotlib."),
        name="snapshot_vs_export.ipynb",
    )
    open_notebook(page, name)
    page.wait_for_selector("canvas", timeout=60_000)
    backend = ""
    for _ in range(120):  # the page reports its renderer once the first frame is drawn
        backend = kernel_exec(page, "print(w.backend)")
        if backend:
            break
        page.wait_for_timeout(500)
    assert backend in ("webgl", "canvas2d"), f"the widget never drew (backend={backend!r})"

    snap = out / "snapshot.png"
    kernel_exec(page, f"print(w.snapshot({str(snap)!r}, timeout=30))", timeout=60)
    shot = _load(snap)
    h, w_px = shot.shape[:2]
    exported = out / "export.png"
    kernel_exec(
        page, f"print(w.export({str(exported)!r}, size=({w_px / 100}, {h / 100}), dpi=100))"
    )
    fig_img = _load(exported)

    # plot areas: the snapshot without its legend rows (bottom left); the export above its legend
    legend_rows = 14 * (K + 3) + 30
    shot_area = shot.copy()
    shot_area[h - legend_rows :, : w_px // 3] = 255
    fig_area = fig_img[: int(fig_img.shape[0] * 0.8)]

    min_px = 20
    present_s, angles_s = arrangement(class_masks(shot_area), min_px)
    present_e, angles_e = arrangement(class_masks(fig_area), min_px)
    assert present_s == present_e == set(range(K)), (present_s, present_e)
    both = set(angles_s) & set(angles_e)
    assert len(both) >= 2, (angles_s, angles_e)
    for c in both:
        diff = abs((angles_s[c] - angles_e[c] + 180) % 360 - 180)
        assert diff < 60, f"class {c}: snapshot at {angles_s[c]:.0f}°, export at {angles_e[c]:.0f}°"


def test_snapshot_of_a_widget_nobody_displays_fails_fast(lab_server, page, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"import sys\nsys.path.insert(0, {str(FIGURES)!r})\nfrom figure_synth import make_store\n"
        "import patternviz_widget as pv\nfrom patternviz_widget.figures._data import as_study\n"
        "hidden = pv.PatternViz(as_study(make_store()), layer='features.9')  # never displayed"
    )]  # fmt: skip
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    name = lab_server.add_notebook(nb, name="snapshot_hidden.ipynb")
    open_notebook(page, name)
    text = kernel_exec(
        page,
        "import time\nt = time.monotonic()\n"
        "try:\n"
        f"    hidden.snapshot({str(tmp_path / 'x.png')!r}, timeout=3)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, '|', e, '|', round(time.monotonic() - t, 1))",
        timeout=60,
    )
    kind, message, seconds = (s.strip() for s in text.split("|"))
    assert kind == "WidgetTimeoutError" and "display" in message.lower()
    assert float(seconds) < 10
    assert not (tmp_path / "x.png").exists()
