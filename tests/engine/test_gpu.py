"""The engine on CUDA computes what it computes on the CPU (tier ``gpu``: skipped without CUDA).

Same inputs and seeds on both devices; float32 reductions run in another order on the GPU, so
values agree to round-off, and the argmax search r' may break near-ties differently — the tests
compare the fitted objects (losses, embeddings, knowledge points), not bit patterns.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patternviz_widget.engine.method import importance as imp
from patternviz_widget.engine.method.embed import as_target_probs, fit_sample_embedding
from patternviz_widget.engine.method.packing import (
    draw_partners,
    pack_regions,
    target_log_similarity,
)
from patternviz_widget.engine.method.region_embed import fit_region_embedding

pytestmark = pytest.mark.gpu
GPU = "cuda"


def _case(n: int = 48, r: int = 16, k: int = 32, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    proto = np.maximum(rng.normal(size=(classes, k)), 0)
    on = rng.random((n, r)) < 0.5
    feats = np.maximum(rng.normal(size=(n, r, k)) * 0.3 + on[..., None] * proto[y][:, None, :], 0)
    logits = np.eye(classes)[y] * 6 + rng.normal(size=(n, classes))
    sample = feats.mean(1)
    return (
        feats.reshape(-1, k).astype(np.float32),
        np.repeat(np.arange(n), r),
        sample.astype(np.float32),
        logits.astype(np.float32),
        y,
    )


def test_importance_step_on_cuda_matches_the_cpu():
    feats, image, _, logits, _ = _case()
    n = logits.shape[0]
    p = torch.as_tensor(as_target_probs(logits, 4.0, "logits")).float()
    out = {}
    for dev in ("cpu", GPU):
        packed = pack_regions(feats, image, n, dev)
        pg = draw_partners(n, 20, seed=0, group_size=8, device=dev)
        log_t = target_log_similarity(p.to(dev), pg, 5.0)
        v = torch.full((n, feats.shape[1]), 1.0 / feats.shape[1], device=dev)
        w = packed.mask.float() / packed.mask.sum(1, keepdim=True)
        table = imp.matching_table(packed, pg, v, match_dtype="float32")
        loss, gv, gw, _ = imp.importance_grad(packed, pg, log_t, v, w, 1000.0, torch.float32, table)
        out[dev] = (table.cpu(), loss.cpu(), gv.cpu(), gw.cpu())
    (t0, l0, gv0, gw0), (t1, l1, gv1, gw1) = out["cpu"], out[GPU]
    assert float((t0 == t1).float().mean()) > 0.99  # near-ties may break the other way
    np.testing.assert_allclose(l1.numpy(), l0.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(gw1.numpy(), gw0.numpy(), rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(
        gv1.numpy(), gv0.numpy(), rtol=1e-2, atol=1e-2 * float(gv0.abs().max())
    )


def test_sample_and_region_fits_on_cuda_give_the_cpu_picture():
    feats, image, sample, logits, y = _case()
    p = as_target_probs(logits, 4.0, "logits")
    res = {}
    for dev in ("cpu", GPU):
        emb = fit_sample_embedding(sample, p, steps=400, device=dev, seed=0)
        reg = fit_region_embedding(
            feats,
            image,
            emb.g,
            p,
            epochs=4,
            importance_steps=4,
            partners=20,
            device=dev,
            seed=0,
            match_dtype="float32",
        )
        assert np.isfinite(reg.h).all() and isinstance(
            reg.h, np.ndarray
        )  # results come back to host
        res[dev] = (emb, reg)
    (e0, r0), (e1, r1) = res["cpu"], res[GPU]
    assert abs(e0.kl - e1.kl) < 0.05 * max(e0.kl, 1e-3)
    np.testing.assert_allclose(r1.params["loss_per_epoch"], r0.params["loss_per_epoch"], rtol=0.05)
    n0, n1 = np.linalg.norm(r0.h, axis=1), np.linalg.norm(r1.h, axis=1)
    cos = (r0.h * r1.h).sum(1) / np.maximum(n0 * n1, 1e-12)
    assert float(np.median(cos)) > 0.99


def test_study_captures_and_embeds_on_cuda_with_results_on_the_host():
    import patternviz_widget as pv

    data = pv.datasets.shapes(n=64, size=24, seed=0)
    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=3, num_classes=6, widths=(8, 16, 32), hidden=32)
    study = pv.Study(net, data, layers=net.default_layers, regions_per_image=8, device=GPU)
    study.capture(progress=False)
    study.embed(progress=False, fast=True, steps=200)
    kp = study.knowledge_points(net.default_layers[-1])
    assert np.isfinite(kp.posterior).all() and kp.per_image_total.shape == (64,)
    for arr in (kp.posterior, kp.strength):
        assert isinstance(arr, np.ndarray)  # results live on the host, in the study's store
