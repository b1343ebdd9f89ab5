"""``w.export(path)`` / ``export_view``: a figure of exactly the view state the widget holds, drawn
without a browser (these widgets are never displayed), and ``pv.figures.save`` format rules."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "figures"))
from figtools import markers, png_size, svg_groups  # noqa: E402
from figure_synth import make_store  # noqa: E402

from patternviz_widget import figures as F  # noqa: E402
from patternviz_widget.errors import InputError  # noqa: E402
from patternviz_widget.figures._common import camera_angles  # noqa: E402
from patternviz_widget.figures._data import as_study  # noqa: E402
from patternviz_widget.widget.export import export_view, snapshot_view, view_state  # noqa: E402

GLYPHS = ("reliable", "unreliable", "non_discriminative")


@pytest.fixture(scope="module")
def study():
    return as_study(make_store(conditions=("clean", "adversarial")))


@pytest.fixture
def widget(study):
    import patternviz_widget as pv

    w = pv.PatternViz(study)
    yield w
    w.close()


def _points(svg: Path, prefix: str = "points") -> dict[str, int]:
    return {g: markers(svg_groups(svg, f"{prefix}-{g}")) for g in GLYPHS}


def test_export_draws_the_widgets_key_and_threshold(widget, study, tmp_path):
    widget.layer, widget.epoch, widget.threshold = "features.5", 1, 0.6
    svg = export_view(widget, tmp_path / "view.svg")
    kp = study.knowledge_points("features.5", epoch=1, condition="clean", threshold=0.6)
    is_kp, rel = np.asarray(kp.is_kp), np.asarray(kp.is_reliable)
    assert _points(svg) == {
        "reliable": int((is_kp & rel).sum()),
        "unreliable": int((is_kp & ~rel).sum()),
        "non_discriminative": int((~is_kp).sum()),
    }
    assert "features.5 · epoch 1 · clean" in svg.read_text()


def test_export_follows_threshold_changes_without_refit(widget, tmp_path):
    widget.layer = "features.9"
    low = sum(_points(export_view(widget, tmp_path / "a.svg"))[g] for g in GLYPHS[:2])
    widget.threshold = 0.9
    high = sum(_points(export_view(widget, tmp_path / "b.svg"))[g] for g in GLYPHS[:2])
    assert high < low  # a stricter τ keeps fewer knowledge points


def test_export_of_the_sample_view(widget, study, tmp_path):
    widget.feature_kind = "samples"
    svg = export_view(widget, tmp_path / "s.svg")
    assert sum(_points(svg, "samples").values()) == len(study.store.probe.labels)
    assert "samples · epoch 2 · clean" in svg.read_text()


def test_export_keeps_the_selection_and_camera(widget, tmp_path):
    widget.layer = "features.9"
    widget.select([3, 4, 50])
    widget.camera = {"azimuth": 1.2, "elevation": 0.2, "distance": 9.0, "target": [0, 0, 0]}
    fig = export_view(widget)
    ax = next(a for a in fig.get_axes() if hasattr(a, "get_zlim"))
    elev, azim = camera_angles(widget.camera)
    assert (round(ax.elev, 3), round(ax.azim, 3)) == (round(elev, 3), round(azim, 3))
    svg = F.save(fig, tmp_path / "sel.svg")
    assert sum(markers(svg_groups(svg, f"selected-{g}")) for g in GLYPHS) == 3


def test_export_of_compare_mode_has_two_panes(widget, study, tmp_path):
    widget.layer = "features.9"
    widget.compare = "condition"
    widget.compare_with = "adversarial"
    fig = export_view(widget)
    panes = [a for a in fig.get_axes() if hasattr(a, "get_zlim")]
    assert len(panes) == 2
    titles = [sf._suptitle.get_text() for sf in fig.subfigs]
    assert titles[0].startswith("clean") and titles[1].startswith("adversarial")


def test_export_of_forward_mode_draws_the_selected_images_layers(widget, tmp_path):
    widget.layer = "features.9"
    widget.mode = "forward"
    widget.probe_image = 4
    svg = export_view(widget, tmp_path / "f.svg")
    for layer in ("features.2", "features.5", "features.9"):  # every kept cell of image 4: 4 × 4
        assert markers(svg_groups(svg, f"layer-{layer}")) == 16
    assert "image 4" in svg.read_text()


def test_export_writes_each_format_at_the_asked_size(widget, tmp_path):
    widget.layer = "features.9"
    png = export_view(widget, tmp_path / "v.png", dpi=100, size=(3.0, 3.0))
    assert png_size(png) == (300, 300)
    assert export_view(widget, tmp_path / "v.pdf").read_bytes().startswith(b"%PDF-")
    fig = export_view(widget, kind="layer_strip")
    assert len([a for a in fig.get_axes() if hasattr(a, "get_zlim")]) == 3


def test_widget_method_delegates_to_export_view(widget, tmp_path):
    if not hasattr(widget, "export"):
        pytest.fail("PatternViz.export is missing (one line: export_view(self, path, **kw)).")
    widget.layer = "features.2"
    path = widget.export(tmp_path / "m.svg")
    assert Path(path).exists() and "features.2" in Path(path).read_text()


def test_view_state_reads_the_traits(widget):
    widget.layer, widget.epoch, widget.condition = "features.5", 0, "adversarial"
    state = view_state(widget)
    assert {k: state[k] for k in ("layer", "epoch", "condition", "model")} == {
        "layer": "features.5", "epoch": 0, "condition": "adversarial", "model": "main",
    }  # fmt: skip


def test_bad_requests_name_the_fix(widget, tmp_path):
    with pytest.raises(InputError, match="kind"):
        export_view(widget, kind="embeding")
    with pytest.raises(InputError, match=r"\.png, \.svg, \.pdf"):
        export_view(widget, tmp_path / "v.gif")
    with pytest.raises(InputError, match=r"\.png"):
        snapshot_view(widget, tmp_path / "v.svg")


def test_snapshot_without_a_page_fails_fast_with_a_clear_error(widget, tmp_path):
    from patternviz_widget.errors import PatternVizError

    with pytest.raises(PatternVizError, match="display"):
        snapshot_view(widget, tmp_path / "v.png", timeout=0.5)
    assert not (tmp_path / "v.png").exists()
