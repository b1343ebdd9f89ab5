"""Baseline embeddings in the same records as the paper's: PCA, t-SNE, UMAP (the paper's correlation table).

So that knowledge points and the strength/uncertainty metric are defined for baselines too, each
baseline embedding is CENTRED (its mean removed: these methods have no meaningful origin) and gets
class directions computed like the paper's closed form without κ:
μ_c ∝ Σ_x P(c|x) · g_x/‖g_x‖ (for regions, P of the region's image). These μ live in the baseline's
own frame; a RegionEmbedding carries its own μ in ``params["mu"]`` (regions and samples are
embedded separately, so they do not share a frame as the paper's do). ``kl`` is NaN: a baseline
has no posterior Q.

PCA is linear: ``M``/``Lambda`` hold its components and ``params["offset"]`` the projected mean, so
new inputs project as ``f @ M.T - offset``. t-SNE (openTSNE, 3-D Barnes-Hut) and UMAP (umap-learn)
are not: their ``M``/``Lambda`` are zeros with ``params["linear"] = False``, and every key is
embedded on its own (no shared frame across epochs or conditions).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from patternviz_widget.defaults import SEED
from patternviz_widget.engine.method.metrics import sample_report
from patternviz_widget.errors import InputError
from patternviz_widget.results.records import RegionEmbedding, SampleEmbedding

METHODS = ("pca", "tsne", "umap")
_PACKAGES = {"tsne": "openTSNE", "umap": "umap"}


def available_methods() -> list[str]:
    """Return the embedding methods usable here: "paper", "pca", and "tsne"/"umap" when installed."""
    out = ["paper", "pca"]
    out += [m for m in ("tsne", "umap") if importlib.util.find_spec(_PACKAGES[m]) is not None]
    return out


def _check_method(method: str) -> None:
    if method not in METHODS:
        from patternviz_widget._validate import did_you_mean

        raise InputError(
            f"Unknown embedding method {method!r}. {did_you_mean(method, ['paper', *METHODS], 'method')}"
        )
    if method in _PACKAGES and importlib.util.find_spec(_PACKAGES[method]) is None:
        pkg = "openTSNE" if method == "tsne" else "umap-learn"
        raise InputError(
            f"method={method!r} needs the {pkg} package: pip install {pkg} (or pip install 'patternviz-widget[baselines]')."
        )


def reduce(
    x: np.ndarray, method: str, dim: int = 3, seed: int = SEED, **kw
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (centred float64 [n, dim] embedding, components [dim, D] or None) of ``x`` by ``method``."""
    _check_method(method)
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        return np.zeros((n, dim)), (np.zeros((dim, x.shape[1])) if method == "pca" else None)
    if method == "pca":
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        comps = np.zeros((dim, x.shape[1]))
        comps[: min(dim, vt.shape[0])] = vt[:dim]
        # deterministic signs: the largest-magnitude loading of each component is positive
        signs = np.sign(comps[np.arange(dim), np.abs(comps).argmax(1)])
        comps *= np.where(signs == 0, 1.0, signs)[:, None]
        return (x - mean) @ comps.T, comps
    if method == "tsne":
        from openTSNE import TSNE

        perplexity = float(kw.pop("perplexity", min(30.0, max(2.0, (n - 1) / 3.0))))
        y = np.asarray(
            TSNE(
                n_components=dim,
                perplexity=perplexity,
                negative_gradient_method="bh",
                random_state=seed,
                n_jobs=kw.pop("n_jobs", 1),
                **kw,
            ).fit(x)
        )
    else:
        import umap

        nn = int(kw.pop("n_neighbors", min(15, n - 1)))
        y = umap.UMAP(
            n_components=dim, n_neighbors=max(2, nn), random_state=seed, **kw
        ).fit_transform(x)
    y = np.asarray(y, dtype=np.float64)
    return y - y.mean(0), None


def class_directions_plain(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Return μ (K×d) ∝ Σ_x P(c|x) g_x/‖g_x‖ (the paper's closed form with κ ≡ 1), unit rows."""
    g = np.asarray(g, dtype=np.float64)
    o = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    raw = np.asarray(p, dtype=np.float64).T @ o
    return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)


def baseline_samples(
    features: np.ndarray,
    probs: np.ndarray,
    method: str = "pca",
    *,
    labels: np.ndarray | None = None,
    dim: int = 3,
    seed: int = SEED,
    **kw,
) -> SampleEmbedding:
    """Return a SampleEmbedding of ``features`` by a baseline (see the module docstring).

    probs: P(Y|x) (float[N, K], already softmax(z/T)); labels: reported agreement only."""
    f = np.asarray(features, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    kw = {
        k: v
        for k, v in kw.items()
        if k
        not in (
            "device",
            "callback",
            "steps",
            "lr",
            "momentum",
            "weight_decay",
            "controller",
            "kappa",
            "init",
            "init_std",
        )
    }
    g, comps = reduce(f, method, dim, seed, **kw)
    mu = class_directions_plain(g, p)
    params = {
        "method": method,
        "dim": dim,
        "seed": seed,
        "linear": comps is not None,
        "metrics": sample_report(g, p, None, labels=labels, center=True, mu=mu),
    }
    m = np.zeros((dim, f.shape[1])) if comps is None else comps
    if comps is not None:
        params["offset"] = (f.mean(0) @ comps.T).tolist()
    return SampleEmbedding(
        g=g.astype(np.float32),
        mu=mu.astype(np.float32),
        pi=p.mean(0).astype(np.float32),
        M=m.astype(np.float32),
        kl=float("nan"),
        method=method,
        params=params,
    )


def baseline_regions(
    features: np.ndarray,
    image: np.ndarray,
    probs: np.ndarray,
    method: str = "pca",
    *,
    dim: int = 3,
    seed: int = SEED,
    **kw,
) -> RegionEmbedding:
    """Return a RegionEmbedding of regional features by a baseline (see the module docstring).

    features float[M, C]; image int[M]; probs float[N, K] P(Y|x) of the probe images."""
    f = np.asarray(features, dtype=np.float64)
    img = np.asarray(image).astype(np.int64)
    p = np.asarray(probs, dtype=np.float64)
    h, comps = reduce(f, method, dim, seed, **kw)
    mu = class_directions_plain(h, p[img]) if h.shape[0] else np.zeros((p.shape[1], dim))
    counts = np.bincount(img, minlength=p.shape[0]).astype(np.float64)
    w = 1.0 / np.maximum(counts[img], 1.0)
    strength = float(np.linalg.norm(h, axis=1).mean()) if h.size else 1.0
    params = {
        "method": method,
        "dim": dim,
        "seed": seed,
        "linear": comps is not None,
        "mu": mu.round(7).tolist(),
    }
    lam = np.zeros((dim, f.shape[1])) if comps is None else comps
    if comps is not None:
        params["offset"] = (f.mean(0) @ comps.T).tolist()
    return RegionEmbedding(
        h=h.astype(np.float32),
        Lambda=lam.astype(np.float32),
        w=w.astype(np.float32),
        mean_strength=strength if strength > 0 else 1.0,
        method=method,
        params=params,
    )
