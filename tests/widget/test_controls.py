"""pv.dashboard: τ linked to the widget, charts drawn from the widget's summary, and clicks on
bqplot marks (delivered as bqplot's own element_click messages) setting the widget's state."""

from __future__ import annotations

import numpy as np
import pytest

import patternviz_widget as pv


@pytest.fixture
def dash(store):
    d = pv.dashboard(store)
    yield d
    d.viz.close()


def click(mark, index: int) -> None:
    """What bqplot's page sends when a bar / dot is clicked."""
    mark._handle_custom_msgs(None, {"event": "element_click", "data": {"index": index}})


def test_dashboard_composes_widget_sliders_and_charts(dash):
    assert isinstance(dash.viz, pv.PatternViz) and dash.children[0] is dash.viz
    assert set(dash.sliders) == {"threshold", "temperature", "lambda_mi", "eps", "budget"}
    assert set(dash.charts) == {"per_layer", "per_epoch", "per_condition"}


def test_every_chart_compares_heights_from_zero(dash):
    # bars and the KP-per-epoch line are read by their heights: each value axis starts at 0
    for fig in dash.charts.values():
        (value_axis,) = [a for a in fig.axes if a.side == "left"]
        assert value_axis.scale.min == 0, fig.title
    for bars in (dash.layer_bars, dash.cond_bars):
        assert bars.base == 0


def test_threshold_slider_drives_the_widget_and_the_charts(dash):
    before = list(dash.layer_bars.y)
    dash.sliders["threshold"].value = 0.9
    assert dash.viz.threshold == 0.9
    after = list(dash.layer_bars.y)
    assert all(a <= b for a, b in zip(after, before, strict=True)) and after != before
    dash.viz.threshold = 0.5  # and back: the link is two-way
    assert dash.sliders["threshold"].value == 0.5


def test_layer_chart_shows_the_summary_and_a_click_selects_the_layer(dash):
    v = dash.viz
    assert list(dash.layer_bars.x) == ["features.2", "features.5", "features.9"]
    expected = [v.summary["layers"][name]["total"][-1] for name in dash.layer_bars.x]
    assert list(dash.layer_bars.y) == pytest.approx(expected)
    assert dash.layer_bars.colors[2] != dash.layer_bars.colors[0]  # the current layer stands out
    click(dash.layer_bars, 0)
    assert v.layer == "features.2"
    assert dash.layer_bars.colors[0] != dash.layer_bars.colors[2]


def test_epoch_chart_click_sets_the_epoch(dash):
    assert list(dash.epoch_dots.x) == [0, 1, 2]
    click(dash.epoch_dots, 1)
    assert dash.viz.epoch == 1


def test_condition_chart_click_sets_the_condition(dash):
    labels = list(dash.cond_bars.x)
    assert labels == ["adversarial", "clean"]
    click(dash.cond_bars, 0)
    assert dash.viz.condition == "adversarial"


def test_a_failing_recompute_shows_its_error_in_the_dashboard(dash):
    # a store-only study has no model, so the attack cannot run: the error must be visible
    dash.sliders["eps"].value = 0.05
    text = "".join(o.get("text", "") + str(o.get("data", "")) for o in dash.out.outputs)
    assert "NotImplementedError" in text or "study.attack" in text
    assert "failed" in dash.status.value
    assert not dash.sliders["temperature"].disabled  # controls are usable again


def test_temperature_slider_refits_on_the_kernel_and_the_view_follows(store):
    d = pv.dashboard(store, embed_kwargs={"fast": True})
    try:
        v = d.viz
        key = "main|clean|2|features.9"
        rev = v.catalog["rev"].get(key, 0)
        h0 = v._study.store.get(v.key, pv.results.RegionEmbedding).h.copy()
        d.sliders["temperature"].value = 2.0
        assert "done in" in d.status.value, d.out.outputs
        assert not d.sliders["temperature"].disabled
        emb = v._study.store.get(v.key, pv.results.RegionEmbedding)
        assert emb.params.get("temperature", 2.0) == 2.0 and not np.array_equal(emb.h, h0)
        assert v.catalog["rev"][key] > rev  # the page is told to refetch this key
        assert v.summary["layers"]["features.9"]["epochs"] == [0, 1, 2]
    finally:
        d.viz.close()
