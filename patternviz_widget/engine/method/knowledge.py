"""Knowledge points (paper Sec. 3.4) and our on-object extension.

A regional embedding h is divided by its layer's mean strength, its posterior over classes is
p(c|h) = softmax_c(κ(‖h‖) μ_cᵀ h/‖h‖) with the μ_c of the sample embedding and the region κ
(capped linear, κ_max = 1000; the official code's normalisation before counting), and it is a knowledge
point when max_c p(c|h) ≥ τ (τ = 0.4), reliable when that argmax is the image's true class.
Nothing here refits: changing τ only re-thresholds (the posterior is cheap to recompute).

Counting with a region budget: the counts per image are over the regions KEPT for that image
(RegionRecord rows). When fewer than all grid cells were kept, ``per_image_total_full_grid``
rescales each image's count by (grid cells / kept cells), an unbiased estimate of the count over
the full grid under the uniform sampling of kept cells.

On-object share (OUR EXTENSION, not in the paper): when the probe data carry foreground masks, a
region is "on the object" if at least half of the input pixels of its grid cell (the area it
stands for, as the paper's highlighted cells; :func:`cell_boxes`) are mask foreground (a pixel
counts when its centre lies in the cell). Receptive fields are not used: a deep layer's covers most
of a small image, so no region would ever be on the object. The on-object share is the fraction of knowledge points that are on the object;
``on_object_chance`` is the same fraction over all kept regions (what a random choice would give).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from patternviz_widget.defaults import THRESHOLD
from patternviz_widget.engine.method import kappa as kp
from patternviz_widget.errors import InputError
from patternviz_widget.results.records import (
    ProbeRecord,
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
)


@dataclass
class KnowledgePoints:
    """Knowledge points of one (model, condition, epoch, layer) at threshold τ.

    posterior float32[M, K] p(c|h); strength float32[M] ‖h‖ / mean strength; predicted int64[M];
    is_kp bool[M]; is_reliable bool[M] (KP whose class = the image's true class);
    per_image_total / per_image_reliable float32[N] counts over the kept regions of each image;
    kept_per_image int64[N]; per_image_total_full_grid float32[N] counts rescaled to the full grid;
    mean_total, mean_reliable (mean per image), r_reliable (reliable / total KPs, 0.0 when there
    are none), on_object bool[M] | None and on_object_share float | None (our extension),
    on_object_chance (share of all kept regions on the object), threshold τ, kappa_slope (a of
    the κ used), warning: why the counts are empty by construction (posterior near uniform, class
    directions coinciding; :mod:`.diagnostics`), else None — show it instead of a count.
    """

    posterior: np.ndarray
    strength: np.ndarray
    predicted: np.ndarray
    is_kp: np.ndarray
    is_reliable: np.ndarray
    per_image_total: np.ndarray
    per_image_reliable: np.ndarray
    kept_per_image: np.ndarray
    per_image_total_full_grid: np.ndarray
    mean_total: float
    mean_reliable: float
    r_reliable: float
    on_object: np.ndarray | None
    on_object_share: float | None
    on_object_chance: float | None
    threshold: float
    kappa_slope: float = 1.0
    warning: str | None = None

    def summary(self) -> dict[str, float | str | None]:
        """Return the scalar fields as a dict (for tables and logs)."""
        return {
            "threshold": self.threshold,
            "mean_total": self.mean_total,
            "mean_reliable": self.mean_reliable,
            "r_reliable": self.r_reliable,
            "mean_total_full_grid": float(self.per_image_total_full_grid.mean())
            if self.per_image_total_full_grid.size
            else 0.0,
            "on_object_share": self.on_object_share,
            "on_object_chance": self.on_object_chance,
            "kappa_slope": self.kappa_slope,
            "warning": self.warning,
        }


def region_posterior(
    h: np.ndarray,
    mu: np.ndarray,
    mean_strength: float,
    kappa: kp.KappaLike = None,
    *,
    dtype: type = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (p(c|h) float32[M, K], strength float32[M]) with h divided by ``mean_strength``.

    p(c|h) = softmax_c(κ(‖h̃‖) μ_cᵀ h̃/‖h̃‖), h̃ = h / mean_strength, no class prior (paper Sec. 3.4);
    kappa: None = capped linear with κ_max = 1000 (the region table).

    dtype: the precision of the computation (float32 by default, float64 on request). The
    softmax subtracts each row's largest logit, so with κ ≤ κ_max = 1000 and |cos| ≤ 1 every
    exponent lies in [-2000, 0]: float32 neither overflows nor loses the peak. It rounds a logit
    by about κ_max · 6e-8, so p moves by about 6e-5 of itself at most (measured: ≤ 2e-5 on a
    fitted study at the cap, ``tests/engine/test_knowledge.py``); a knowledge-point flag can differ
    from float64 only for a peak that close to τ. The result is stored as float32 either way."""
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}.")
    hh = np.asarray(h, dtype=dtype)
    mm = np.asarray(mu, dtype=dtype)
    if hh.ndim != 2 or mm.ndim != 2 or hh.shape[1] != mm.shape[1]:
        raise InputError(
            f"h must be M×d and mu K×d with the same d; got {hh.shape} and {mm.shape}."
        )
    scale = float(mean_strength) if np.isfinite(mean_strength) and mean_strength > 0 else 1.0
    ht = torch.as_tensor(hh)
    norm = ht.norm(dim=1)
    n = norm / scale  # ‖h̃‖, without a scaled copy of h (the cosine does not depend on the scale)
    k = kp.evaluate(kp.make_kappa(kappa, kp.REGION_KAPPA_MAX), n)
    tiny = float(np.finfo(dtype).tiny)
    # classes × regions: the softmax and the reductions run along long contiguous rows (torch is
    # several times slower over a short last axis of K), and κ / ‖h‖ is one factor per region:
    # logits = (μ hᵀ) · κ/‖h‖ (h = 0 gives logits 0, the uniform posterior). The softmax runs in
    # place in that one buffer: a fresh M×K buffer costs more in page faults than the arithmetic.
    post_t = torch.as_tensor(mm) @ ht.T
    post_t *= (k / norm.clamp(min=tiny))[None, :]
    post_t -= post_t.amax(dim=0, keepdim=True)
    post_t.exp_()
    post_t /= post_t.sum(dim=0, keepdim=True)
    post = post_t.numpy().astype(np.float32, copy=False)
    # M × K as a transposed (column-major) view: no copy
    return post.T, n.numpy().astype(np.float32, copy=False)


def cell_boxes(
    grid: np.ndarray, grid_shape: tuple[int, int], input_size: tuple[int, int]
) -> np.ndarray:
    """Return float64[M, 4]: the grid cell (x0, y0, x1, y1) in input pixels of each region's (row,
    col) on a ``grid_shape`` grid laid over an input of ``input_size`` (H, W) — the image area a
    region stands for in the paper's highlighted-region figures (paper Sec. 3.4)."""
    rows, cols = grid_shape
    height, width = input_size
    ch, cw = height / rows, width / cols
    g = np.asarray(grid, dtype=np.float64).reshape(-1, 2)
    return np.stack([g[:, 1] * cw, g[:, 0] * ch, (g[:, 1] + 1) * cw, (g[:, 0] + 1) * ch], axis=1)


def boxes_on_object(
    box: np.ndarray, image: np.ndarray, masks: np.ndarray, min_share: float = 0.5
) -> np.ndarray:
    """Return bool[M]: whether ≥ ``min_share`` of each box's pixels are mask foreground.

    box float[M, 4] (x0, y0, x1, y1) in input pixels; image int[M]; masks [N, H, W] (non-zero =
    foreground). A pixel (x, y) belongs to a box when its centre (x + ½, y + ½) lies inside it;
    boxes are clipped to the image; a box covering no pixel is off the object. OUR EXTENSION."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise InputError(f"masks must be N×H×W, got shape {masks.shape}.")
    _, hh, ww = masks.shape
    fg = (masks > 0).astype(np.int64)
    integral = np.zeros((fg.shape[0], hh + 1, ww + 1), dtype=np.int64)
    integral[:, 1:, 1:] = fg.cumsum(1).cumsum(2)
    b = np.asarray(box, dtype=np.float64)
    x0 = np.clip(np.ceil(b[:, 0] - 0.5), 0, ww).astype(np.int64)
    y0 = np.clip(np.ceil(b[:, 1] - 0.5), 0, hh).astype(np.int64)
    x1 = np.clip(np.ceil(b[:, 2] - 0.5), 0, ww).astype(np.int64)
    y1 = np.clip(np.ceil(b[:, 3] - 0.5), 0, hh).astype(np.int64)
    x1, y1 = np.maximum(x1, x0), np.maximum(y1, y0)
    i = np.asarray(image, dtype=np.int64)
    area = (x1 - x0) * (y1 - y0)
    inside = integral[i, y1, x1] - integral[i, y0, x1] - integral[i, y1, x0] + integral[i, y0, x0]
    return (area > 0) & (inside >= min_share * np.maximum(area, 1))


def sample_kappa_slope(sample: SampleEmbedding) -> float:
    """Return the slope a of the region κ(l) = min(κ_max, a·l) that ``kappa_slope="sample"``
    uses to count knowledge points: the mean concentration κ_s(‖g_i‖) of the images in the
    sample embedding (ours, an option; the default slope is 1).

    Knowledge points are read on h divided by the layer's mean strength (the paper's
    normalisation before counting), so a region of average strength gets κ = a: with this a, it is
    as concentrated as an average image is in the sample embedding. A net whose posteriors are
    still flat has short g's, so a small a and few knowledge points. Measured caveat: because each
    layer is read relative to its OWN mean strength, on a confident net (a ≈ 5 on the bundled
    shapes) nearly every low-layer region becomes a (mostly unreliable) knowledge point — 61 of 64
    cells per image, against 1.7 at a = 1 — and the count no longer grows with depth. Falls back
    to 1 for embeddings without paper-style g (baselines)."""
    if sample.method != "paper":
        return 1.0
    g = np.asarray(sample.g, dtype=np.float64)
    if g.size == 0:
        return 1.0
    kfun = kp.from_description(sample.params.get("kappa"), kp.SAMPLE_KAPPA_MAX)
    k = kp.evaluate(kfun, torch.as_tensor(np.linalg.norm(g, axis=1)))
    a = float(k.mean())
    return a if np.isfinite(a) and a > 0 else 1.0


def knowledge_points(
    region_embedding: RegionEmbedding,
    mu: np.ndarray | SampleEmbedding,
    region_record: RegionRecord,
    probe: ProbeRecord,
    threshold: float = THRESHOLD,
    *,
    kappa: kp.KappaLike = None,
    kappa_slope: float | str = 1.0,
    min_object_share: float = 0.5,
) -> KnowledgePoints:
    """Return the :class:`KnowledgePoints` of one key from its records (paper Sec. 3.4).

    Args:
        region_embedding: the layer's RegionEmbedding (h rows aligned with ``region_record``).
        mu: the class directions μ_c (K×d), or the SampleEmbedding holding them. Baseline
            embeddings carry their own region-frame μ in ``params["mu"]``, which takes precedence.
        region_record: the RegionRecord of the same key (image index, boxes, grid shape).
        probe: the study's ProbeRecord (true labels; masks for the on-object share).
        threshold: τ (paper: 0.4).
        kappa: region κ; None = capped linear with the fit's κ_max (1000) and slope
            ``kappa_slope``.
        kappa_slope: a of κ(l) = min(κ_max, a·l) when ``kappa`` is None: a positive number
            (default 1, the slope of the fit's own κ), or "sample" = :func:`sample_kappa_slope` of
            the SampleEmbedding passed as ``mu`` (1 when only an array of μ is given).
        min_object_share: a region is on the object when at least this share of its grid cell
            is foreground (our extension; default 0.5). The cell, not the receptive field: a deep
            layer's receptive field covers most of a small input, so no region would ever count
            as on the object.
    """
    mu_arr = mu.mu if isinstance(mu, SampleEmbedding) else mu
    if "mu" in region_embedding.params:
        mu_arr = np.asarray(region_embedding.params["mu"], dtype=np.float32)
    slope = 1.0
    if kappa is None:
        if isinstance(kappa_slope, str):
            if kappa_slope != "sample":
                raise InputError(
                    f"kappa_slope must be 'sample' or a positive number, got {kappa_slope!r}."
                )
            slope = (
                sample_kappa_slope(mu)
                if isinstance(mu, SampleEmbedding) and "mu" not in region_embedding.params
                else 1.0
            )
        elif (
            isinstance(kappa_slope, bool)
            or not isinstance(kappa_slope, (int, float))
            or not (np.isfinite(kappa_slope) and kappa_slope > 0)
        ):
            raise InputError(
                f"kappa_slope must be 'sample' or a positive number, got {kappa_slope!r}."
            )
        else:
            slope = float(kappa_slope)
        desc = region_embedding.params.get("kappa")
        cap = (
            float(desc.get("kappa_max", kp.REGION_KAPPA_MAX))
            if isinstance(desc, dict) and desc.get("kind") == "linear"
            else kp.REGION_KAPPA_MAX
        )
        kappa = kp.LinearKappa(cap, slope)
    h = np.asarray(region_embedding.h)
    if h.shape[0] != np.asarray(region_record.image).shape[0]:
        raise InputError(
            f"The RegionEmbedding has {h.shape[0]} rows but the RegionRecord has "
            f"{np.asarray(region_record.image).shape[0]}; re-run study.embed() for this key."
        )
    rows, cols = region_record.grid_shape
    out = knowledge_points_arrays(
        h,
        mu_arr,
        region_embedding.mean_strength,
        region_record.image,
        probe.labels,
        threshold=threshold,
        kappa=kappa,
        grid_cells=int(rows) * int(cols),
        # the cell boxes serve only the on-object share, which needs masks
        box=cell_boxes(region_record.grid, (rows, cols), probe.input_size)
        if probe.masks is not None
        else None,
        masks=probe.masks,
        min_object_share=min_object_share,
    )
    out.kappa_slope = float(getattr(kappa, "a", slope))
    return out


def knowledge_points_arrays(
    h: np.ndarray,
    mu: np.ndarray,
    mean_strength: float,
    image: np.ndarray,
    labels: np.ndarray,
    *,
    threshold: float = THRESHOLD,
    kappa: kp.KappaLike = None,
    grid_cells: int | None = None,
    box: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    min_object_share: float = 0.5,
) -> KnowledgePoints:
    """Return the :class:`KnowledgePoints` of raw arrays (paper Sec. 3.4).

    Args:
        h: float[M, d] regional embeddings (RegionEmbedding.h). mu: float[K, d] class directions
            μ_c of the sample embedding. mean_strength: the layer's mean ‖h‖ (normaliser).
        image: int[M] probe image of each region. labels: int[N] true class per probe image.
        threshold: τ (paper: 0.4; a region is a KP when max_c p(c|h) ≥ τ).
        kappa: region κ (None: capped linear, κ_max = 1000).
        grid_cells: cells of the layer's full grid (rows·cols), for the full-grid counts.
        box: float[M, 4] region boxes in input pixels; masks: [N, H, W] foreground masks — both
            needed for the on-object share (our extension). min_object_share: the ≥ 50 % rule.
    """
    tau = float(threshold)
    if not np.isfinite(tau) or not 0.0 <= tau <= 1.0:
        raise InputError(f"threshold τ must be in [0, 1] (paper: 0.4), got {threshold!r}.")
    labels = np.asarray(labels).astype(np.int64).ravel()
    img = np.asarray(image).astype(np.int64).ravel()
    n = labels.shape[0]
    post, strength = region_posterior(h, mu, mean_strength, kappa)
    if img.shape[0] != post.shape[0] or (img.size and (img.min() < 0 or img.max() >= n)):
        raise InputError(
            f"image must give, for each of the {post.shape[0]} regions, an index in [0, {n})."
        )
    if post.size:  # one pass for the peak and its class (numpy's row max over K is slower)
        peak_t, pred_t = torch.from_numpy(post).max(dim=1)
        pred, is_kp = pred_t.numpy().astype(np.int64, copy=False), peak_t.numpy() >= tau
    else:
        pred, is_kp = np.zeros(0, np.int64), np.zeros(post.shape[0], bool)
    reliable = is_kp & (pred == labels[img])
    total = np.bincount(img, weights=is_kp, minlength=n).astype(np.float32)
    rel = np.bincount(img, weights=reliable, minlength=n).astype(np.float32)
    kept = np.bincount(img, minlength=n).astype(np.int64)
    cells = int(grid_cells) if grid_cells else int(kept.max(initial=0))
    full = np.where(kept > 0, total * cells / np.maximum(kept, 1), 0.0).astype(np.float32)
    n_kp = int(is_kp.sum())
    on, share, chance = None, None, None
    if box is not None and masks is not None:
        on = boxes_on_object(box, img, masks, min_object_share)
        share = float((on & is_kp).sum() / n_kp) if n_kp else 0.0
        chance = float(on.mean()) if on.size else 0.0
    return KnowledgePoints(
        posterior=post,
        strength=strength,
        predicted=pred,
        is_kp=is_kp,
        is_reliable=reliable,
        per_image_total=total,
        per_image_reliable=rel,
        kept_per_image=kept,
        per_image_total_full_grid=full,
        mean_total=float(total.mean()) if n else 0.0,
        mean_reliable=float(rel.mean()) if n else 0.0,
        r_reliable=float(reliable.sum() / n_kp) if n_kp else 0.0,
        on_object=on,
        on_object_share=share,
        on_object_chance=chance,
        threshold=tau,
    )
