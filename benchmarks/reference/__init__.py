"""The previous implementation, kept as the reference path of the benchmarks (``region``,
``quickstart``): :func:`use_reference` swaps it into the engine of a benchmark's worker process
(each variant runs in a fresh process, so nothing else sees the swap).

The reference = the importance step of :mod:`.importance_v1`, the Λ step of :mod:`.region_v1`,
torch's default thread count everywhere, and the parts they share with the engine as they were
before they changed: the packing (:func:`pack_regions`: a padded copy of the rows, ``unit`` from
two temporaries), the r' search (:func:`match`: one score matrix per partner group), no
hand-back of freed heap pages between the stages, and the layers of an epoch fitted one after
another. (The engine also drops its ``unit`` copy before
the Λ fit; the reference does too — its peak is in the importance stage either way.)
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from patternviz_widget.engine.method.importance import table_dtype
from patternviz_widget.engine.method.packing import _EPS, PackedRegions
from patternviz_widget.errors import InputError


def use_reference() -> None:
    """Swap the reference path into the engine (for this process)."""
    from patternviz_widget.engine.method import importance, region_embed
    from patternviz_widget.pipeline import embed as pipeline_embed

    from . import importance_v1, region_v1

    def fit_importance(
        *args: Any,
        search_threads: int = 1,
        workers: int = 1,
        tol: Any = None,
        stats: Any = None,
        **kw: Any,
    ):
        return importance_v1.fit_importance(*args, **kw)

    def steps(packed: Any, pg: Any, table: Any, *_a: Any, cache_mb: float = 512.0) -> Any:
        return table, cache_mb  # (the reference's Λ step reads the table itself)

    def sgd(packed: Any, lam: Any, pg: Any, steps: Any, *args: Any, workers: int = 1, **kw: Any):
        table, cache_mb = steps
        return region_v1._sgd_batched(packed, lam, pg, table, *args, cache_mb=cache_mb, **kw)

    region_embed.fit_importance = fit_importance
    region_embed._sgd_batched = sgd
    region_embed.lambda_steps = steps
    region_embed.resolve_threads = lambda *_a, **_k: 1
    region_embed.torch_threads = lambda n: contextlib.nullcontext()
    region_embed.pack_regions = pack_regions
    region_embed.release_free_memory = lambda: False
    importance._Group.match = match  # type: ignore[method-assign]
    pipeline_embed._region_workers = lambda *_a, **_k: 1  # the layers one after another


def match(self: Any, v: torch.Tensor) -> torch.Tensor:
    """``_Group.match`` as it was: r' [G, Rm, J] from ONE product for the whole group (the
    partner block converted to bfloat16 from a float32 copy of it)."""
    g = self.members.numel()
    b = self.packed.unit[self.gpart].reshape(self.j * self.rm, -1)
    b = b if self.dtype == torch.float32 else b.to(self.dtype)
    av = (self.a * v[:, None, :]).reshape(g * self.rm, -1).to(self.dtype)
    s = (av @ b.T).view(g, self.rm, self.j, self.rm)
    if not self.full:
        s = s.masked_fill(~self.pmask[None, None], float("-inf"))
    # (max is ~3× faster than argmax on bf16 CPU tensors)
    return s.max(dim=-1).indices.to(table_dtype(self.rm))


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
    scale = feats.abs().amax(dim=2, keepdim=True).clamp(min=1e-30)
    unit = feats / scale
    unit = unit / (unit.norm(dim=2, keepdim=True) + _EPS)
    return PackedRegions(feats=feats, unit=unit, mask=(rows >= 0).to(device), rows=rows.to(device))
