"""The regional embedding h = Λ f^(r) of one layer (paper Sec. 3.3): the fast, batched fit.

Objective per image i (official code): λ_kl·KL(P(X2|x_i) ‖ Q_Λ(X2|x_i)) + λ_mi·L_align(i) with
  q_i^(r)(j) ∝ exp(κ(‖h_i^(r)‖) cos(h_i^(r), h_j^(r'))) over the partners j,
  Q_Λ(j) ∝ Π_r q_i^(r)(j)^(w_i^(r)),   L_align(i) = −Σ_r w_i^(r) cos(h_i^(r), g_i),
norms detached inside κ and in the first cosine (as in the official code), and the region-matching table r'
fixed from the importance stage (:mod:`.importance`).

Batching (ours): the official code takes one SGD step per image (20 epochs × N steps). Here a step
takes one partner group of B images (:mod:`.packing`; groups visited in a fresh random order every
epoch) with the SUM of their losses and weight decay B·wd, same lr and momentum — to first order
in lr, the same update as B consecutive per-image steps. A step only embeds the regions of the
group and of its partner block, so its cost does not grow with N. The
per-image reference lives in ``tests/engine/reference_region.py``; tests check that both compute
the same loss and gradient and reach comparable objective values.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from patternviz_widget.engine.device import release_free_memory
from patternviz_widget.engine.method import kappa as kp
from patternviz_widget.engine.method.importance import (
    fit_importance,
    group_size_for,
    table_dtype,
)
from patternviz_widget.engine.method.packing import (
    PackedRegions,
    PartnerGroups,
    draw_partners,
    masked_kl,
    masked_log_softmax,
    pack_regions,
    product_mixture,
    target_log_similarity,
)
from patternviz_widget.engine.threads import resolve_threads, torch_threads
from patternviz_widget.errors import InputError
from patternviz_widget.results.records import RegionEmbedding

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
    n_b, rm, d = h_b.shape
    flat = (torch.arange(n_b, device=h_b.device) * rm)[None, None, :] + table  # [G, Rm, P]
    return _region_loss_rows(
        h_m,
        h_b.reshape(n_b * rm, d),
        flat,
        log_t,
        pmask,
        w,
        g,
        kappa,
        lambda_kl,
        lambda_mi,
        mask_kind,
    )


def _region_loss_rows(
    h_m: torch.Tensor,
    h_rows: torch.Tensor,
    flat: torch.Tensor,
    log_t: torch.Tensor,
    pmask: torch.Tensor,
    w: torch.Tensor,
    g: torch.Tensor,
    kappa,
    lambda_kl: float,
    lambda_mi: float,
    mask_kind: str | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`region_loss` with the partners' regions given as rows: h_rows [U, d] and, for every
    matched pair, the row it reads (flat [G, Rm, P], int64) — so a step embeds only the partner
    regions some member is matched to."""
    align = -(w * torch.cosine_similarity(h_m, g[:, None, :], dim=2, eps=_EPS)).sum()
    d = h_m.shape[-1]
    if mask_kind is None:
        mask_kind = _mask_kind(pmask)
    if h_rows.shape[0] == 0 or flat.numel() == 0 or mask_kind == "none":
        return lambda_mi * align, h_m.new_zeros(()), align
    # unit vectors first (norms detached, as in the official code), then one gather of the matched partner rows
    u_b = h_rows / (h_rows.norm(dim=1, keepdim=True).detach() + _EPS)
    u_p = u_b.index_select(0, flat.reshape(-1)).view(*flat.shape, d)
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


def region_grad_rows(
    h_m: torch.Tensor,
    h_rows: torch.Tensor,
    flat: torch.Tensor,
    log_t: torch.Tensor,
    pmask: torch.Tensor,
    w: torch.Tensor,
    g: torch.Tensor,
    kappa,
    lambda_kl: float,
    lambda_mi: float,
    mask_kind: str | None = None,
    back: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, ∂total/∂h_m, ∂total/∂h_rows) of :func:`_region_loss_rows` in closed form
    (no autograd; the same loss value).

    With c_irj the cosine of (i, r) and its matched partner row, κ_ir = κ(‖h_ir‖) (detached),
    ℓ_irj = log softmax_j(κ_ir c_irj), Q_i = softmax_j(Σ_r w_ir ℓ_irj) and T_i the target:
    ∂KL/∂c_irj = κ_ir w_ir (Q_ij − T_ij) (the softmax terms vanish because Q_i and T_i both sum
    to one over the partners). The norms in the first cosine are detached, so ∂/∂h_ir =
    Σ_j ∂c_irj · û_p / ‖h_ir‖ and ∂/∂h_u = Σ_(pairs reading u) ∂c · û_i / ‖h_u‖. The align
    term's gradient is torch's cosine_similarity backward: (ĝ − cos ĥ) / max(‖h‖, eps).

    ``back``: (the pairs in partner-row order [G·Rm·P], bag offsets [U]) from
    :func:`scatter_plan`: the sum over the pairs that read a partner row
    is then one ``embedding_bag`` (~4× faster on a CPU than ``index_add_``, used when None)."""
    gm, rm, d = h_m.shape
    with torch.no_grad():
        n_m = h_m.norm(dim=2)
        h_hat = h_m / n_m.clamp(min=_EPS)[..., None]
        g_hat = g / g.norm(dim=1, keepdim=True).clamp(min=_EPS)
        cos_g = (h_hat * g_hat[:, None, :]).sum(2)
        align = -(w * cos_g).sum()
        dh_m = (-lambda_mi * w)[..., None] * (g_hat[:, None, :] - cos_g[..., None] * h_hat)
        dh_m = dh_m / n_m.clamp(min=_EPS)[..., None]
        dh_rows = torch.zeros_like(h_rows)
        if mask_kind is None:
            mask_kind = _mask_kind(pmask)
        if h_rows.shape[0] == 0 or flat.numel() == 0 or mask_kind == "none":
            return lambda_mi * align, dh_m, dh_rows
        # coordinates first ([d, ...]): the products and sums over d = 3 are then elementwise over
        # long contiguous runs (~2× faster on a CPU than reductions over a last axis of 3)
        n_b = h_rows.norm(dim=1, keepdim=True) + _EPS
        u_bt = (h_rows / n_b).T.contiguous()  # [d, U]
        fl = flat.reshape(-1)
        u_pt = u_bt.index_select(1, fl).view(d, gm, rm, -1)  # [d, G, Rm, P]
        u_i = h_m / (n_m[..., None] + _EPS)
        u_it = u_i.permute(2, 0, 1).contiguous()[..., None]  # [d, G, Rm, 1]
        cos = (u_pt * u_it).sum(0)
        kap = kp.evaluate(kappa, n_m)
        logits = kap[..., None] * cos
        t = log_t.exp()
        if mask_kind == "all":
            log_q = torch.log_softmax(
                (w[:, :, None] * torch.log_softmax(logits, dim=2)).sum(1), dim=1
            )
            kl = (t * (log_t - log_q)).sum()
            e = log_q.exp() - t
        else:
            log_q = product_mixture(masked_log_softmax(logits, pmask), w, pmask)
            kl = masked_kl(log_t, log_q, pmask)
            e = torch.where(pmask, log_q.exp() - t, torch.zeros_like(t))
        dcos = (lambda_kl * kap * w)[:, :, None] * e[:, None, :]  # [G, Rm, P]
        dh_m += (dcos[None] * u_pt).sum(3).permute(1, 2, 0) / (n_m[..., None] + _EPS)
        if back is None:
            du = dh_rows.index_add_(0, fl, (dcos[..., None] * u_i[:, :, None, :]).reshape(-1, d))
        else:
            order, offsets = back
            du = torch.nn.functional.embedding_bag(
                torch.div(order, flat.shape[2], rounding_mode="floor"),  # the member row i·Rm + r
                u_i.reshape(-1, d),
                offsets,
                mode="sum",
                per_sample_weights=dcos.reshape(-1).index_select(0, order),
            )
        dh_rows = du / n_b
    return lambda_kl * kl + lambda_mi * align, dh_m, dh_rows


def scatter_plan(flat: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (order, offsets) for summing per-pair values into the partner rows they read: the
    flat indices of the pairs (i, r, j) sorted by their row ``flat`` [G, Rm, P] (stable), and
    where each of the ``n_rows`` rows' pairs start (``embedding_bag``'s bags). int32: half the
    memory, the same speed."""
    fl = flat.reshape(-1).long()
    order = torch.argsort(fl, stable=True)
    counts = torch.bincount(fl, minlength=n_rows)
    offsets = torch.zeros(n_rows, dtype=torch.long, device=flat.device)
    offsets[1:] = counts.cumsum(0)[:-1]
    return order.int(), offsets.int()


def _mask_kind(pmask: torch.Tensor) -> str:
    return "all" if bool(pmask.all()) else "some" if bool(pmask.any()) else "none"


def group_loss(
    packed: PackedRegions,
    lam_s: torch.Tensor,
    pg: PartnerGroups,
    gi: int,
    table: torch.Tensor,
    log_t: torch.Tensor,
    w: torch.Tensor,
    g: torch.Tensor,
    kappa,
    lambda_kl: float,
    lambda_mi: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return :func:`region_loss` of partner group ``gi`` with h = f @ lam_sᵀ (lam_s = Λ/s_r)."""
    m, b = pg.groups[gi], pg.blocks[gi]
    h_m = packed.feats[m] @ lam_s.T
    h_b = packed.feats[b] @ lam_s.T
    return region_loss(
        h_m, h_b, table[m], log_t[m], pg.pmask[m], w[m], g[m], kappa, lambda_kl, lambda_mi
    )


def embed_packed(packed: PackedRegions, lam: torch.Tensor, controller: float) -> torch.Tensor:
    """Return h [N, Rm, d] = Λ (f / s_r) for every packed slot (zeros on padding)."""
    return packed.feats @ (lam / controller).T


def default_init(k: int, dim: int, seed: int) -> torch.Tensor:
    """Return Λ [d, K] drawn like ``nn.Linear``'s default (U(±1/√K)), seeded (the paper sets none; nn.Linear's default)."""
    gen = torch.Generator().manual_seed(int(seed) + 1)
    bound = 1.0 / math.sqrt(max(k, 1))
    return (torch.rand(dim, k, generator=gen) * 2 - 1) * bound


def fit_region_embedding(
    features: np.ndarray,
    image: np.ndarray,
    sample_g: np.ndarray,
    probs: np.ndarray,
    *,
    epochs: int = 20,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    lambda_kl: float = 1.0,
    lambda_mi: float = 0.1,
    controller: float = 40.0,
    kappa: kp.KappaLike = None,
    kappa_p: float = 5.0,
    kappa_m: float | None = None,
    partners: int = 100,
    importance_steps: int = 20,
    importance_lr: float = 0.05,
    rematch_every: int = 0,
    batch_size: int = 16,
    init: np.ndarray | None = None,
    seed: int = 2020,
    device: str | torch.device | None = "cpu",
    memory_budget_mb: float = 1024.0,
    match_dtype: str = "auto",
    normalize_features: bool = False,
    threads: int | str = "auto",
    tol: float | None = None,
    callback: Callable[[str, int, int], None] | None = None,
) -> RegionEmbedding:
    """Return the paper's :class:`RegionEmbedding` of one layer: w, v, r' and Λ fitted (paper Sec. 3.3).

    Args:
        features: float[M, C] regional features f^(r) (RegionRecord rows; any subset per image).
        image: int[M] probe image of each row. sample_g: float[N, d] the images' sample
            embeddings g_i (align target). probs: float[N, K] P(Y|x) = softmax(z/T).
        epochs: passes over the images (paper: 20). lr / momentum / weight_decay: SGD of Λ
            (paper: 0.01, 0.9, 5e-4; per image step — see the module docstring for batching).
        lambda_kl: λ_kl (paper: 1). lambda_mi: λ_mi (paper: 0.1). controller: s_r in h = Λ(f/s_r)
            (paper: 40). kappa: region κ(l) (None: capped linear, κ_max = 1000).
        kappa_p: κ_p of the target similarity (paper: 5). kappa_m: κ_m of the importance stage;
            None (default, ours) = 1000·K/512, the official 1000 scaled with the layer's channel
            count K (see :func:`.kappa.importance_kappa_m`); a number is used as given.
            partners: J partners per image (paper: 100, redrawn; here fixed, seeded).
        importance_steps / importance_lr: the w, v fit (paper: 20 steps, lr 0.05, same momentum
            and weight decay). rematch_every: r' search schedule of that fit — 0 (default, ours;
            docs/method.md): searched once with v = 1/K, then again under the final v; 1: at every step, as
            the official code (≈4× slower at 500 × 196 × 512; see ``fit_importance``).
        batch_size: images per Λ step (ours). init: warm-start Λ (d×C, stored convention
            h = f @ Λ.T); None draws nn.Linear's default. seed: partners, batches and init
            (paper: 2020). device: where to fit. memory_budget_mb: chunking of the matching.
        match_dtype: precision of the r' argmax search (see ``importance.resolve_match_dtype``).
        normalize_features: fit Λ on channel-normalised features f^(r)/‖f^(r)‖ instead of raw
            f^(r) (h = Λ f̂ / s_r; projections of other conditions normalise the same way). The
            official code does this on a first, uncached run (it normalises the caller's tensor in
            place while building r'); its attack notebooks use raw f. Default False (raw f, as the
            paper's formula): bright low-layer activations then dominate ‖h‖.
        threads: torch threads on a CPU for the r' search (its products are large): "auto" = as
            many as the machine has idle cores now, at most torch's count; every other step runs
            on one thread (small operations; see :mod:`.threads`). A number sets the search's.
            On a CPU the importance fit's partner groups also run this many at once, one thread
            each (independent problems: the values do not change).
        tol: early stopping (ours; the paper's step counts stay the maximum): a partner group's
            importance fit stops once its summed loss changes by at most ``tol`` times its previous
            value between two steps, and the Λ fit once an epoch's mean loss does. None (default):
            the paper's counts (``importance_steps``, ``epochs``) always. The steps taken are in
            ``params["importance_steps_taken"]`` and ``params["epochs_taken"]``.
        callback: ``callback(stage, done, total)`` for progress ("importance", "match", "fit").

    Returns:
        RegionEmbedding with h [M, d] in the RegionRecord's row order, Λ (controller folded in:
        h = f @ Λ.T), w [M] (importance of each row within its image), mean_strength = mean ‖h‖,
        and params (hyper-parameters and the loss histories; the channel importance v is not
        kept — it is an intermediate of the fit, N×C floats).
    """
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < float("inf")
    ):
        raise InputError(
            f"tol must be None (the paper's step counts) or a relative change >= 0, e.g. 1e-3; got {tol!r}."
        )
    dev = torch.device(device) if device is not None else torch.device("cpu")
    search_threads = resolve_threads(threads, dev)
    with torch_threads(1 if dev.type == "cpu" else torch.get_num_threads()):
        return _fit_region_embedding(
            features,
            image,
            sample_g,
            probs,
            dev,
            search_threads,
            epochs=epochs,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            lambda_kl=lambda_kl,
            lambda_mi=lambda_mi,
            controller=controller,
            kappa=kappa,
            kappa_p=kappa_p,
            kappa_m=kappa_m,
            partners=partners,
            importance_steps=importance_steps,
            importance_lr=importance_lr,
            rematch_every=rematch_every,
            batch_size=batch_size,
            init=init,
            seed=seed,
            memory_budget_mb=memory_budget_mb,
            match_dtype=match_dtype,
            normalize_features=normalize_features,
            tol=tol,
            callback=callback,
        )


def _fit_region_embedding(
    features,
    image,
    sample_g,
    probs,
    dev,
    search_threads,
    *,
    epochs,
    lr,
    momentum,
    weight_decay,
    lambda_kl,
    lambda_mi,
    controller,
    kappa,
    kappa_p,
    kappa_m,
    partners,
    importance_steps,
    importance_lr,
    rematch_every,
    batch_size,
    init,
    seed,
    memory_budget_mb,
    match_dtype,
    normalize_features,
    tol,
    callback,
) -> RegionEmbedding:
    g_np = np.asarray(sample_g, dtype=np.float32)
    p_np = np.asarray(probs, dtype=np.float32)
    n = g_np.shape[0]
    if p_np.shape[0] != n:
        raise InputError(
            f"sample_g has {n} rows but probs has {p_np.shape[0]}; both are one row per image."
        )
    packed = pack_regions(features, image, n, dev)
    _, rm, k = packed.shape
    if init is not None and np.asarray(init).shape != (g_np.shape[1], k):
        raise InputError(
            f"init Λ must be d×C = {(g_np.shape[1], k)}, got {np.asarray(init).shape}."
        )
    kfun = kp.make_kappa(kappa, kp.REGION_KAPPA_MAX)
    j = max(0, min(int(partners), n - 1))
    pg = draw_partners(
        n, j, seed, min(int(batch_size), group_size_for(rm, j, memory_budget_mb)), dev
    )
    log_t = target_log_similarity(torch.as_tensor(p_np, device=dev), pg, kappa_p)
    cb = callback or (lambda *_: None)
    km = kp.importance_kappa_m(kappa_m, k)
    imp_stats: dict = {}
    w, v, imp_hist, table = fit_importance(
        packed,
        pg,
        log_t,
        steps=importance_steps,
        lr=importance_lr,
        momentum=momentum,
        weight_decay=weight_decay,
        kappa_m=km,
        match_dtype=match_dtype,
        rematch_every=rematch_every,
        callback=lambda s: cb("importance", s + 1, importance_steps),
        search_threads=search_threads,
        workers=search_threads,
        tol=tol,
        stats=imp_stats,
    )
    cb("match", 1, 1)  # the table comes with the fit: r' under the returned v
    # the Λ fit reads one of the two packed copies: the other goes (200 MB at 500 × 196 × 512)
    if normalize_features:
        packed = dataclasses.replace(packed, feats=packed.unit)
    else:
        packed = dataclasses.replace(packed, unit=packed.unit.new_empty((0,)))
    if dev.type == "cpu":
        release_free_memory()  # and what the importance stage freed, before the Λ fit's peak
    lam0 = (
        default_init(k, g_np.shape[1], seed)
        if init is None
        else torch.as_tensor(np.asarray(init, np.float32) * controller)
    )
    lam = lam0.to(dev).clone().requires_grad_(True)
    g = torch.as_tensor(g_np, device=dev)
    steps = lambda_steps(packed, pg, table, log_t, w, g, cache_mb=memory_budget_mb / 2)
    del table  # (what the steps read of it is in them)
    losses = _sgd_batched(
        packed,
        lam,
        pg,
        steps,
        log_t,
        w,
        g,
        kfun,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        lambda_kl=lambda_kl,
        lambda_mi=lambda_mi,
        controller=controller,
        seed=seed,
        callback=lambda e: cb("fit", e + 1, epochs),
        tol=tol,
        workers=search_threads,
    )
    with torch.no_grad():
        h_all = embed_packed(packed, lam, controller)
        h = packed.unpack(h_all).cpu().numpy()
        w_rows = packed.unpack(w).cpu().numpy()
    if dev.type == "cpu":  # the fit's pages back to the system before the next fit's peak
        del packed, steps, h_all
        release_free_memory()
    strength = float(np.linalg.norm(h, axis=1).mean()) if h.size else 1.0
    params = {
        "epochs": int(epochs),
        "lr": float(lr),
        "momentum": float(momentum),
        "weight_decay": float(weight_decay),
        "lambda_kl": float(lambda_kl),
        "lambda_mi": float(lambda_mi),
        "controller": float(controller),
        "kappa": kp.describe(kfun),
        "kappa_p": float(kappa_p),
        "kappa_m": None if kappa_m is None else float(kappa_m),
        "kappa_m_effective": float(km),
        "partners": pg.j,
        "importance_steps": int(importance_steps),
        "importance_lr": float(importance_lr),
        "rematch_every": int(rematch_every),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "match_dtype": str(match_dtype),
        "warm_start": init is not None,
        "Lambda_includes_controller": True,
        "normalize_features": bool(normalize_features),
        "loss_per_epoch": losses,
        "importance_loss_per_step": imp_hist,
        "partner_group_size": len(pg.groups[0]) if pg.groups else 0,
        "tol": None if tol is None else float(tol),
        "epochs_taken": len(losses),
        "importance_steps_taken": imp_stats.get("steps_taken"),
        "threads": int(search_threads),  # chosen from the idle cores at the start ("auto")
    }
    return RegionEmbedding(
        h=h.astype(np.float32),
        Lambda=(lam.detach().cpu().numpy() / controller).astype(np.float32),
        w=w_rows.astype(np.float32),
        mean_strength=strength if np.isfinite(strength) and strength > 0 else 1.0,
        method="paper",
        params=params,
    )


def lambda_steps(
    packed: PackedRegions,
    pg: PartnerGroups,
    table: torch.Tensor,
    log_t: torch.Tensor,
    w: torch.Tensor,
    g: torch.Tensor,
    cache_mb: float = 512.0,
) -> list[list]:
    """Return what every step of the Λ fit reads of its partner group, from the r' table
    [N, Rm, P]: members, the rows read (the members' own, then the partner rows they are matched
    to, each once), each pair's row among them, the group's targets, partner mask, w and g, and
    the backward's scatter plan (None where the plans of all groups would not fit in a quarter of
    ``cache_mb``). The table is not needed after it: :func:`_fit_region_embedding` lets it go
    before the Λ fit's peak."""
    rm = packed.shape[1]
    consts = []
    for m, b in zip(pg.groups, pg.blocks):
        # [G, Rm, P] the global rows read by the members
        glob = (b * rm)[None, None, :] + table[m].long()
        rows, flat = torch.unique(glob, return_inverse=True)
        # (a quarter or half the memory of int64; widened at each step: int64 gathers are faster)
        flat = flat.to(table_dtype(rows.numel()))
        pm = pg.pmask[m]
        # every row a step reads: the members' own (i·Rm + r), then the partner rows they match
        own = ((m * rm)[:, None] + torch.arange(rm, device=m.device)[None, :]).reshape(-1)
        reads = torch.cat([own, rows])
        consts.append([m, reads, flat, log_t[m], pm, w[m], g[m], _mask_kind(pm)])
    # the scatter plans (one int32 per matched pair, as many as the table's entries) are kept when
    # they fit in a quarter of cache_mb, else the backward sums with index_add_ (same values,
    # ~1.5-4× slower for that op; at 10^6 regions the plans would add 400 MB to the peak)
    n_pairs = sum(c[2].numel() for c in consts)
    keep_plans = n_pairs * 4 <= cache_mb * 2**20 / 4
    for c in consts:
        c.append(scatter_plan(c[2], c[1].numel() - c[0].numel() * rm) if keep_plans else None)
    return consts


def _sgd_batched(
    packed,
    lam,
    pg,
    steps,
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
    tol: float | None = None,
    workers: int = 1,
) -> list[float]:
    """Minibatch SGD with momentum on Λ, one partner group per step (see the module docstring);
    returns the mean loss per image of every epoch.

    A step embeds the members' regions and, of the partner block, only the regions some member is
    matched to (about 70 % of the block at 500 × 196 × 512): their rows are listed once per group
    and the table rewritten to index them. The gradient is in closed form (:func:`region_grad_rows`,
    no autograd): ∂/∂h of the loss, then ∂/∂Λ = (∂/∂h)ᵀ f / s_r — two products with the group's
    features (h = f (Λ/s_r)ᵀ forward, one more read of f back; 35 % less time than autograd's on
    an AMD EPYC at 500 × 196 × 512, same values to float rounding).

    ``steps``: :func:`lambda_steps` of the r' table. The feature rows a step reads are gathered at every step: a copy of
    them per group held ~6× the layer's features at the quickstart (49 MB of a fit's 89 MB) and
    was not faster (medians of 5, 1 thread, 5 epochs: 450 × 64 × 64 0.83 s either way;
    2,000 × 64 × 128 4.38 s kept, 4.44 s gathered; 1,000 × 49 × 256 2.34 s kept, 2.24 s gathered).
    ``tol``: stop after an epoch whose mean loss changed by at most ``tol`` times the previous
    epoch's (None: all ``epochs``). ``workers``: 2 or more on a CPU = the second half of each
    step's rows on a worker thread (the values do not change)."""
    n, rm, k = packed.shape
    buf = torch.zeros_like(lam)
    gen = torch.Generator().manual_seed(int(seed) + 2)
    history = []
    all_feats = packed.feats.view(n * rm, k)
    consts = steps
    # a step's rows in two halves, the second on a worker thread when a core is idle for it: the
    # gathers and the four products with f are most of a step, and each half is one thread's
    # (2 threads inside torch's ops lose on the small ones; two halves: ~1.5× faster per step at
    # 500 × 196 × 512). The halves are the same with or without the worker, so are the values.
    pool = (
        concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pv-lambda")
        if workers > 1 and lam.device.type == "cpu"
        else None
    )

    def forward(reads: torch.Tensor, lam_s: torch.Tensor):
        with torch.no_grad():
            f = all_feats.index_select(0, reads)
            return f, f @ lam_s.T

    def backward(dh: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return dh.T.contiguous() @ f

    def both(fn, first: tuple, second: tuple) -> tuple:
        if pool is None:
            return fn(*first), fn(*second)
        later = pool.submit(fn, *second)
        return fn(*first), later.result()

    try:
        with torch.no_grad():
            for epoch in range(int(epochs)):
                total = torch.zeros(
                    (), dtype=torch.float64, device=lam.device
                )  # read once per epoch
                for gi in torch.randperm(len(pg.groups), generator=gen).tolist():
                    m, reads, flat, lt, pm, wm, gm, kind, back = consts[gi]
                    half, n_own = reads.numel() // 2, m.numel() * rm
                    lam_s = lam / controller
                    (f_a, h_a), (f_b, h_b) = both(
                        forward, (reads[:half], lam_s), (reads[half:], lam_s)
                    )
                    h = torch.cat([h_a, h_b])
                    loss, dh_m, dh_u = region_grad_rows(
                        h[:n_own].view(m.numel(), rm, -1),
                        h[n_own:],
                        flat.long(),
                        lt,
                        pm,
                        wm,
                        gm,
                        kfun,
                        lambda_kl,
                        lambda_mi,
                        kind,
                        back,
                    )
                    # ∂/∂Λ = (∂/∂h)ᵀ f / s_r, each half of the rows read once more
                    dh = torch.cat([dh_m.reshape(n_own, -1), dh_u])
                    g_a, g_b = both(backward, (dh[:half], f_a), (dh[half:], f_b))
                    grad = (g_a + g_b) / controller
                    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
                    buf.mul_(momentum).add_(grad + weight_decay * m.numel() * lam)
                    lam.sub_(lr * buf)
                    total += loss
                history.append(float(total) / max(n, 1))
                callback(epoch)
                if (
                    tol is not None
                    and epoch > 0
                    and abs(history[-1] - history[-2]) <= tol * abs(history[-2])
                ):
                    if epoch + 1 < int(epochs):
                        callback(int(epochs) - 1)  # (progress: the stage is done)
                    break
    finally:
        if pool is not None:
            pool.shutdown()
    return history


def unit_rows(f: np.ndarray) -> np.ndarray:
    """Return the rows of ``f`` divided by their L2 norm (scaled first, as :func:`.packing.pack_regions`
    does, so that huge activations cannot overflow float32)."""
    scale = np.maximum(np.abs(f).max(axis=1, keepdims=True), 1e-30)
    u = f / scale
    return (u / (np.linalg.norm(u, axis=1, keepdims=True) + 1e-8)).astype(np.float32)


def project_regions(features: np.ndarray, emb: RegionEmbedding) -> np.ndarray:
    """Return h = f @ Λ.T (float32 [M, d]) for new features with a fitted embedding's Λ (no fit)."""
    f = np.asarray(features, dtype=np.float32)
    lam = np.asarray(emb.Lambda, dtype=np.float32)
    if f.ndim != 2 or f.shape[1] != lam.shape[1]:
        raise InputError(f"region features must be M×{lam.shape[1]} to use this Λ; got {f.shape}.")
    if emb.params.get("normalize_features"):
        f = unit_rows(f)
    h = f @ lam.T
    if emb.params.get("offset") is not None:  # centred linear baselines (PCA)
        h = h - np.asarray(emb.params["offset"], dtype=np.float32)[None, :]
    return h.astype(np.float32)
