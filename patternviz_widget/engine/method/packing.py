"""Regions packed per image, and the fixed partner sets of the region fits (paper Sec. 3.3; our fixed partners: docs/method.md).

Both the importance-weight fit and the Λ fit work per image over the regions kept for it. Here the
RegionRecord rows (any number per image, e.g. a budgeted sample) are packed into a padded
[N, Rm, K] tensor with a mask, and every image gets ONE fixed, seeded set of partner images
(the official code redraws 100 partners at every step; ours is a documented deviation, docs/method.md).

Partner groups (ours): images are shuffled into groups of G; a group shares one *block* of P
partner images so that one matrix product serves all G members. When N is large enough the block
is J images drawn from outside the group (P = J, every member uses all of it); otherwise the
block is all N images and each member uses a random J of them other than itself. Either way each
image's partners are, marginally, a uniform random J-subset of the other images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from patternviz_widget.errors import InputError

_EPS = 1e-8


@dataclass
class PackedRegions:
    """Regions grouped per image and padded: ``feats``/``unit`` float32[N, Rm, K] (raw and
    L2-normalised over channels, zero rows where ``mask`` is False), ``mask`` bool[N, Rm],
    ``rows`` int64[N, Rm] the RegionRecord row of each slot (-1 for padding)."""

    feats: torch.Tensor
    unit: torch.Tensor
    mask: torch.Tensor
    rows: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.feats.shape)  # type: ignore[return-value]

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """Map a per-slot tensor [N, Rm, ...] back to RegionRecord row order [M, ...]."""
        m = int(self.mask.sum())
        out = torch.zeros((m, *x.shape[2:]), dtype=x.dtype, device=x.device)
        out[self.rows[self.mask]] = x[self.mask]
        return out


def pack_regions(
    features: np.ndarray, image: np.ndarray, n_images: int, device: torch.device | str = "cpu"
) -> PackedRegions:
    """Return :class:`PackedRegions` from RegionRecord rows (features M×K, image int[M])."""
    f = np.asarray(features)
    img = np.asarray(image).astype(np.int64).ravel()
    if f.ndim != 2 or f.shape[0] != img.shape[0] or f.shape[1] < 1:
        raise InputError(
            f"region features must be M×C with one image index per row; got {f.shape} and {img.shape}."
        )
    if img.size and (img.min() < 0 or img.max() >= n_images):
        raise InputError(
            f"region image indices must lie in [0, {n_images}); got [{img.min()}, {img.max()}]."
        )
    f32 = torch.as_tensor(f.astype(np.float32, copy=False))
    if not torch.isfinite(f32).all():
        raise InputError(
            "regional features contain NaN or Inf (or overflow float32). Check the capture."
        )
    counts = np.bincount(img, minlength=n_images)
    rmax = max(int(counts.max()) if counts.size else 0, 1)
    if img.size == n_images * rmax and bool((img[1:] >= img[:-1]).all()):
        # rows already grouped by image, the same number each (what a capture stores): the
        # packed tensor is a view of the rows, not a copy (at 500 × 196 × 512, 200 MB less)
        rows = torch.arange(img.size).view(n_images, rmax)
        feats = f32.view(n_images, rmax, f.shape[1])
    else:
        order = np.argsort(img, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.empty(img.size, dtype=np.int64)
        slot[order] = np.arange(img.size) - np.repeat(starts, counts)
        rows = torch.full((n_images, rmax), -1, dtype=torch.long)
        rows[torch.as_tensor(img), torch.as_tensor(slot)] = torch.arange(img.size)
        feats = torch.zeros((n_images, rmax, f.shape[1]), dtype=torch.float32)
        feats[torch.as_tensor(img), torch.as_tensor(slot)] = f32
    feats = feats.to(device)
    # scale before the norm so that huge activations cannot overflow float32 in the square
    unit = feats / feats.abs().amax(dim=2, keepdim=True).clamp(min=1e-30)
    unit /= unit.norm(dim=2, keepdim=True) + _EPS
    return PackedRegions(feats=feats, unit=unit, mask=(rows >= 0).to(device), rows=rows.to(device))


@dataclass
class PartnerGroups:
    """Fixed partner sets. ``partners`` int64[N, P]: the block of each image's group;
    ``pmask`` bool[N, P]: which block entries are that image's partners (exactly J per image);
    ``groups``: member indices per group; ``blocks``: int64[P] block per group."""

    partners: torch.Tensor
    pmask: torch.Tensor
    groups: list[torch.Tensor]
    blocks: list[torch.Tensor]

    @property
    def j(self) -> int:
        """J, the number of partners of every image."""
        return int(self.pmask[0].sum()) if self.pmask.numel() else 0

    @property
    def p(self) -> int:
        """P, the block size (J, or N when N is small)."""
        return int(self.partners.shape[1])

    def of(self, i: int) -> np.ndarray:
        """Return the partner indices of image ``i`` (sorted)."""
        return self.partners[i][self.pmask[i]].cpu().numpy()


def draw_partners(
    n: int, num: int, seed: int, group_size: int = 16, device: torch.device | str = "cpu"
) -> PartnerGroups:
    """Return :class:`PartnerGroups`: J = min(num, N-1) partners per image, groups of ``group_size``."""
    j = max(0, min(int(num), n - 1))
    g = max(1, int(group_size))
    rng = np.random.default_rng(int(seed))
    order = rng.permutation(n)
    outsiders = j == 0 or n - g >= j  # J = 0: no partners, an empty block
    p = j if outsiders else n
    partners = np.zeros((n, p), dtype=np.int64)
    pmask = np.zeros((n, p), dtype=bool)
    groups, blocks = [], []
    everyone = np.arange(n)
    for s in range(0, n, g):
        members = np.sort(order[s : s + g])
        if outsiders:
            rest = np.setdiff1d(everyone, members, assume_unique=True)
            block = np.sort(rng.choice(rest, size=j, replace=False)) if j else np.empty(0, np.int64)
            pmask[members] = True
        else:
            block = everyone
            for i in members:
                pick = rng.choice(n - 1, size=j, replace=False)
                pmask[i, pick + (pick >= i)] = True
        partners[members] = block
        groups.append(torch.as_tensor(members, device=device))
        blocks.append(torch.as_tensor(block, device=device))
    return PartnerGroups(
        torch.as_tensor(partners, device=device),
        torch.as_tensor(pmask, device=device),
        groups,
        blocks,
    )


def target_log_similarity(p: torch.Tensor, pg: PartnerGroups, kappa_p: float) -> torch.Tensor:
    """Return log P(x_j | x_i) [N, P] = log_softmax_j(κ_p cos(p_i, p_j)) over each image's partners
    (−inf outside them; paper Sec. 3.3 target similarity, κ_p = 5)."""
    u = p / (p.norm(dim=1, keepdim=True) + _EPS)
    cos = (u[:, None, :] * u[pg.partners]).sum(-1)
    if pg.p == 0:
        return cos
    return torch.log_softmax((kappa_p * cos).masked_fill(~pg.pmask, float("-inf")), dim=1)


def masked_kl(
    log_t: torch.Tensor, log_q: torch.Tensor, pmask: torch.Tensor, per_row: bool = False
) -> torch.Tensor:
    """Return Σ over rows of KL(T ‖ Q) restricted to ``pmask`` (log_t, log_q: [c, P]); with
    ``per_row`` the [c] vector of each row's KL instead."""
    t = log_t.exp()
    diff = torch.where(pmask, log_t - log_q, torch.zeros_like(log_q))
    kl = (t * diff).sum(-1)
    return kl if per_row else kl.sum()


def product_mixture(log_pr: torch.Tensor, w: torch.Tensor, pmask: torch.Tensor) -> torch.Tensor:
    """Return log Q(j) = log_softmax_j(Σ_r w_r log q^(r)(j)) over partners (paper Sec. 3.3 weighted
    product); log_pr [c, Rm, P] (finite where pmask), w [c, Rm], pmask [c, P]."""
    safe = torch.where(pmask[:, None, :], log_pr, torch.zeros_like(log_pr))
    mix = (w[:, :, None] * safe).sum(1).masked_fill(~pmask, float("-inf"))
    return torch.log_softmax(mix, dim=1)


def masked_log_softmax(logits: torch.Tensor, pmask: torch.Tensor) -> torch.Tensor:
    """Return log_softmax over the last axis of ``logits`` [c, Rm, P] restricted to ``pmask`` [c, P]."""
    return torch.log_softmax(logits.masked_fill(~pmask[:, None, :], float("-inf")), dim=-1)
