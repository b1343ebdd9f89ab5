"""PatternViz on the Python side: defaults, validation with clear errors, traits synced both ways
(including a JS → Python binary selection), live updates, the selection table, snapshots."""

from __future__ import annotations

import numpy as np
import pytest
from page_msgs import js_update
from synth import CLASS_NAMES, add_epoch

import patternviz_widget as pv
from patternviz_widget._style import CLASS_COLORS
from patternviz_widget.errors import BundleMissingError, InputError, WidgetTimeoutError
from patternviz_widget.results import SAMPLE, Key, RegionRecord
from patternviz_widget.widget import patternviz as widget_module


def test_first_view_is_the_deepest_layer_at_the_latest_epoch(widget):
    assert (widget.model, widget.condition, widget.layer, widget.epoch) == (
        "main",
        "clean",
        "features.9",
        2,
    )
    assert (
        widget.feature_kind == "regions" and widget.mode == "embedding" and widget.threshold == 0.4
    )
    cat = widget.catalog
    assert cat["layers"] == ["features.2", "features.5", "features.9"]
    assert cat["class_names"] == CLASS_NAMES and all(isinstance(n, str) for n in cat["class_names"])
    assert cat["palette"] == CLASS_COLORS
    assert cat["grid_shapes"]["features.5"] == [4, 4] and cat["num_images"] == 12


def test_unknown_names_list_the_closest_valid_ones(widget):
    with pytest.raises(InputError, match=r"Unknown layer 'features\.8'.*Closest: 'features\.9'"):
        widget.layer = "features.8"
    with pytest.raises(InputError, match=r"Unknown condition 'adverserial'.*'adversarial'"):
        widget.condition = "adverserial"
    with pytest.raises(InputError, match=r"Unknown epoch '7'"):
        widget.epoch = 7
    with pytest.raises(InputError, match=r"Unknown feature_kind 'pixels'.*'regions', 'samples'"):
        widget.feature_kind = "pixels"
    with pytest.raises(InputError, match=r"threshold .* \[0, 1\]"):
        widget.threshold = 1.5
    with pytest.raises(InputError, match=r"Unknown compare 'layer'"):
        widget.compare = "layer"
    with pytest.raises(InputError, match=r"Unknown mode '2d'"):
        widget.mode = "2d"
    with pytest.raises(InputError, match=r"probe_image must be in \[0, 12\)"):
        widget.probe_image = 12
    assert widget.layer == "features.9"  # a rejected value leaves the trait unchanged


def test_compare_picks_a_partner_and_validates_it(widget):
    widget.compare = "condition"
    assert widget.compare_with == "adversarial"
    with pytest.raises(InputError, match="Unknown condition to compare with"):
        widget.compare_with = "clean"  # the left view already shows clean
    widget.compare = "epoch"
    assert widget.compare_with in {"0", "1"}


def test_python_state_reaches_the_page_state(widget):
    widget.layer = "features.5"
    widget.epoch = 1
    widget.threshold = 0.55
    state = widget.get_state()
    assert (state["layer"], state["epoch"], state["threshold"]) == ("features.5", 1, 0.55)
    assert widget.key == Key("main", "clean", 1, "features.5")
    widget.feature_kind = "samples"
    assert widget.key.layer == SAMPLE


def test_selection_round_trips_as_uint32_bytes_both_ways(widget):
    widget.select([9, 2, 2, 40])
    state = widget.get_state()
    raw = bytes(state["selection"])
    assert np.frombuffer(raw, "<u4").tolist() == [2, 9, 40]  # sorted, unique, binary
    # The page sends the selection as a binary buffer (a memoryview on arrival) together with
    # other traits; every trait of the message must land.
    ids = np.array([3, 17, 5], "<u4")
    js_update(widget, {"layer": "features.2", "hover": 17}, {"selection": ids.tobytes()})
    assert widget.selected_ids.tolist() == [3, 5, 17]
    assert isinstance(widget.selection, bytes)
    assert widget.layer == "features.2" and widget.hover == 17


def test_page_changes_of_state_traits_land(widget):
    js_update(
        widget,
        {
            "epoch": 0,
            "condition": "adversarial",
            "compare": "condition",
            "camera": {"azimuth": 1.0, "distance": 3.0},
        },
    )
    assert (widget.epoch, widget.condition, widget.compare) == (0, "adversarial", "condition")
    assert widget.compare_with == "clean" and widget.camera["distance"] == 3.0


def test_selected_regions_is_a_tidy_table(widget, store):
    rec = store.get(widget.key, RegionRecord)
    # rows of image 4 (class 1, "square") on the object: cells (1..2, 1..2)
    rows = np.flatnonzero(
        (rec.image == 4) & (rec.grid[:, 0] == 1) & (rec.grid[:, 1] >= 1) & (rec.grid[:, 1] <= 2)
    )
    widget.select(rows)
    t = widget.selected_regions()
    assert set(t) >= {
        "region",
        "image",
        "data_index",
        "row",
        "col",
        "label",
        "class_name",
        "discrimination",
        "is_kp",
    }
    assert len({len(v) for v in t.values()}) == 1 and len(t["region"]) == 2
    assert t["image"].tolist() == [4, 4] and t["data_index"].tolist() == [104, 104]
    assert t["row"].tolist() == [1, 1] and t["col"].tolist() == [1, 2]
    assert list(t["class_name"]) == ["square", "square"]
    # by construction these deep, late, on-object regions point along μ_square: reliable KPs
    assert t["is_kp"].all() and t["is_reliable"].all() and (t["discrimination"] > 0.4).all()
    assert (t["predicted"] == 1).all()


def test_threshold_changes_the_summary_without_refitting(widget):
    low = widget.summary["layers"]["features.9"]["total"][-1]
    widget.threshold = 0.95
    high = widget.summary["layers"]["features.9"]["total"][-1]
    assert widget.summary["threshold"] == 0.95
    assert high < low  # stricter τ: fewer knowledge points


def test_summary_holds_the_engine_counts_for_every_layer_and_epoch(widget):
    s = widget.summary["layers"]
    assert list(s) == ["features.2", "features.5", "features.9"]
    for layer, row in s.items():
        assert row["epochs"] == [0, 1, 2]
        for e, total, reliable in zip(row["epochs"], row["total"], row["reliable"], strict=True):
            kp = widget._study.knowledge_points(layer, epoch=e, condition="clean", threshold=0.4)
            assert total == pytest.approx(kp.mean_total) and reliable == pytest.approx(
                kp.mean_reliable
            )


def test_a_new_epoch_appears_without_redisplay(widget, store):
    assert 3 not in widget.catalog["epochs"]
    add_epoch(
        store,
        np.random.default_rng(3),
        "main",
        "clean",
        3,
        ("features.2", "features.5", "features.9"),
        4,
        4,
    )
    assert 3 in widget.catalog["epochs"]
    assert widget.summary["layers"]["features.9"]["epochs"][-1] == 3
    assert widget.catalog["rev"]["main|clean|3|features.9"] >= 1
    widget.epoch = 3  # now valid


def test_closed_widget_stops_following_the_store(store):
    w = pv.PatternViz(store)
    w.close()
    add_epoch(store, np.random.default_rng(4), "main", "clean", 5, ("features.2",), 6, 4)
    assert 5 not in w.catalog["epochs"]


def test_a_saved_study_path_or_a_store_or_a_study_is_accepted(store):
    with pytest.raises(InputError, match="needs a pv.Study, a ResultStore"):
        pv.PatternViz(42)


def test_missing_bundle_names_the_fix():
    with pytest.raises(BundleMissingError) as err:
        widget_module._bundle("no-such-bundle.js")
    assert "pip install -e ." in str(err.value) and "npm --prefix js run build" in str(err.value)


def test_snapshot_without_a_page_is_a_clear_error(widget):
    with pytest.raises(WidgetTimeoutError, match="displayed"):
        widget._request_snapshot(timeout=0.5)


def test_selection_follows_the_same_image_area_across_layers(widget, store):
    rec9 = store.get(Key("main", "clean", 0, "features.9"), RegionRecord)
    # the top-left quarter (cells (0..1, 0..1) of a 4×4 grid) of image 7
    quarter = np.flatnonzero((rec9.image == 7) & (rec9.grid[:, 0] <= 1) & (rec9.grid[:, 1] <= 1))
    widget.select(quarter)
    widget.feature_kind = "samples"
    assert widget.selected_ids.tolist() == [7]  # regions -> their image
    widget.feature_kind = "regions"
    rows = widget.selected_ids  # image -> all its regions
    assert sorted(rec9.image[rows].tolist()) == [7] * 16
    widget.select(quarter)
    widget.layer = "features.2"  # same 4×4 grid: the same cells of the same image
    rec2 = store.get(Key("main", "clean", 0, "features.2"), RegionRecord)
    got = widget.selected_ids
    assert set(map(tuple, rec2.grid[got].tolist())) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert set(rec2.image[got].tolist()) == {7}
