"""κ_m of the importance fit scaled with the channel count (the method docs: "Where we differ").

On a real trained SmallVGG (digits), the official κ_m = 1000 at our layers' K = 16–64 channels makes
the importance loss rise from its first step, so the best-iterate guard returns the uniform start:
w and v do nothing. κ_m = 1000·K/512 (the default) makes it fall and w leave uniform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layer_problem():
    import patternviz_widget as pv
    from patternviz_widget.engine.method import packing as pk
    from patternviz_widget.engine.method.embed import as_target_probs
    from patternviz_widget.results import SAMPLE, RegionRecord, SampleRecord

    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=1, num_classes=10, widths=(8, 16, 32), hidden=64)
    pv.models.train(
        net, pv.datasets.digits("train", size=16), epochs=3, progress=False, device="cpu"
    )
    study = pv.Study(
        net,
        pv.datasets.digits("test", size=16),
        layers=net.default_layers,
        num_classes=10,
        max_images=120,
        regions_per_image=16,
        device="cpu",
    )
    study.capture(progress=False)
    out = {}
    for key in study.store.find(RegionRecord):
        rec = study.store.get(key, RegionRecord)
        logits = study.store.get(key.replace(layer=SAMPLE), SampleRecord).logits
        p = torch.as_tensor(as_target_probs(logits, 4.0, "logits"))
        packed = pk.pack_regions(np.asarray(rec.features, np.float32), rec.image, 120)
        pg = pk.draw_partners(120, 100, 2020, 16)
        out[key.layer] = (packed, pg, pk.target_log_similarity(p, pg, 5.0))
    return out


def _fit(problem, kappa_m):
    from patternviz_widget.engine.method.importance import fit_importance

    packed, pg, log_t = problem
    w, v, hist, _ = fit_importance(packed, pg, log_t, kappa_m=kappa_m)
    uniform = packed.mask.float() / packed.mask.sum(1, keepdim=True)
    return (
        hist,
        float((w - uniform).abs().sum(1).mean()),
        float((v - 1 / v.shape[1]).abs().sum(1).mean()),
    )


def test_scaled_kappa_m_makes_the_importance_loss_fall_and_w_leave_uniform(layer_problem):
    from patternviz_widget.engine.method.kappa import importance_kappa_m

    for layer, problem in layer_problem.items():
        k = problem[0].shape[2]
        hist, w_move, v_move = _fit(problem, importance_kappa_m(None, k))
        assert hist[-1] < hist[0], (layer, hist[0], hist[-1])
        assert w_move > 0.2 and v_move > 0.2, (
            layer,
            w_move,
            v_move,
        )  # measured: w 0.44–0.65, v 0.66–0.87


def test_the_official_kappa_m_at_few_channels_rises_and_returns_the_uniform_start(layer_problem):
    layer, problem = next(iter(layer_problem.items()))  # the lowest stage: K = 8
    hist, w_move, v_move = _fit(problem, 1000.0)
    assert hist[-1] > 2 * hist[0], (layer, hist)
    assert w_move < 1e-6 and v_move < 1e-6, (layer, w_move, v_move)  # measured: exactly 0


def test_kappa_m_none_is_the_official_value_at_512_channels_and_bad_values_are_refused():
    from patternviz_widget.engine.method.kappa import importance_kappa_m
    from patternviz_widget.errors import InputError

    assert importance_kappa_m(None, 512) == 1000.0
    assert importance_kappa_m(None, 64) == 125.0
    assert importance_kappa_m(250, 64) == 250.0
    for bad in (0, -1.0, float("nan"), "1000", True):
        with pytest.raises(InputError, match="kappa_m must be None"):
            importance_kappa_m(bad, 64)
