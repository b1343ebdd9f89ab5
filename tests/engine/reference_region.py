"""Slow per-image reference of the region stage (paper Sec. 3.3), written loop by loop.

It follows the official code's structure — one image i at a time, one partner j at a time, the
R×R matching computed explicitly, probabilities formed by exp / normalise / power / product — in
float64, so the fast batched engine (patternviz_widget.engine.method.importance / region_embed) can be
checked against it. Only two things differ from the official code, both on purpose and both shared
with the fast path: the partners of each image are a given fixed list (instead of 100 redrawn per
step), and a max is subtracted before each exp (which leaves every normalised value unchanged but
keeps exp(κ_m·s) finite).
"""

from __future__ import annotations

import numpy as np
import torch


def unit_rows(f: torch.Tensor) -> torch.Tensor:
    return f / (f.norm(dim=1, keepdim=True) + 1e-8)


def target_probs(p: torch.Tensor, i: int, partners: list[int], kappa_p: float) -> torch.Tensor:
    """P(x_j|x_i) over the partners: exp(κ_p cos(p_i, p_j)) normalised."""
    u = p / p.norm(dim=1, keepdim=True)
    sims = torch.stack([(u[i] * u[j]).sum() for j in partners])
    e = torch.exp(kappa_p * (sims - sims.max()))
    return e / e.sum()


def match(fi: torch.Tensor, fj: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """r'(r) = argmax_r' Σ_k v_k fi[r, k] fj[r', k], from the explicit K×R×R product."""
    k = fi.shape[1]
    prod = fi.T[:, :, None] * fj.T[:, None, :]  # [K, R_i, R_j]
    scores = (prod * v.detach().reshape(k, 1, 1)).sum(0)
    return scores.argmax(dim=1)


def importance_loss(
    feats: list[torch.Tensor],
    i: int,
    partners: list[int],
    v: torch.Tensor,
    w: torch.Tensor,
    p: torch.Tensor,
    kappa_m: float,
    kappa_p: float,
) -> torch.Tensor:
    """KL(P(X2|x_i) ‖ P_i) of image i (feats: per-image region features, raw)."""
    fi = unit_rows(feats[i])
    cols = []
    for j in partners:
        fj = unit_rows(feats[j])
        rp = match(fi, fj, v)
        cols.append((v[None, :] * fi * fj[rp]).sum(1))  # [R_i]
    s = torch.stack(cols, dim=0)  # [J, R_i]
    e = torch.exp(kappa_m * (s - s.max(dim=0, keepdim=True).values))
    p_r = e / e.sum(dim=0, keepdim=True)
    prod = torch.prod(p_r ** w[None, :], dim=1)
    q = prod / prod.sum()
    t = target_probs(p, i, partners, kappa_p)
    return (t * (torch.log(t) - torch.log(q))).sum()


def region_loss(
    h: list[torch.Tensor],
    feats: list[torch.Tensor],
    i: int,
    partners: list[int],
    v: torch.Tensor,
    w: torch.Tensor,
    g: torch.Tensor,
    p: torch.Tensor,
    kappa,
    kappa_p: float,
    lambda_kl: float,
    lambda_mi: float,
) -> torch.Tensor:
    """λ_kl KL(P(X2|x_i) ‖ Q_Λ) + λ_mi L_align for image i; h: per-image embeddings (with grad)."""
    fi = unit_rows(feats[i])
    hi = h[i]
    ni = hi.norm(dim=1).detach()
    ui = hi / (ni[:, None] + 1e-8)
    kap = kappa(ni)
    cols = []
    for j in partners:
        rp = match(fi, unit_rows(feats[j]), v)
        hj = h[j][rp]
        uj = hj / (hj.norm(dim=1, keepdim=True).detach() + 1e-8)
        cols.append(kap * (ui * uj).sum(1))
    s = torch.stack(cols, dim=0)  # [J, R_i]
    e = torch.exp(s - s.max(dim=0, keepdim=True).values)
    q_r = e / e.sum(dim=0, keepdim=True)
    prod = torch.prod(q_r ** w[None, :], dim=1)
    q = prod / prod.sum()
    t = target_probs(p, i, partners, kappa_p)
    kl = (t * (torch.log(t) - torch.log(q))).sum()
    align = -(w * torch.cosine_similarity(hi, g[i][None, :], dim=1, eps=1e-8)).sum()
    return lambda_kl * kl + lambda_mi * align


def fit_lambda(
    feats: list[torch.Tensor],
    partners: list[list[int]],
    v: torch.Tensor,
    w: list[torch.Tensor],
    g: torch.Tensor,
    p: torch.Tensor,
    lam0: torch.Tensor,
    kappa,
    *,
    epochs: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    controller: float,
    kappa_p: float = 5.0,
    lambda_kl: float = 1.0,
    lambda_mi: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    """The official schedule: per epoch, every image once in shuffled order, one SGD step each."""
    lam = lam0.clone().double().requires_grad_(True)
    opt = torch.optim.SGD([lam], lr=lr, momentum=momentum, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for i in rng.permutation(len(feats)):
            h = [f.double() @ (lam / controller).T for f in feats]
            opt.zero_grad()
            loss = region_loss(
                h,
                feats,
                int(i),
                partners[i],
                v[i],
                w[i],
                g,
                p,
                kappa,
                kappa_p,
                lambda_kl,
                lambda_mi,
            )
            loss.backward()
            opt.step()
    return lam.detach()


def objective(
    feats: list[torch.Tensor],
    partners: list[list[int]],
    v: torch.Tensor,
    w: list[torch.Tensor],
    g: torch.Tensor,
    p: torch.Tensor,
    lam: torch.Tensor,
    kappa,
    controller: float,
    kappa_p: float = 5.0,
    lambda_kl: float = 1.0,
    lambda_mi: float = 0.1,
) -> float:
    """Σ_i of the region loss at Λ (the quantity both fits minimise)."""
    with torch.no_grad():
        h = [f.double() @ (lam.double() / controller).T for f in feats]
        return float(
            sum(
                region_loss(
                    h, feats, i, partners[i], v[i], w[i], g, p, kappa, kappa_p, lambda_kl, lambda_mi
                )
                for i in range(len(feats))
            )
        )
