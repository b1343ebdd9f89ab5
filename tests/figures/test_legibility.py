"""What a reader of an exported figure sees: legends on a regular grid inside the figure, class
labels that never overlap, names drawn verbatim (never mathtext), and a default view chosen from
the data that fans the class directions μ_c out (the widget opens on the same one)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from figure_synth import make_store

from patternviz_widget import figures as F
from patternviz_widget.figures._common import MuLabels, camera_angles
from patternviz_widget.figures._data import as_study
from patternviz_widget.results.camera import FALLBACK, default_camera, direction, view_for
from patternviz_widget.widget.payload import catalog

LAST = "features.9"
LONG = "a class name of exactly sixty characters, far too long to ft"
assert len(LONG) == 60


def _study(names):
    return as_study(make_store(n_images=2 * len(names), class_names=list(names)))


def _drawn(fig):
    """Draw ``fig`` (PNG bytes, discarded) and return its renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    with F._common.style():
        canvas.draw()
    return canvas.get_renderer()


def _legend_boxes(fig, renderer):
    texts = [t for t in fig.texts if t.get_gid() == "legend-label"]
    return texts, [t.get_window_extent(renderer) for t in texts]


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def _assert_grid(boxes, fig_bbox):
    """Entries fill rows left to right on one column pitch and one row pitch, all in the figure."""
    for b in boxes:
        assert fig_bbox.x0 <= b.x0 and b.x1 <= fig_bbox.x1 and fig_bbox.y0 <= b.y0, b
    xs = np.array([b.x0 for b in boxes])
    ys = np.array([(b.y0 + b.y1) / 2 for b in boxes])
    cols = np.unique(xs.round(1))
    rows = np.unique(ys.round(0))[::-1]
    assert len(cols) * len(rows) >= len(boxes) > (len(rows) - 1) * len(cols)
    if len(cols) > 1:
        pitch = np.diff(cols)
        assert np.ptp(pitch) < 0.5, f"uneven columns: {pitch}"
    if len(rows) > 1:
        assert np.ptp(np.diff(rows)) < 1.5, f"uneven rows: {rows}"
    ncol = len(cols)
    for i, (x, y) in enumerate(zip(xs, ys)):  # row-major: entry i sits at (i // ncol, i % ncol)
        assert abs(x - cols[i % ncol]) < 0.5 and abs(y - rows[i // ncol]) < 1.5, i
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b), (a, b)


@pytest.mark.parametrize(
    "names",
    [
        [f"class {c}" for c in range(6)],
        [str(c) for c in range(10)],
        [f"c{c}" for c in range(20)],
        [f"class {c}" for c in range(4)] + [LONG, "ring"],
    ],
    ids=["6 classes", "10 classes", "20 classes", "60-char name"],
)
def test_class_legend_is_a_regular_grid_inside_the_figure(names):
    fig = F.embedding(_study(names), layer=LAST)
    renderer = _drawn(fig)
    texts, boxes = _legend_boxes(fig, renderer)
    k = len(names)
    assert fig.legend_names[:k] == list(names)  # full names, for a caption
    _assert_grid(boxes[:k], fig.bbox)
    shown = [t.get_text() for t in texts[:k]]
    if LONG in names:
        cut = shown[names.index(LONG)]
        assert cut.endswith("…") and LONG.startswith(cut[:-1]) and len(cut) < 60
    else:
        assert shown == list(names)
    # the plots stay above the legend: no axes reaches into its band
    top = max(b.y1 for b in boxes)
    for ax in fig.axes:
        assert ax.get_window_extent(renderer).y0 >= top - 1


def test_a_500_character_name_stays_inside_the_figure():
    names = ["x" * 500, "short"]
    for fig in (F.embedding(_study(names), layer=LAST), F.layer_strip(_study(names))):
        renderer = _drawn(fig)
        _, boxes = _legend_boxes(fig, renderer)
        assert all(fig.bbox.x0 <= b.x0 and b.x1 <= fig.bbox.x1 for b in boxes)
        labels = [a for a in fig.findobj(MuLabels)]
        for t in (t for a in labels for t in a.texts):
            assert len(t.get_text()) < 40  # the arrow label is shortened too


def test_layer_strip_legend_is_one_grid(tmp_path):
    fig = F.layer_strip(_study([str(c) for c in range(10)]))
    _, boxes = _legend_boxes(fig, _drawn(fig))
    _assert_grid(boxes[:10], fig.bbox)


@pytest.mark.parametrize("k", [10, 20])
def test_class_direction_labels_never_overlap(k):
    fig = F.embedding(_study([f"class {c}" for c in range(k)]), layer=LAST)
    renderer = _drawn(fig)
    (labels,) = fig.findobj(MuLabels)
    boxes = [t.get_window_extent(renderer) for t in labels.texts]
    assert len(boxes) == k
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b), (a, b)
    ax = fig.axes[0].get_window_extent(renderer)
    assert all(ax.x0 - 1 <= b.x0 and b.x1 <= ax.x1 + 1 for b in boxes)


def test_dollar_names_are_drawn_verbatim_in_every_format(tmp_path):
    from matplotlib.text import Text

    from patternviz_widget.figures.batch import write_figures

    names = ["$x$", "cost $5 and $6", "plain"]
    study = _study(names)
    # every figure the `figures` command writes, in every format, without a mathtext error
    written, skipped = write_figures(
        study, tmp_path, formats=("png", "svg", "pdf"), dpi=30, log=str
    )
    assert not skipped and len(written) >= 3 * 6
    for fig in (F.embedding(study, layer=LAST), F.highlighted_regions(study, images=[0, 1])):
        for t in fig.findobj(Text):
            assert t._preprocess_math(t.get_text())[1] is False, t.get_text()
    svg = F.save(F.embedding(study, layer=LAST), tmp_path / "e.svg").read_text()
    assert ">$x$<" in svg and ">cost $5 and $6<" in svg


# ---- the data-chosen default view -------------------------------------------------------------------


def _min_gap(mu, v):
    u = mu / np.linalg.norm(mu, axis=1, keepdims=True)
    p = u - (u @ v)[:, None] * v
    return min(np.linalg.norm(p[i] - p[j]) for i, j in itertools.combinations(range(len(u)), 2))


def test_default_view_looks_across_the_plane_of_planar_class_directions():
    t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    mu = np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], 1)  # all in the xy plane
    v = direction(view_for(mu))
    assert abs(v[2]) > 0.97  # looks along z: the six directions fan out over the whole picture
    assert _min_gap(mu, v) > 0.95  # the hexagon's side is 1


def test_default_view_spreads_class_directions_more_than_a_fixed_one():
    rng = np.random.default_rng(3)
    ours, fixed = [], []
    for _ in range(20):
        mu = rng.normal(size=(10, 3))
        ours.append(_min_gap(mu, direction(view_for(mu))))
        fixed.append(_min_gap(mu, direction(FALLBACK)))
    ratio = np.array(ours) / np.array(fixed)
    # the closest two labels sit about twice as far apart as from the old fixed view
    assert np.median(ratio) > 1.5 and ratio.min() > 0.85, ratio


def test_figures_and_widget_share_the_default_view():
    study = _study([f"class {c}" for c in range(10)])
    cam = default_camera(study.store)
    assert cam != FALLBACK
    assert catalog(study.store, {})["cameras"]["main"] == cam
    elev, azim = camera_angles(cam)
    for fig in (F.embedding(study, layer=LAST), F.layer_strip(study), F.sample_embedding(study)):
        for ax in (a for a in fig.axes if hasattr(a, "get_zlim")):
            assert (round(ax.elev, 4), round(ax.azim, 4)) == (round(elev, 4), round(azim, 4))
    # one view for the whole run: every epoch's figure of a layer uses it
    e0 = F.embedding(study, layer=LAST, epoch=0).axes[0]
    assert (round(e0.elev, 4), round(e0.azim, 4)) == (round(elev, 4), round(azim, 4))
