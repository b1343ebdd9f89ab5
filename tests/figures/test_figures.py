"""Every figure kind renders to PNG/SVG/PDF, and each file shows what the data say: one marker per
point or knowledge point, one outline per knowledge-point cell, one bar per bin, exact pixel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from figtools import markers, png_size, svg_groups, svg_ids

from patternviz_widget import figures as F
from patternviz_widget import results as pv_results
from patternviz_widget._style import CLASS_COLORS
from patternviz_widget.engine.attack import analysis as aa
from patternviz_widget.errors import InputError
from patternviz_widget.results import SAMPLE, Key, RegionRecord

LAST = "features.9"
LAYERS = ("features.2", "features.5", "features.9")

KINDS = {
    "sample_embedding": lambda s, d: F.sample_embedding(s),
    "embedding": lambda s, d: F.embedding(s, layer=LAST),
    "layer_strip": lambda s, d: F.layer_strip(s),
    "compare": lambda s, d: F.compare(s, layer=LAST),
    "knowledge_curve": lambda s, d: F.knowledge_curve(s),
    "highlighted_regions": lambda s, d: F.highlighted_regions(s, images=[0, 1, 2]),
    "forward_construction": lambda s, d: F.forward_construction(s, image=0),
    "ellipsoids": lambda s, d: F.ellipsoids(s, layer=LAST),
    "attack_deltas": lambda s, d: F.attack_deltas(s),
    "attack_histogram": lambda s, d: F.attack_histogram(s, layer=LAST),
    "trajectory_types": lambda s, d: F.trajectory_types(s, layer=LAST),
    "distill_knowledge": lambda s, d: F.distill_knowledge(d),
    "distill_histograms": lambda s, d: F.distill_histograms(d, layer=LAST),
}
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}


@pytest.fixture(scope="module")
def rendered(study, distill_study, tmp_path_factory):
    """Each figure kind written once per format (dpi 40 keeps PNGs small)."""
    out = tmp_path_factory.mktemp("figs")
    files = {}
    for name, make in KINDS.items():
        fig = make(study, distill_study)
        files[name] = {"size": tuple(fig.get_size_inches()), "fig": fig}
        for fmt in MAGIC:
            files[name][fmt] = F.save(fig, out / f"{name}.{fmt}", dpi=40)
    return files


@pytest.mark.parametrize("fmt", list(MAGIC))
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_writes_a_valid_file(rendered, kind, fmt):
    path: Path = rendered[kind][fmt]
    data = path.read_bytes()
    assert data.startswith(MAGIC[fmt]) and len(data) > 2000, f"{kind}.{fmt}: {len(data)} bytes"
    if fmt == "png":
        w, h = rendered[kind]["size"]
        assert png_size(path) == (round(w * 40), round(h * 40))
    if fmt == "pdf":
        assert b"/FontFile2" in data, "fonts must be embedded as TrueType (pdf.fonttype 42)"
    if fmt == "svg":
        assert b"<text" in data, "SVG text must stay text (svg.fonttype none)"


def test_png_is_exactly_inches_times_dpi(study, tmp_path):
    fig = F.embedding(study, layer=LAST, size=(3.0, 2.5))
    for dpi in (72, 150):
        assert png_size(F.save(fig, tmp_path / f"e{dpi}.png", dpi=dpi)) == (
            3 * dpi,
            round(2.5 * dpi),
        )


def test_embedding_svg_has_one_marker_per_region_by_glyph(study, rendered):
    kp = study.knowledge_points(LAST, epoch=2, condition="clean", threshold=0.4)
    is_kp, rel = np.asarray(kp.is_kp), np.asarray(kp.is_reliable)
    svg = rendered["embedding"]["svg"]
    assert markers(svg_groups(svg, "points-reliable")) == int((is_kp & rel).sum()) > 0
    assert markers(svg_groups(svg, "points-unreliable")) == int((is_kp & ~rel).sum())
    assert markers(svg_groups(svg, "points-non_discriminative")) == int((~is_kp).sum()) > 0
    # three class arrows, each a shaft and two head strokes, in the widget's class colours
    assert markers(svg_groups(svg, "mu-arrows")) == 3 * 3
    text = svg.read_text()
    for c, name in enumerate(["circle", "square", "triangle"]):
        assert name in text and CLASS_COLORS[c] in text


def test_embedding_title_states_the_view_and_its_knowledge_points(study, rendered):
    kp = study.knowledge_points(LAST, epoch=2, condition="clean", threshold=0.4)
    title = rendered["embedding"]["fig"]._suptitle.get_text()
    assert title.startswith(f"{LAST} · epoch 2 · clean")
    assert f"{float(kp.mean_total):.1f} KPs/image" in title


def test_sample_embedding_draws_every_probe_image(study, rendered):
    svg = rendered["sample_embedding"]["svg"]
    n = len(study.store.probe.labels)
    glyph_groups = [g for name in ("reliable", "unreliable", "non_discriminative")
                    for g in svg_groups(svg, f"samples-{name}")]  # fmt: skip
    assert markers(glyph_groups) == n


def test_selection_highlights_exactly_the_selected_rows(study, tmp_path):
    sel = np.array([0, 5, 17, 40])
    svg = F.save(F.embedding(study, layer=LAST, selection=sel), tmp_path / "sel.svg")
    drawn = sum(
        markers(svg_groups(svg, f"selected-{g}"))
        for g in ("reliable", "unreliable", "non_discriminative")
    )
    assert drawn == len(sel)


def test_layer_strip_has_one_panel_per_layer(rendered):
    svg = rendered["layer_strip"]["svg"]
    assert len(svg_groups(svg, "mu-arrows")) == len(LAYERS)
    text = svg.read_text()
    assert all(name in text for name in LAYERS)


def test_compare_shares_one_scale_and_keeps_region_count(study, rendered):
    fig = rendered["compare"]["fig"]
    axes = [ax for ax in fig.get_axes() if hasattr(ax, "get_zlim")]
    assert len(axes) == 2 and axes[0].get_xlim() == axes[1].get_xlim()
    svg = rendered["compare"]["svg"]
    m = len(study.store.get(Key("main", "clean", 2, LAST), RegionRecord).image)
    total = sum(
        markers(svg_groups(svg, f"points-{g}"))
        for g in ("reliable", "unreliable", "non_discriminative")
    )
    assert total == 2 * m


def test_knowledge_curve_plots_the_table_values(study, rendered):
    fig = rendered["knowledge_curve"]["fig"]
    rows = F.knowledge_table(study, conditions=["clean"])
    for layer in LAYERS:
        mine = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["epoch"])
        line = next(ln for ln in fig.axes[0].lines if ln.get_gid() == f"kp-total-{layer}")
        assert np.allclose(line.get_xdata(), [r["epoch"] for r in mine])
        assert np.allclose(line.get_ydata(), [r["total"] for r in mine])
        assert markers(
            svg_groups(rendered["knowledge_curve"]["svg"], f"kp-reliable-{layer}")
        ) == len(mine)


def test_highlighted_regions_outline_each_knowledge_point_once(study, rendered):
    svg = rendered["highlighted_regions"]["svg"]
    reliable = unreliable = 0
    for layer in LAYERS:
        kp = study.knowledge_points(layer, epoch=2, condition="clean", threshold=0.4)
        image = study.store.get(Key("main", "clean", 2, layer), RegionRecord).image
        shown = np.isin(image, [0, 1, 2])
        reliable += int((np.asarray(kp.is_kp) & np.asarray(kp.is_reliable) & shown).sum())
        unreliable += int((np.asarray(kp.is_kp) & ~np.asarray(kp.is_reliable) & shown).sum())
    assert markers(svg_groups(svg, "kp-boxes-reliable")) == reliable > 0
    assert markers(svg_groups(svg, "kp-boxes-unreliable")) == unreliable
    assert (
        rendered["highlighted_regions"]["pdf"].read_bytes().count(b"/Subtype /Image") >= 9
    )  # 3 × 3 thumbnails


def test_forward_construction_draws_the_object_cells_of_every_layer(rendered):
    svg = rendered["forward_construction"]["svg"]
    for layer in LAYERS:  # the synthetic object covers the 2×2 centre cells of a 4×4 grid
        assert markers(svg_groups(svg, f"layer-{layer}")) == 4
    assert svg_groups(svg, "layer-path")


def test_ellipsoids_one_surface_per_class_and_epoch(rendered):
    ids = svg_ids(rendered["ellipsoids"]["svg"])
    assert {"ellipsoid-0", "ellipsoid-1", "ellipsoid-2"} <= ids
    fig = rendered["ellipsoids"]["fig"]
    panels = [ax for ax in fig.get_axes() if hasattr(ax, "get_zlim")]
    assert len(panels) == 3
    assert all(sum(c.get_gid() == "ellipsoid-0" for c in ax.collections) == 1 for ax in panels)


def test_attack_figures_show_the_engine_measurements(study, rendered):
    shift = study.attack_report().deltas
    line = next(
        ln
        for ln in rendered["attack_deltas"]["fig"].axes[0].lines
        if ln.get_gid() == "delta-orientation"
    )
    assert np.allclose(line.get_ydata(), shift.orientation)
    assert shift.orientation[-1] > shift.orientation[0]  # only the last synthetic layer is attacked
    kps = study.attack_report(layer=LAST).kp
    bars = [
        p for p in rendered["attack_histogram"]["fig"].axes[0].patches if p.get_gid() == "hist-bar"
    ]
    assert (
        len(bars) == len(kps.hist_counts)
        and sum(b.get_height() for b in bars) == kps.adv_after.sum() > 0
    )
    assert len(svg_groups(rendered["attack_histogram"]["svg"], "hist-bar")) == len(bars)


def test_trajectory_types_draw_at_most_per_type_members(study, rendered):
    traj = study.attack_report(layer=LAST).trajectories
    assert isinstance(traj, aa.Trajectories)
    svg = rendered["trajectory_types"]["svg"]
    for k in range(4):
        assert len(svg_groups(svg, f"trajectory-{k + 1}")) == min(12, int(traj.counts[k]))


def test_distill_figures_show_the_report(distill_study, rendered):
    rep = distill_study.distill_report(threshold=0.4)
    m = len(distill_study.store.get(Key("teacher", "clean", 1, LAST), RegionRecord).image)
    fig = rendered["distill_histograms"]["fig"]
    steps = next(p for p in fig.axes[0].patches if p.get_gid() == "hist-student-cos")
    assert np.array_equal(steps.get_data().values, rep.cos_hist["student"][-1])
    assert steps.get_data().values.sum() == m  # every region once
    bars = [
        p
        for p in rendered["distill_knowledge"]["fig"].axes[0].patches
        if p.get_gid() == "kp-total-teacher"
    ]
    assert np.allclose([b.get_height() for b in bars], rep.kp_total[0])
    assert markers(svg_groups(rendered["distill_histograms"]["svg"], "hist-student-strength")) == 1


def test_errors_name_the_fix(study, tmp_path):
    with pytest.raises(InputError, match="features.9"):
        F.embedding(study, layer="features.99")
    with pytest.raises(InputError, match=r"Epochs available: \[0, 1, 2\]"):
        F.embedding(study, layer=LAST, epoch=7)
    with pytest.raises(InputError, match="color_by"):
        F.embedding(study, layer=LAST, color_by="colour")
    fig = F.knowledge_curve(study)
    with pytest.raises(InputError, match=r"\.png, \.svg, \.pdf"):
        F.save(fig, tmp_path / "figure.jpeg")
    with pytest.raises(InputError, match="size"):
        F.embedding(study, layer=LAST, size=(100, 1))
    with pytest.raises(InputError, match="selection"):
        F.embedding(study, layer=LAST, selection=[10_000])


def test_sample_key_layer_aliases(study):
    fig = F.embedding(study, layer="sample")
    assert fig._suptitle.get_text().startswith("samples · epoch 2 · clean")
    assert Key("main", "clean", 2, SAMPLE) in study.store.find()


@pytest.mark.parametrize("kind", list(KINDS))
def test_drawing_a_figure_never_writes_into_the_store(kind):
    from figure_synth import make_store

    from patternviz_widget.figures._data import as_study

    study = as_study(make_store(conditions=("clean", "adversarial")))
    distill = as_study(make_store(models=("teacher", "student"), epochs=(0, 1)))
    # the trace as an attack before study.embed() leaves it: features only, projected when read
    trace_key = Key("main", "adversarial", 2, LAST)
    trace = study.store.get(trace_key, pv_results.ArrayRecord)
    feats = study.store.get(trace_key.replace(condition="clean"), RegionRecord).features
    study.store.put(trace_key, pv_results.ArrayRecord(
        name="attack_trace", arrays={"features": np.stack([feats] * trace.arrays["h"].shape[0])}))  # fmt: skip
    puts: list[str] = []
    for s in (study, distill):
        s.store.observe(lambda key: puts.append(str(key)))
    before = [
        sorted(f"{k}|{n}" for (k, n), _ in s.store.items_with_kind()) for s in (study, distill)
    ]
    KINDS[kind](study, distill)
    after = [
        sorted(f"{k}|{n}" for (k, n), _ in s.store.items_with_kind()) for s in (study, distill)
    ]
    assert puts == [] and after == before
    assert "h" not in study.store.get(trace_key, pv_results.ArrayRecord).arrays
