"""The paper's adversarial-attack measurements, on numpy arrays.

Every function takes regional embeddings that were projected with the **clean** Λ and μ (so clean
and adversarial points live in one frame) and returns a dataclass of numpy arrays that figures and
the widget read. Strength is always ‖h‖ divided by the layer's clean mean strength (the knowledge
point convention of paper Sec. 3.4), so the thresholds below are in units of "the clean mean".

* :func:`layer_shift` — Δ_orientation = mean(1 − cos(h_adv, h_clean)) and
  Δ_strength = mean |‖h_adv‖ − ‖h_clean‖| (our reading of the paper's Δ curves).
* :func:`kp_shift` — knowledge points of the original class before vs of the adversarial class
  after, their overlap, and the histogram of p(c_ori | h_clean) for the adversarial-class knowledge
  points (the paper's attack figures).
* :func:`trajectory_types` — the four trajectory types over the attack iterations with the
  thresholds of the official code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from patternviz_widget.defaults import THRESHOLD

#: The official code's trajectory-type thresholds; strengths are ‖h‖ / clean mean strength.
TYPE_THRESHOLDS = {
    "start_cos": 0.9,  # cos(h_0, μ_ori) above this: starts as an original-class feature
    "start_norm": 1.0,  # ‖h_0‖ above this (Types 1, 2, 4)
    "min_norm_direct": 1.2,  # Type 1: min over the path above this (never near the origin)
    "min_norm_origin": 1.0,  # Type 2: min over the path below this (passes near the origin)
    "start_norm_nothing": 0.5,  # Type 3: ‖h_0‖ below this (starts as nothing)
    "end_p_adv": 0.5,  # Types 1–3: p(c_adv | h_T) above this
    "end_norm_vanish": 1.0,  # Type 4: ‖h_T‖ below this
}

TYPE_NAMES = (
    "1: original → adversarial (direct)",
    "2: original → origin → adversarial",
    "3: nothing → adversarial",
    "4: original → nothing",
)

Posterior = Callable[[np.ndarray], np.ndarray]  # h[..., 3] (already ÷ mean strength) -> p[..., K]


@dataclass
class LayerShift:
    """Δ curves over layers (the paper's attack experiment): one value per layer, plus per-region values."""

    layers: list[str]
    orientation: np.ndarray  # float32[L] mean(1 − cos)
    strength: np.ndarray  # float32[L] mean |Δ‖h‖| / clean mean strength
    per_region_orientation: dict[str, np.ndarray] = field(default_factory=dict)
    per_region_strength: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class KPShift:
    """Knowledge points before/after an attack for one layer (the paper's attack experiment).

    attacked: bool[N] images used (clean prediction correct and the attack flipped it).
    c_ori, c_adv: int64[N] the true class and the adversarial prediction.
    ori_before / adv_after: bool[M] region is a knowledge point of c_ori on the clean image /
    of c_adv on the adversarial one (False outside attacked images).
    overlap: |ori_before ∧ adv_after| / |ori_before ∨ adv_after| (Jaccard).
    adv_was_ori: share of adv_after regions that were ori_before.
    p_ori_before: float32[#adv_after] p(c_ori | h_clean) of the adversarial-class KPs.
    hist_counts/hist_edges: its histogram on [0, 1]; mode: centre of the fullest bin.
    share_below_threshold: share of p_ori_before < τ.
    """

    attacked: np.ndarray
    c_ori: np.ndarray
    c_adv: np.ndarray
    ori_before: np.ndarray
    adv_after: np.ndarray
    overlap: float
    adv_was_ori: float
    p_ori_before: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray
    mode: float
    share_below_threshold: float
    mean_ori_before: float  # per attacked image
    mean_adv_after: float
    threshold: float


@dataclass
class Trajectories:
    """Trajectory types over attack iterations for one layer (the paper's attack experiment).

    rows: int64[R] the region rows considered (regions of attacked images).
    strength / cos_ori / p_adv: float32[T, R] per iteration.
    types: bool[4, R] membership of Types 1–4 (a region may satisfy more than one test);
    counts: int64[4]; shares: counts / R.
    """

    rows: np.ndarray
    strength: np.ndarray
    cos_ori: np.ndarray
    p_adv: np.ndarray
    types: np.ndarray
    counts: np.ndarray
    shares: np.ndarray
    thresholds: dict = field(default_factory=lambda: dict(TYPE_THRESHOLDS))
    names: tuple = TYPE_NAMES


def _norm(h: np.ndarray) -> np.ndarray:
    return np.linalg.norm(h.astype(np.float64), axis=-1)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = np.sum(a.astype(np.float64) * b, axis=-1)
    return num / np.maximum(_norm(a) * _norm(b), 1e-12)


def shift(
    h_clean: np.ndarray, h_adv: np.ndarray, mean_strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return per-region (1 − cos(h_adv, h_clean), |‖h_adv‖ − ‖h_clean‖| / mean_strength)."""
    if h_clean.shape != h_adv.shape:
        raise ValueError(f"clean and adversarial rows differ: {h_clean.shape} vs {h_adv.shape}")
    d_or = 1.0 - _cos(h_adv, h_clean)
    d_st = np.abs(_norm(h_adv) - _norm(h_clean)) / max(float(mean_strength), 1e-12)
    return d_or.astype(np.float32), d_st.astype(np.float32)


def layer_shift(
    pairs: dict[str, tuple[np.ndarray, np.ndarray, float]],
    rows: dict[str, np.ndarray] | None = None,
) -> LayerShift:
    """Return the Δ curves: ``pairs[layer] = (h_clean, h_adv, clean mean strength)`` in layer order.

    ``rows[layer]`` optionally restricts the mean to some regions (e.g. of attacked images).
    """
    layers = list(pairs)
    out = LayerShift(layers, np.zeros(len(layers), np.float32), np.zeros(len(layers), np.float32))
    for i, name in enumerate(layers):
        h_c, h_a, ms = pairs[name]
        d_or, d_st = shift(h_c, h_a, ms)
        if rows is not None and name in rows:
            d_or, d_st = d_or[rows[name]], d_st[rows[name]]
        out.orientation[i] = float(d_or.mean()) if d_or.size else np.nan
        out.strength[i] = float(d_st.mean()) if d_st.size else np.nan
        out.per_region_orientation[name], out.per_region_strength[name] = d_or, d_st
    return out


def attacked_images(labels: np.ndarray, clean_pred: np.ndarray, adv_pred: np.ndarray) -> np.ndarray:
    """Return bool[N]: correctly classified before and misclassified after the attack."""
    return (clean_pred == labels) & (adv_pred != labels)


def kp_shift(
    p_clean: np.ndarray,
    p_adv: np.ndarray,
    image: np.ndarray,
    labels: np.ndarray,
    adv_pred: np.ndarray,
    attacked: np.ndarray,
    threshold: float = THRESHOLD,
    bins: int = 20,
) -> KPShift:
    """Return knowledge points of c_ori before vs c_adv after, and the p(c_ori | h_clean) histogram.

    Args:
        p_clean, p_adv: float[M, K] regional posteriors p(c | h) of the clean / adversarial rows.
        image: int[M] image index of each row. labels: int[N] c_ori (the true class).
        adv_pred: int[N] c_adv (the adversarial prediction). attacked: bool[N] images to use.
        threshold: τ (paper Sec. 3.4: 0.4); a KP of class c has max p ≥ τ and argmax = c.
        bins: histogram bins over [0, 1].
    """
    image = np.asarray(image, np.int64)
    c_ori_r, c_adv_r, use = labels[image], adv_pred[image], attacked[image]
    rows = np.arange(len(image))
    ori_before = use & (p_clean.argmax(1) == c_ori_r) & (p_clean.max(1) >= threshold)
    adv_after = use & (p_adv.argmax(1) == c_adv_r) & (p_adv.max(1) >= threshold)
    union = int((ori_before | adv_after).sum())
    inter = int((ori_before & adv_after).sum())
    p_ori = p_clean[rows, c_ori_r][adv_after].astype(np.float32)
    counts, edges = np.histogram(p_ori, bins=bins, range=(0.0, 1.0))
    n_att = max(int(attacked.sum()), 1)
    return KPShift(
        attacked=attacked.astype(bool),
        c_ori=np.asarray(labels, np.int64),
        c_adv=np.asarray(adv_pred, np.int64),
        ori_before=ori_before,
        adv_after=adv_after,
        overlap=inter / union if union else float("nan"),
        adv_was_ori=inter / int(adv_after.sum()) if adv_after.any() else float("nan"),
        p_ori_before=p_ori,
        hist_counts=counts.astype(np.int64),
        hist_edges=edges.astype(np.float32),
        mode=float((edges[:-1] + edges[1:])[np.argmax(counts)] / 2) if p_ori.size else float("nan"),
        share_below_threshold=float((p_ori < threshold).mean()) if p_ori.size else float("nan"),
        mean_ori_before=float(ori_before.sum()) / n_att,
        mean_adv_after=float(adv_after.sum()) / n_att,
        threshold=float(threshold),
    )


def trajectory_types(
    h: np.ndarray,
    mu: np.ndarray,
    posterior: Posterior,
    mean_strength: float,
    image: np.ndarray,
    labels: np.ndarray,
    adv_pred: np.ndarray,
    attacked: np.ndarray,
    thresholds: dict | None = None,
) -> Trajectories:
    """Return the Types 1–4 of region trajectories over attack iterations (the paper's attack experiment; thresholds of the official code).

    Args:
        h: float[T, M, 3] regional embeddings at iterations 0…T−1 (0 = clean), clean Λ.
        mu: float[K, 3] class directions μ_c of the clean sample embedding.
        posterior: maps h / mean_strength (shape [..., 3]) to p(c | h) ([..., K]).
        mean_strength: the layer's clean mean ‖h‖ (strength unit).
        image: int[M]; labels (c_ori), adv_pred (c_adv): int[N]; attacked: bool[N] images to use.
        thresholds: overrides of :data:`TYPE_THRESHOLDS`.
    """
    th = {**TYPE_THRESHOLDS, **(thresholds or {})}
    image = np.asarray(image, np.int64)
    rows = np.flatnonzero(attacked[image])
    hs = h[:, rows].astype(np.float32) / max(float(mean_strength), 1e-12)
    c_ori, c_adv = labels[image[rows]], adv_pred[image[rows]]
    strength = _norm(hs).astype(np.float32)
    mu_ori = mu[c_ori] / np.maximum(_norm(mu[c_ori])[:, None], 1e-12)
    cos_ori = _cos(hs, mu_ori[None]).astype(np.float32)
    p = posterior(hs)
    p_adv = np.take_along_axis(p, np.broadcast_to(c_adv[None, :, None], (*p.shape[:2], 1)), 2)[
        ..., 0
    ]
    start_ori = (cos_ori[0] > th["start_cos"]) & (strength[0] > th["start_norm"])
    end_adv = p_adv[-1] > th["end_p_adv"]
    types = np.stack([
        start_ori & (strength.min(0) > th["min_norm_direct"]) & end_adv,
        start_ori & (strength.min(0) < th["min_norm_origin"]) & end_adv,
        (strength[0] < th["start_norm_nothing"]) & end_adv,
        start_ori & (strength[-1] < th["end_norm_vanish"]),
    ])  # fmt: skip
    counts = types.sum(1).astype(np.int64)
    return Trajectories(
        rows=rows.astype(np.int64),
        strength=strength,
        cos_ori=cos_ori,
        p_adv=p_adv.astype(np.float32),
        types=types,
        counts=counts,
        shares=(counts / max(len(rows), 1)).astype(np.float32),
        thresholds=th,
    )
