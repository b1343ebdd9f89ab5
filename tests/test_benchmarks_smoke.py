"""Every benchmark section runs end to end at tiny sizes (``python -m benchmarks.run --smoke``), so
the benchmarks cannot rot. Nothing here asserts a timing: speed lives in benchmarks/results/."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_section(
    tmp_path: Path, section: str, *extra: str, timeout: float = 300
) -> tuple[dict, str]:
    """Run one section with --smoke into ``tmp_path``; return (its result, RESULTS.md text)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--smoke",
            "--sections",
            section,
            "--out",
            str(tmp_path),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    doc = json.loads((tmp_path / f"{section}.json").read_text())
    assert doc["status"] == "ok" and doc["smoke"] is True
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["torch"]
    md = (tmp_path / "RESULTS.md").read_text()
    assert f"## {section}" in md and doc["command"] in md
    return doc["result"], md


def test_capture_section_compares_capture_with_a_plain_forward(tmp_path: Path) -> None:
    r, md = run_section(tmp_path, "capture")
    assert [x["config"] for x in r["runs"]] == ["bench_vgg", "demo"]
    for x in r["runs"]:
        assert len(x["layers"]) == 4 and all(v > 0 for v in x["regions_kept"].values())
        assert len(x["forward_s"]) == len(x["capture_s"]) == x["repeats"]
        assert x["ratio_median"] == pytest.approx(
            x["capture_median_s"] / x["forward_median_s"], rel=0.01
        )
        assert f"**{x['ratio_median']:.3f}**" in md


def test_embed_section_runs_every_method_and_scores_class_discrimination(tmp_path: Path) -> None:
    for module in ("umap", "openTSNE"):
        pytest.importorskip(module, reason=f"{module} is a bench extra: pip install -e '.[bench]'")
    r, md = run_section(tmp_path, "embed")
    assert {x["data"] for x in r["rows"]} == {
        "synthetic",
        "real",
    }  # the real-feature cross-check ran
    assert r["real"]["dim"] == 64 and 0 < r["real"]["on_object_share"] < 1
    rows = {x["method"]: x for x in r["rows"] if x["data"] == "synthetic"}
    ref = rows.pop("feature space")
    assert 0.0 <= ref["knn"]["all"] <= 1.0 and ref["knn"]["object"] > 0.1  # 10 classes: chance 0.1
    assert set(rows) == {"ours", "ours_fast", "pca", "tsne_sklearn", "opentsne", "umap"}
    for m, x in rows.items():
        assert x["status"] == "ok", (m, x)
        assert x["finite"] and x["emb_dim"] == (3 if m in ("ours", "ours_fast", "pca") else 2)
        assert x["peak_rss_mb"] > x["rss_inputs_mb"] > 0
        assert 0.0 <= x["knn"]["all"] <= 1.0 and 0.0 <= x["knn"]["object"] <= 1.0
        assert x["ours_time_ratio"] > 0 and not math.isnan(x["ours_time_ratio"])
    assert rows["ours"]["info"]["region_stages_s"].keys() >= {"importance", "fit"}
    assert "UMAP (2-D)" in md and "feature space" in md


def test_embed_section_skips_a_size_it_predicts_to_exceed_the_limit(tmp_path: Path) -> None:
    from benchmarks.bench_embed import estimate

    runs = [
        {"status": "ok", "n": 1_000, "fit_s": 2.0},
        {"status": "ok", "n": 10_000, "fit_s": 40.0},
    ]
    # t ~ n^b with b = log(20)/log(10) from the two runs: 40 s * 10^1.30 = 800 s at 10^5
    assert estimate("tsne_sklearn", runs, 100_000) == pytest.approx(800.0, rel=1e-6)
    assert estimate("pca", runs[:1], 4_000) == pytest.approx(8.0)  # one run: default exponent 1


def test_memory_section_reports_peak_rss_per_stage(tmp_path: Path) -> None:
    r, md = run_section(tmp_path, "memory")
    stages = r["stages"]
    assert list(stages) == [
        "start",
        "data (uint8 images) + model",
        "Study(...)",
        "capture()",
        "embed()",
    ]
    peaks = [s["peak_rss_mb"] for s in stages.values()]
    assert peaks == sorted(peaks)  # peak RSS so far never decreases
    assert r["store_after_embed_mb"] > r["store_after_capture_mb"] > 0
    assert "peak RSS so far" in md


def test_region_section_times_ours_early_stopping_and_the_reference_and_compares_their_results(
    tmp_path: Path,
) -> None:
    r, md = run_section(tmp_path, "region")
    rows = {x["variant"]: x for x in r["rows"]}
    assert set(rows) == {"ours", "ours_tol", "reference"}
    for x in rows.values():
        assert x["status"] == "ok", x
        assert x["region_stages_s"].keys() >= {"importance", "fit"} and x["region_fit_s"] > 0
        assert x["region_fit_cpu_s"] > 0 and x["kp_per_image"] >= 0
    assert rows["ours_tol"]["tol"] is not None and rows["ours"]["tol"] is None
    a = r["agreement_with_reference"]["ours"]  # the same computation: the same picture
    assert a["h_cosine_median"] > 0.99 and a["w_equal_share"] > 0.99
    assert -1.0 <= a["h_cosine_p05"] <= a["h_cosine_median"] <= 1.0
    assert "reference" in md and "tol" in md


@pytest.mark.e2e
def test_display_section_times_both_widgets_at_every_size(tmp_path: Path) -> None:
    pytest.importorskip(
        "jscatter", reason="jupyter-scatter is a bench extra: pip install -e '.[bench]'"
    )
    r, md = run_section(tmp_path, "display")
    # two sizes: in one page the second size's notebook once never ran its first cell
    assert sorted({x["n"] for x in r["rows"]}) == [2_000, 3_000]
    for n in (2_000, 3_000):
        rows = {x["widget"]: x for x in r["rows"] if x["n"] == n}
        assert set(rows) == {"ours", "jscatter", "floor"}  # floor: a trivial anywidget
        for w, x in rows.items():
            assert x["status"] == "ok", (n, w, x)
            assert 0 < x["first_draw_call_s"] <= x["first_frame_s"]
            assert x["plot_css_px"][0] > 100 and x["plot_css_px"][1] > 100
            if w != "floor":
                assert x["pan"]["frames"] >= 2, (
                    n,
                    w,
                    x["pan"],
                )  # the drag redrew every point at least twice
        # the same plot area for every widget (ours measured first, then given to the others)
        assert abs(rows["jscatter"]["plot_css_px"][0] - rows["ours"]["plot_css_px"][0]) <= 8
        assert rows["ours"]["first_frame_vs_jscatter"] > 0
        # the bytes read from the websocket frames: bundle, widget data and Jupyter's own add up to
        # what arrived; the bundle travels escaped, so at least its file's length; the floor widget
        # (no data) sends almost nothing of its own
        for w, x in rows.items():
            assert "bytes_received" in x, (n, w, x)  # the frames were read, not estimated
            got = x["bytes_received"]
            assert got["bundle"] + got["widget"] + got["jupyter"] == got["total"], (w, got)
            assert got["widget"] > 0 and got["jupyter"] > 0, (w, got)
        file_bytes = r["bundle_bytes"]["ours"]
        assert rows["ours"]["bytes_received"]["bundle"] >= file_bytes
        assert rows["floor"]["bytes_received"]["widget"] < 4000  # ipywidgets state (+ Layout)
        assert rows["ours"]["data_bytes_per_point"] >= 8  # the points alone are 8 B each
    path = rows["ours"].get("point_path")
    assert path in ("cpu", "gpu"), path  # the table names the point path ours drew with
    assert f"| ours ({path} points) |" in md and "| jscatter |" in md and "| floor |" in md


@pytest.mark.e2e
def test_scrub_section_measures_a_cache_miss_and_a_prefetched_step(tmp_path: Path) -> None:
    r, md = run_section(tmp_path, "scrub")
    rows = {x["prefetch"]: x for x in r["rows"] if x["widget"] == "ours"}
    assert set(rows) == {"off (cache miss)", "on (prefetched neighbour)"}
    for x in rows.values():
        assert x["status"] == "ok", x
        assert x["steps"] == len(x["latencies_ms"]) >= 1 and min(x["latencies_ms"]) > 0
    assert "cache miss" in md


def test_scrub_report_judges_each_prefetched_switch_against_its_size_target() -> None:
    from benchmarks.report import _scrub_targets

    def row(widget: str, n: int, median: float, prefetch: str = "on (prefetched neighbour)"):
        return {
            "kind": "layer" if "layer" in widget else "epoch",
            "widget": widget,
            "n": n,
            "prefetch": prefetch,
            "status": "ok",
            "median_ms": median,
            "max_ms": median + 1,
        }

    lines = _scrub_targets(
        [
            row("ours", 100_000, 99.0),
            row("ours", 100_000, 500.0, prefetch="off (cache miss)"),  # not a target
            row("ours · layer switch", 100_000, 101.0),
            row("ours-gpu · layer switch", 100_000, 10.0),  # not the default path
            row("ours · epoch switch", 1_000_000, 299.0),
            row("ours · layer switch", 1_000_000, 301.0),
        ]
    )
    assert lines == [
        "epoch switch at 100,000 points: median 99.0 ms, max 100.0 ms (target ≤ 100 ms: met)",
        "layer switch at 100,000 points: median 101.0 ms, max 102.0 ms (target ≤ 100 ms: NOT met)",
        "epoch switch at 1,000,000 points: median 299.0 ms, max 300.0 ms (target ≤ 300 ms: met)",
        "layer switch at 1,000,000 points: median 301.0 ms, max 302.0 ms (target ≤ 300 ms: NOT met)",
    ]


def test_training_section_trains_every_recipe_and_times_threads(tmp_path: Path) -> None:
    import patternviz_widget as pv

    r, md = run_section(tmp_path, "training")
    assert [x["recipe"] for x in r["rows"]] == list(pv.models.RECIPES)
    for x in r["rows"]:
        assert (
            0.0 <= x["test_accuracy"] <= 1.0 and x["threads"] >= 1 and x["steps"] == 2
        )  # 128 images, batches of 64
        assert x["seconds"] > 0 and x["cpu_seconds"] > 0
        t = x["thread_timing"]
        assert t["median_ms_1"] > 0 and t["median_ms_2"] > 0 and t["macs_per_image"] > 1e6
        assert f"| {x['recipe']} | **{x['test_accuracy']:.3f}**" in md


def test_quickstart_section_times_ours_against_the_reference_path_on_the_same_weights(
    tmp_path: Path,
) -> None:
    res, md = run_section(tmp_path, "quickstart", timeout=600)
    assert res["train"]["status"] == "ok"
    for variant in ("ours", "reference"):
        q = res["quiet"][variant]
        assert (
            q["embed_s"] > 0 and q["embed_cpu_s"] > 0 and set(q["layers"]) == set(res["agreement"])
        )
    for layer, a in res["agreement"].items():  # the same objective, the same seed: the same picture
        assert a["median_cos_h"] > 0.99, (layer, a)
        assert a["kp_ours"] == pytest.approx(a["kp_reference"], abs=0.05), (layer, a)
    assert "reference / ours" in md and "| ours |" in md and "| reference |" in md
    # the notebook's own first cell, run end to end in a fresh interpreter (at its FAST setting here)
    nbc = res["notebook_cell"]
    assert nbc["setting"].startswith("FAST") and nbc["repeats"] == 1
    assert nbc["cell_s"] > 0 and nbc["cell_cpu_s"] > 0
    assert "end to end in a fresh interpreter" in md
