"""The layers of one epoch fitted side by side (``study.embed(workers=...)``): the same values as one
after another, each stored as it finishes, a failing layer not losing the others."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import patternviz_widget as pv
from patternviz_widget.errors import InputError
from patternviz_widget.pipeline import embed as pipeline_embed
from patternviz_widget.results import RegionEmbedding, SampleEmbedding

SMALL = {"region_epochs": 2, "importance_steps": 3, "partners": 10, "steps": 300}


def _study() -> pv.Study:
    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=1, num_classes=10, widths=(8, 16, 16))
    study = pv.Study(
        net,
        pv.datasets.digits("test", size=16),
        layers=net.default_layers,
        num_classes=10,
        max_images=60,
        device="cpu",
    )
    study.capture(progress=False)
    return study


def _regions(study: pv.Study) -> dict[str, RegionEmbedding]:
    store = study.store
    return {k.layer: store.get(k, RegionEmbedding) for k in store.find(RegionEmbedding)}


def test_layers_fitted_two_at_a_time_equal_those_fitted_one_after_another():
    one, two = _study(), _study()
    w1 = one.embed(progress=False, workers=1, **SMALL)
    w2 = two.embed(progress=False, workers=2, **SMALL)
    assert w1 == w2 and len(w1) == 1 + 3  # the sample embedding and three layers, in fit order
    r1, r2 = _regions(one), _regions(two)
    assert set(r1) == set(r2) == set(one.layers)
    for layer in r1:
        for name in ("h", "w", "Lambda"):
            a, b = getattr(r1[layer], name), getattr(r2[layer], name)
            assert np.array_equal(a, b), (layer, name, float(np.abs(a - b).max()))
        assert r1[layer].params["temperature"] == r2[layer].params["temperature"] == 4.0
    # the same knowledge points, read as the widget reads them
    for layer in one.layers:
        assert one.knowledge_points(layer).mean_total == two.knowledge_points(layer).mean_total


def test_a_layer_that_fails_leaves_the_others_stored_and_a_rerun_fits_only_it(monkeypatch):
    study = _study()
    real = pipeline_embed.fit_region_embedding
    records = study.store.find(pv.results.RegionRecord)
    widths = {k: np.shape(study.store.get(k, pv.results.RegionRecord).features)[1] for k in records}
    failing = min(widths, key=widths.get)  # (the narrowest: 8 channels, the others 16)
    width = widths[failing]
    assert sorted(widths.values()).count(width) == 1  # only that layer fails

    def failing_for_one_layer(features, *a, **k):
        if np.asarray(features).shape[1] == width:
            raise RuntimeError("out of memory (injected)")
        return real(features, *a, **k)

    monkeypatch.setattr(pipeline_embed, "fit_region_embedding", failing_for_one_layer)
    with pytest.raises(RuntimeError, match="injected"):
        study.embed(progress=False, workers=2, **SMALL)
    stored = set(_regions(study))
    assert study.store.has(failing.replace(layer=pv.results.keys.SAMPLE), SampleEmbedding)
    assert failing.layer not in stored
    assert stored == set(study.layers) - {failing.layer}, stored  # the other two were kept

    monkeypatch.setattr(pipeline_embed, "fit_region_embedding", real)
    written = study.embed(progress=False, workers=2, **SMALL)
    assert written == [failing]  # nothing else refitted


def test_auto_fits_one_at_a_time_where_two_at_once_would_not_pay_or_fit():
    study = _study()
    state, todo = study.state, sorted(study.store.find(pv.results.RegionRecord))
    kw = {"device": "cpu"}
    assert pipeline_embed._region_workers(state, todo, "paper", kw, False, 3) == 3
    assert pipeline_embed._region_workers(state, todo, "umap", kw, False, 3) == 1  # its own threads
    assert pipeline_embed._region_workers(state, todo, "paper", kw, True, 3) == 1  # warm start
    assert pipeline_embed._region_workers(state, todo, "pca", kw, False, "auto") == 1
    assert pipeline_embed._region_workers(state, todo[:1], "paper", kw, False, "auto") == 1
    given = {**kw, "threads": 2}  # the caller's thread count wins
    assert pipeline_embed._region_workers(state, todo, "paper", given, False, "auto") == 1
    tiny = {**kw, "memory_budget_mb": 0.01}  # two fits at once would hold more than allowed
    assert pipeline_embed._region_workers(state, todo, "paper", tiny, False, "auto") == 1


def test_an_interrupt_stops_the_running_fits_at_their_next_step(monkeypatch):
    """Ctrl-C lands on the main thread, which waits for the fits: they end at their next step
    instead of running to the end in the background, and nothing half-done is stored."""
    study = _study()
    real = pipeline_embed.fit_region_embedding
    finished = []

    def counted(*a, **k):
        out = real(*a, **k)
        finished.append(out)
        return out

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_embed, "fit_region_embedding", counted)
    monkeypatch.setattr(pipeline_embed, "wait", interrupted)  # the key press, while waiting
    with pytest.raises(KeyboardInterrupt):
        study.embed(progress=False, workers=2, **SMALL)
    assert finished == []  # both running fits stopped; without the stop they would finish
    assert _regions(study) == {}
    assert not [t for t in threading.enumerate() if t.name.startswith("pv-fit")]


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True])
def test_bad_workers_name_the_fix(bad):
    study = _study()
    with pytest.raises(InputError, match="workers must be 'auto' or a positive integer"):
        study.embed(progress=False, workers=bad, **SMALL)
