"""The importance fit's ∂/∂v on the CPU group path reads the partner rows in the search's dtype
(bfloat16 where the CPU has it) once a row has ``BF16_GRAD_MIN_CHANNELS`` channels: the gradient stays the float32 one to bf16 rounding, the scores
that enter the loss are unchanged, and a whole fit lands on nearly the same w and v."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patternviz_widget.engine.method import importance as imp
from patternviz_widget.engine.method.packing import (
    draw_partners,
    pack_regions,
    target_log_similarity,
)


def make_case(seed: int = 0, n: int = 24, r: int = 16, k: int = 512, classes: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    proto = rng.normal(size=(classes, k))
    on = rng.random((n, r)) < 0.4
    feats = rng.normal(size=(n, r, k)) + on[..., None] * proto[y][:, None, :] * 1.5
    feats = np.maximum(feats, 0).reshape(-1, k).astype(np.float32)
    p = torch.softmax(torch.as_tensor(np.eye(classes)[y] * 2 + rng.normal(size=(n, classes))), 1)
    packed = pack_regions(feats, np.repeat(np.arange(n), r), n)
    pg = draw_partners(n, 8, seed=0, group_size=4)
    return packed, pg, target_log_similarity(p.float(), pg, 5.0), rng


def test_bf16_gradient_is_the_float32_one_to_rounding_and_scores_are_exact():
    packed, pg, log_t, rng = make_case()
    _, rm, k = packed.shape
    for members, block in zip(pg.groups, pg.blocks):
        v = torch.as_tensor(rng.dirichlet(np.ones(k), size=members.numel())).float()
        ds = torch.as_tensor(rng.normal(size=(members.numel(), rm, block.numel()))).float()
        table = imp._Group(packed, members, block, torch.float32).match(v)
        grads, scores = [], []
        for dtype in (torch.float32, torch.bfloat16):  # the same matches: only the dtype differs
            grp = imp._LocalGroup(packed, members, block, dtype)
            with imp.quiet_sparse():  # (as the fit calls it)
                grp.set_table(table)
                grads.append(grp.grad_v(ds))
                scores.append(grp.scores(v))
        g32, g16 = grads
        assert g16.dtype == torch.float32
        rel = float((g16 - g32).norm() / g32.norm())
        assert rel < 1e-2, rel  # bf16 rows and weights: ~2⁻⁸ relative per term, float32 sums
        assert rel > 0  # the bf16 path was taken
        torch.testing.assert_close(scores[1], scores[0], rtol=0, atol=0)


def test_a_bf16_fit_lands_near_the_float32_one():
    """bf16 search and ∂/∂v (the CPU fast path) against float32 throughout: the loss of the
    weights returned (each image's best iterate) within 3 % of float32's (the walk on the simplex
    is not smooth, so single weights may part: printed, not asserted)."""
    packed, pg, log_t, _ = make_case(1)
    res = {}
    for name in ("float32", "bfloat16"):
        w, v, hist, _ = imp.fit_importance(
            packed, pg, log_t, steps=20, lr=0.05, path="groups", match_dtype=name
        )
        final, *_ = imp.importance_grad(packed, pg, log_t, v, w, 1000.0)
        res[name] = (w, v, hist, float(final.mean()))
    (w0, v0, h0, f0), (w1, v1, _, f1) = res["float32"], res["bfloat16"]
    top_same = float((w0.argmax(1) == w1.argmax(1)).float().mean())
    cos_v = float(torch.nn.functional.cosine_similarity(v0, v1, dim=1).min())
    print(
        f"loss of the returned weights: float32 {f0:.4f}, bf16 {f1:.4f} (uniform start {h0[0]:.4f}); "
        f"|Δw| max {float((w0 - w1).abs().max()):.2e}; top region equal {top_same:.2f}; "
        f"min cos(v) {cos_v:.4f}"
    )
    assert f1 == pytest.approx(f0, rel=0.03)
    assert f1 < 0.8 * h0[0]  # and both well below the uniform start


def test_below_the_channel_threshold_the_gradient_stays_float32():
    packed, pg, _, rng = make_case(k=imp.BF16_GRAD_MIN_CHANNELS // 2)
    members, block = pg.groups[0], pg.blocks[0]
    grp = imp._LocalGroup(packed, members, block, torch.bfloat16)
    with imp.quiet_sparse():
        grp.set_table(grp.grp.match(torch.full((members.numel(), packed.shape[2]), 0.1)))
    assert grp.b_g.dtype == torch.float32
