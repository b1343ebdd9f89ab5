"""The Λ fit's closed-form gradient (paper Sec. 3.3 objective): equal to autograd's on the same
loss, with and without the scatter plan, and the SGD built on it takes the same steps as autograd
would (the previous implementation's loop), whether features and plans are cached or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine.test_region_embed import CONTROLLER, setup

from patternviz_widget.engine.method import kappa as kp
from patternviz_widget.engine.method import region_embed as RE

KAPPA = kp.LinearKappa(kp.REGION_KAPPA_MAX)


def group_rows(packed, pg, table, lam, gi):
    """h of group gi's members [G, Rm, 3], of its block's rows [P·Rm, 3], and the row each pair reads."""
    _, rm, _ = packed.shape
    m, b = pg.groups[gi], pg.blocks[gi]
    h_m = packed.feats[m] @ (lam / CONTROLLER).T
    h_rows = (packed.feats[b] @ (lam / CONTROLLER).T).reshape(-1, 3)
    flat = (torch.arange(b.numel()) * rm)[None, None, :] + table[m].long()
    return m, h_m, h_rows, flat


def autograd_terms(h_m, h_rows, flat, lt, pm, w, g, lambdas):
    h_m = h_m.clone().requires_grad_(True)
    h_rows = h_rows.clone().requires_grad_(True)
    total, _, _ = RE._region_loss_rows(h_m, h_rows, flat, lt, pm, w, g, KAPPA, *lambdas, None)
    d_m, d_rows = torch.autograd.grad(total, [h_m, h_rows])
    return float(total.detach()), d_m, d_rows


@pytest.mark.parametrize("group", [2, 4])  # 2: every block entry a partner; 4: masked block
@pytest.mark.parametrize("lambdas", [(1.0, 0.1), (1.0, 0.0), (0.0, 1.0)])
@pytest.mark.parametrize("plan", [True, False])
def test_closed_form_gradient_equals_autograd(group, lambdas, plan):
    _, _, _, g, _, packed, pg, log_t, _, w, table, lam = setup(group)
    for gi in range(len(pg.groups)):
        m, h_m, h_rows, flat = group_rows(packed, pg, table, lam, gi)
        h_m[0, 0] = 0.0  # a region with h = 0 (dead features): the align term's eps branch
        args = (flat, log_t[m], pg.pmask[m], w[m], g[m])
        want, d_m, d_rows = autograd_terms(h_m, h_rows, *args, lambdas)
        back = RE.scatter_plan(flat, h_rows.shape[0]) if plan else None
        got, g_m, g_rows = RE.region_grad_rows(h_m, h_rows, *args, KAPPA, *lambdas, None, back)
        assert float(got) == pytest.approx(want, rel=1e-6, abs=1e-7)
        for a, b in ((g_m, d_m), (g_rows, d_rows)):
            scale = max(float(b.abs().max()), 1e-12)
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5 * scale)
        assert float(d_rows.abs().max()) > 0 or lambdas[0] == 0.0  # a gradient worth comparing


def test_scatter_plan_sums_every_pair_into_the_row_it_reads():
    rng = np.random.default_rng(0)
    flat = torch.as_tensor(rng.integers(0, 7, size=(3, 4, 5)))
    vals = torch.as_tensor(rng.normal(size=(3, 4, 5))).float()
    order, offsets = RE.scatter_plan(flat, 9)  # rows 7 and 8 are read by no pair
    by_hand = torch.zeros(9).index_add_(0, flat.reshape(-1), vals.reshape(-1))
    sums = torch.nn.functional.embedding_bag(
        torch.zeros(order.numel(), dtype=torch.int32),
        torch.ones(1, 1),
        offsets,
        mode="sum",
        per_sample_weights=vals.reshape(-1)[order.long()],
    )[:, 0]
    np.testing.assert_allclose(sums.numpy(), by_hand.numpy(), rtol=1e-6, atol=1e-6)
    assert torch.equal(flat.reshape(-1)[order.long()], flat.reshape(-1).sort(stable=True).values)


def autograd_sgd(packed, lam0, pg, table, log_t, w, g, epochs, seed, lr=0.01, mom=0.9, wd=5e-4):
    """The Λ SGD as the previous implementation took it: autograd through h = Λ f / s_r."""
    _, rm, _ = packed.shape
    lam = lam0.clone().requires_grad_(True)
    buf = torch.zeros_like(lam)
    gen = torch.Generator().manual_seed(int(seed) + 2)
    history = []
    for _ in range(epochs):
        total = 0.0
        for gi in torch.randperm(len(pg.groups), generator=gen).tolist():
            m, h_m, h_rows, flat = group_rows(packed, pg, table, lam, gi)
            loss, _, _ = RE._region_loss_rows(
                h_m, h_rows, flat, log_t[m], pg.pmask[m], w[m], g[m], KAPPA, 1.0, 0.1, None
            )
            (grad,) = torch.autograd.grad(loss, lam)
            with torch.no_grad():
                buf.mul_(mom).add_(grad + wd * m.numel() * lam)
                lam.sub_(lr * buf)
            total += float(loss)
        history.append(total / packed.shape[0])
    return lam.detach(), history


def engine_sgd(case, lam, epochs, cache_mb, workers):
    """The engine's Λ SGD on a :func:`setup` case, the paper's hyper-parameters (Λ updated in place)."""
    _, _, _, g, _, packed, pg, log_t, _, w, table, _ = case
    return RE._sgd_batched(
        packed,
        lam,
        pg,
        RE.lambda_steps(packed, pg, table, log_t, w, g, cache_mb=cache_mb),
        log_t,
        w,
        g,
        KAPPA,
        epochs=epochs,
        lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        lambda_kl=1.0,
        lambda_mi=0.1,
        controller=CONTROLLER,
        seed=0,
        callback=lambda e: None,
        workers=workers,
    )


@pytest.mark.parametrize("group", [2, 4])
@pytest.mark.parametrize("cache_mb", [512.0, 0.0])  # 0: sums by index_add_
@pytest.mark.parametrize("workers", [1, 2])  # 2: half of each step's rows on a worker thread
def test_sgd_takes_the_same_steps_as_autograd(group, cache_mb, workers):
    case = setup(group)
    _, _, _, g, _, packed, pg, log_t, _, w, table, lam0 = case
    lam0 = lam0 / 20
    want_lam, want_hist = autograd_sgd(packed, lam0, pg, table, log_t, w, g, epochs=5, seed=0)
    lam = lam0.clone()
    hist = engine_sgd(case, lam, epochs=5, cache_mb=cache_mb, workers=workers)
    np.testing.assert_allclose(hist, want_hist, rtol=1e-5)
    np.testing.assert_allclose(lam.numpy(), want_lam.numpy(), rtol=1e-4, atol=1e-6)
    assert float((lam - lam0).abs().max()) > 1e-3  # Λ moved


def test_the_worker_thread_changes_no_value():
    case = setup(4)
    lams = [case[-1].clone() / 20 for _ in (1, 2)]
    hists = [engine_sgd(case, lam, 3, 0.0, workers) for lam, workers in zip(lams, (1, 2))]
    assert hists[0] == hists[1]  # bit for bit: the same halves, summed in the same order
    assert torch.equal(lams[0], lams[1])
