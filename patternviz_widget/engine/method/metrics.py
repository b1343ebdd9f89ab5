"""Sample-level metrics of an embedding (the paper's correlation table; docs/reproduction.md).

The paper's table correlates the *strength* of a projected sample feature with the *uncertainty*
of the network's prediction: Pearson r(‖g‖, H(P(Y|x))), more negative = better (our reading of the paper's table:
uncertainty = entropy of P, correlation = Pearson, and for baselines the strength is the norm of
the centred embedding).
"""

from __future__ import annotations

import numpy as np

from patternviz_widget.defaults import TEMPERATURE
from patternviz_widget.errors import InputError


def softmax_t(logits: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """Return float64 softmax(logits / T) row-wise (T: the paper's temperature, default 4)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def entropy(p: np.ndarray) -> np.ndarray:
    """Return the float64 entropy (nats) of each row of a probability matrix."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=1)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Return Pearson's r of two 1-D arrays; 0.0 when either is constant (r undefined)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InputError(f"pearson needs arrays of the same length, got {x.size} and {y.size}.")
    if x.size < 2:
        return 0.0
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if not np.isfinite(den) or den <= 1e-300:
        return 0.0
    return float(np.clip((xc * yc).sum() / den, -1.0, 1.0))


def strength_entropy_r(g: np.ndarray, p: np.ndarray, center: bool = False) -> float:
    """Return Pearson r(‖g‖, H(P)) (the paper's correlation table). ``center`` subtracts the mean of g first
    (used for PCA/t-SNE/UMAP, whose origin is arbitrary)."""
    g = np.asarray(g, dtype=np.float64)
    if center:
        g = g - g.mean(axis=0, keepdims=True)
    return pearson(np.linalg.norm(g, axis=1), entropy(p))


def kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Return KL(p_i ‖ q_i) per row (float64; q floored at 1e-300)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.maximum(np.asarray(q, dtype=np.float64), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0)
    return t.sum(axis=1)


def sample_report(
    g: np.ndarray,
    p: np.ndarray,
    q: np.ndarray | None,
    labels: np.ndarray | None = None,
    center: bool = False,
    mu: np.ndarray | None = None,
) -> dict[str, float | list]:
    """Return the sample-level metrics of one embedding as a JSON-able dict.

    Keys: ``r_strength_entropy`` (Pearson r(‖g‖, H(P)), the paper's correlation table), ``kl`` (mean KL(P‖Q)
    per sample, when ``q`` is given), ``kl_uniform`` (the same for the uniform posterior, the
    reference of claim 1), ``argmax_agreement`` (share with argmax Q = argmax P), and
    ``label_agreement`` (argmax Q = true label) when ``labels`` are given; ``mu_cos`` (μᵀμ, the
    class-direction cosines) when ``mu`` is given.
    """
    p = np.asarray(p, dtype=np.float64)
    out: dict[str, float | list] = {"r_strength_entropy": strength_entropy_r(g, p, center=center)}
    k = p.shape[1]
    out["kl_uniform"] = float(kl_rows(p, np.full_like(p, 1.0 / k)).mean()) if p.size else 0.0
    if q is not None:
        q = np.asarray(q, dtype=np.float64)
        out["kl"] = float(kl_rows(p, q).mean()) if p.size else 0.0
        out["argmax_agreement"] = float((q.argmax(1) == p.argmax(1)).mean()) if p.size else 0.0
        if labels is not None:
            out["label_agreement"] = (
                float((q.argmax(1) == np.asarray(labels)).mean()) if p.size else 0.0
            )
    if mu is not None:
        out["mu_cos"] = np.round(
            np.asarray(mu, np.float64) @ np.asarray(mu, np.float64).T, 6
        ).tolist()
    return out
