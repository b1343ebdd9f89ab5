"""The importance fit as it was before its closed-form, all-images steps: the reference path of
``benchmarks.bench_quickstart`` (the same objective, the same r' schedule and best-iterate rule).

Per partner group and step it builds the sparse pattern of the matched pairs again (transposed
layout, one argsort), scores them with a sampled product, takes the gradient of the loss by
autograd and the gradient of v with a second sparse product. Everything it shares with the engine
(the group's search and products, the loss, the projection, the matching table) is imported from
:mod:`patternviz_widget.engine.method.importance`, so only the step differs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from patternviz_widget._validate import check_positive_int
from patternviz_widget.engine.method.importance import (
    _Group,
    importance_loss_from_scores,
    matching_table,
    project_simplex,
    resolve_match_dtype,
    table_dtype,
)
from patternviz_widget.engine.method.packing import PackedRegions, PartnerGroups


def importance_grad(
    packed: PackedRegions,
    pg: PartnerGroups,
    log_t: torch.Tensor,
    v: torch.Tensor,
    w: torch.Tensor,
    kappa_m: float,
    dtype: torch.dtype = torch.float32,
    table: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (loss_i per image [N], ∂/∂v [N, K], ∂/∂w [N, Rm], r' table [N, Rm, P]) at (v, w).

    ``table``: score with these matches instead of searching (the steps between two searches of
    :func:`fit_importance`); it is returned as is."""
    n, rm, k = packed.shape
    gv, gw = torch.zeros_like(v), torch.zeros_like(w)
    out_table = (
        torch.zeros((n, rm, pg.p), dtype=table_dtype(rm), device=v.device)
        if table is None
        else table
    )
    losses = torch.zeros(n, dtype=torch.float64, device=v.device)
    for members, gpart in zip(pg.groups, pg.blocks):
        grp = _Group(packed, members, gpart, dtype)
        if table is None:
            rp = out_table[members] = grp.match(v[members])
        else:
            rp = table[members]
        s = grp.scores(v[members], rp).detach().requires_grad_(True)
        wm = w[members].detach().requires_grad_(True)
        loss = importance_loss_from_scores(s, wm, log_t[members], pg.pmask[members], kappa_m)
        ds, dw = torch.autograd.grad(loss.sum(), (s, wm))
        gv[members] = grp.grad_v(ds, rp)
        gw[members] = dw * packed.mask[members]  # padding slots: exactly 0 (round-off otherwise)
        losses[members] = loss.detach().double()
    return losses, gv, gw, out_table


def fit_importance(
    packed: PackedRegions,
    pg: PartnerGroups,
    log_t: torch.Tensor,
    *,
    steps: int = 20,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    kappa_m: float = 1000.0,
    match_dtype: str = "auto",
    rematch_every: int = 0,
    callback: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float], torch.Tensor]:
    """Return (w [N, Rm], v [N, K], loss per step, r' table [N, Rm, P]): per-image importance of
    regions and channels, and the region-matching table searched under the returned v.

    Minimises KL(P(X2|x_i) ‖ P_i) per image i (paper Sec. 3.3) with P_i(j) ∝ Π_r P_i^(r)(j)^(w_r),
    P_i^(r)(j) ∝ exp(κ_m Σ_k v_k f̂_i^(k,r) f̂_j^(k,r')), from w = 1/R_i, v = 1/K; after every
    SGD step w and v are projected back onto the simplex (abs + L1 normalisation).

    Ours: per image, the (w_i, v_i) returned are the evaluated iterate with the LOWEST loss (the
    uniform start included). With κ_m = 1000 the gradients reach the hundreds, so the paper's lr 0.05 steps far
    past the simplex scale (entries ~1/K) and the abs projection makes the walk non-monotone — on
    small cases the loss then rises from the start; keeping the best iterate never returns
    weights worse than uniform. ``history`` still records every step's loss as it was.

    The table returned is always r' under the returned v: the search done at that iterate when it
    was fresh, else searched again for those images only (so no final search over all images).

    Args:
        packed, pg, log_t: from :func:`pack_regions`, :func:`draw_partners`,
            :func:`target_log_similarity`.
        steps: SGD steps per image (paper: 20). lr / momentum / weight_decay: SGD (paper: 0.05,
            0.9, 5e-4). kappa_m: κ_m (paper: 1000).
        match_dtype: see :func:`resolve_match_dtype`.
        rematch_every: 0 (default, ours: the table is searched once) = search r' at the
            start (v = 1/K: plain cosine matching) and score every step with that table; k > 0 =
            search again with the current v every k steps (1 = the official code, which searches
            at every step: the O(N·J·R²·K) search then costs ~20× everything else — 507 s vs
            126 s for 500 images × 196 regions × 512 channels on 2 CPU cores). Either way the
            table returned is searched under the v returned.
        callback: called with the step index after every step.
    """
    every = check_positive_int(
        rematch_every, "rematch_every (0: search r' once; k: every k steps)", minimum=0
    )
    n, rm, k = packed.shape
    dev = packed.unit.device
    v = torch.full((n, k), 1.0 / k, device=dev)
    w = packed.mask.float() / packed.mask.sum(1, keepdim=True).clamp(min=1)
    history: list[float] = []
    if pg.j == 0 or steps == 0:
        return w, v, history, matching_table(packed, pg, v, match_dtype)
    dtype = resolve_match_dtype(match_dtype, dev)
    buf_v, buf_w = torch.zeros_like(v), torch.zeros_like(w)
    table = None
    best_loss = torch.full((n,), float("inf"), dtype=torch.float64, device=dev)
    best_w, best_v = w.clone(), v.clone()
    best_table = torch.zeros((n, rm, pg.p), dtype=table_dtype(rm), device=dev)
    best_fresh = torch.zeros(n, dtype=torch.bool, device=dev)  # best_table searched at best_v
    for step in range(int(steps)):
        fresh = table is None or (every > 0 and step % every == 0)
        loss, gv, gw, table = importance_grad(
            packed, pg, log_t, v, w, kappa_m, dtype, None if fresh else table
        )
        better = loss < best_loss  # per image: the iterate just evaluated (before this update)
        best_loss = torch.where(better, loss, best_loss)
        best_w[better], best_v[better] = w[better], v[better]
        best_fresh[better] = fresh
        if fresh:  # (a stale table is not kept: those images are searched again at the end)
            best_table[better] = table[better]
        for x, g, buf in ((v, gv, buf_v), (w, gw, buf_w)):
            g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) + weight_decay * x
            buf.mul_(momentum).add_(g)
            x.sub_(lr * buf)
        project_simplex(v)
        project_simplex(w, packed.mask)
        history.append(float(loss.sum()) / max(n, 1))
        if callback is not None:
            callback(step)
    if not bool(best_fresh.all()):
        matching_table(packed, pg, best_v, match_dtype, only=~best_fresh, out=best_table)
    return best_w, best_v, history, best_table
