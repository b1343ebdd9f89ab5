"""The Λ fit's step as it was before it embedded only the matched partner rows: the reference path
of ``benchmarks.bench_region`` and ``benchmarks.bench_quickstart`` (the same objective, the same
batches and updates).

Per partner group and step it embeds the whole partner block as f Λᵀ (the block's features
gathered with advanced indexing unless they fit the cache) and gathers the matched rows from it;
the gradient is autograd's. Everything else comes from the engine.
"""

from __future__ import annotations

import torch

from patternviz_widget.engine.method import kappa as kp
from patternviz_widget.engine.method.packing import masked_kl, masked_log_softmax, product_mixture

_EPS = 1e-8


def region_loss(
    h_m: torch.Tensor,
    h_b: torch.Tensor,
    table: torch.Tensor,
    log_t: torch.Tensor,
    pmask: torch.Tensor,
    w: torch.Tensor,
    g: torch.Tensor,
    kappa,
    lambda_kl: float = 1.0,
    lambda_mi: float = 0.1,
    mask_kind: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, Σ KL, Σ L_align) summed over one partner group's G member images.

    h_m: [G, Rm, d] embeddings of the members' regions; h_b: [P, Rm, d] of the group's partner
    block; table [G, Rm, P] r'; log_t [G, P] target log-similarities; pmask [G, P] partners;
    w [G, Rm] region importance (0 on padding); g [G, d] sample embeddings; kappa: region κ;
    mask_kind: "none" / "all" / "some" when the caller knows how much of ``pmask`` is set (saves
    a device-to-host read per call on a GPU), None to look.
    """
    align = -(w * torch.cosine_similarity(h_m, g[:, None, :], dim=2, eps=_EPS)).sum()
    n_b, rm, d = h_b.shape
    if mask_kind is None:
        mask_kind = _mask_kind(pmask)
    if n_b == 0 or mask_kind == "none":
        return lambda_mi * align, h_m.new_zeros(()), align
    # unit vectors first (norms detached, as in the official code), then one gather of the matched partner rows
    u_b = (h_b / (h_b.norm(dim=2, keepdim=True).detach() + _EPS)).reshape(n_b * rm, d)
    flat = (torch.arange(n_b, device=h_b.device) * rm)[None, None, :] + table  # [G, Rm, P]
    u_p = u_b.index_select(0, flat.reshape(-1)).view(*table.shape, d)
    n_i = h_m.norm(dim=2).detach()
    u_i = h_m / (n_i[..., None] + _EPS)
    cos = (u_p * u_i[:, :, None, :]).sum(
        -1
    )  # [G, Rm, P] (d = 3: elementwise beats a batched matmul)
    logits = kp.evaluate(kappa, n_i)[..., None] * cos
    if mask_kind == "all":
        log_q = torch.log_softmax((w[:, :, None] * torch.log_softmax(logits, dim=2)).sum(1), dim=1)
        kl = (log_t.exp() * (log_t - log_q)).sum()
    else:
        log_q = product_mixture(masked_log_softmax(logits, pmask), w, pmask)
        kl = masked_kl(log_t, log_q, pmask)
    return lambda_kl * kl + lambda_mi * align, kl, align


def _mask_kind(pmask: torch.Tensor) -> str:
    return "all" if bool(pmask.all()) else "some" if bool(pmask.any()) else "none"


def _sgd_batched(
    packed,
    lam,
    pg,
    table,
    log_t,
    w,
    g,
    kfun,
    *,
    epochs,
    lr,
    momentum,
    weight_decay,
    lambda_kl,
    lambda_mi,
    controller,
    seed,
    callback,
    cache_mb: float = 512.0,
    tol: float | None = None,
) -> list[float]:
    """Minibatch SGD with momentum on Λ, one partner group per step (see the module docstring);
    returns the mean loss per image of every epoch (``tol`` is accepted and ignored: all epochs). ``cache_mb``: the groups' and partner blocks'
    features are sliced once when they fit in this many MiB, else gathered at every step."""
    n, rm, k = packed.shape
    buf = torch.zeros_like(lam)
    gen = torch.Generator().manual_seed(int(seed) + 2)
    history = []
    # every group's constants, sliced once (the block's features too while they fit the budget)
    block_bytes = sum((m.numel() + b.numel()) * rm * k * 4 for m, b in zip(pg.groups, pg.blocks))
    keep_feats = block_bytes <= cache_mb * 2**20
    consts = []
    for m, b in zip(pg.groups, pg.blocks):
        f_m, f_b = (packed.feats[m], packed.feats[b]) if keep_feats else (None, None)
        pm = pg.pmask[m]
        consts.append((m, b, f_m, f_b, table[m], log_t[m], pm, w[m], g[m], _mask_kind(pm)))
    for epoch in range(int(epochs)):
        total = torch.zeros((), dtype=torch.float64, device=lam.device)  # read once per epoch
        for gi in torch.randperm(len(pg.groups), generator=gen).tolist():
            m, b, f_m, f_b, tab, lt, pm, wm, gm, kind = consts[gi]
            lam_s = lam / controller
            h_m = (packed.feats[m] if f_m is None else f_m) @ lam_s.T
            h_b = (packed.feats[b] if f_b is None else f_b) @ lam_s.T
            loss, _, _ = region_loss(
                h_m, h_b, tab, lt, pm, wm, gm, kfun, lambda_kl, lambda_mi, kind
            )
            (grad,) = torch.autograd.grad(loss, lam)
            with torch.no_grad():
                grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
                buf.mul_(momentum).add_(grad + weight_decay * pg.groups[gi].numel() * lam)
                lam.sub_(lr * buf)
            total += loss.detach()
        history.append(float(total) / max(n, 1))
        callback(epoch)
    return history
