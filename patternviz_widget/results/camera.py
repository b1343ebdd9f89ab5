"""The default camera of every 3-D view, chosen from the data: the direction that fans the class
directions μ_c out the most.

The widget (its first view and Reset), its layer-strip thumbnails and the exported figures all
start from these angles, so a figure and the live view of one state look the same. The paper
draws its embeddings from views in which the class directions spread apart (Li, Wang, Zhang,
NeurIPS 2021, Figs. 1, 3 and 5); here that view is computed:

* candidates are the smallest principal axis of the unit μ_c (look along it: the plane of the two
  largest axes faces the camera) and a fixed, even grid of directions;
* each candidate is scored by how far apart the projected unit μ_c tips lie (their smallest pairwise
  distance, which keeps labels apart, plus a little of their mean length, which keeps arrows long);
* the score is averaged over (at most eight) epochs of the layer, so one view serves the whole
  training run and scrubbing epochs never turns the camera.

Angles use the widget's convention (radians, y up): the camera sits at
``(cos e · sin a, sin e, cos e · cos a)`` from its target and looks at it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .keys import SAMPLE, Key
from .records import SampleEmbedding

#: Angles when the data cannot choose (fewer than two usable class directions).
FALLBACK = {"azimuth": 0.7, "elevation": 0.42}
#: Views steeper than this (radians) are not considered: with y up they roll the picture oddly.
MAX_ELEVATION = 1.2
#: Classes that take part in the score (the widget labels at most this many directions).
MAX_CLASSES = 24
#: Epochs that take part in the score (evenly spread, the last one always among them).
MAX_EPOCHS = 8


def _candidates(n: int = 400) -> np.ndarray:
    """Unit directions spread evenly over the upper half sphere (a Fibonacci lattice), steep ones
    dropped. A view from below shows the mirror image of the view from above, which scores alike."""
    i = np.arange(n) + 0.5
    y = 1.0 - i / n
    r = np.sqrt(1.0 - y * y)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    v = np.stack([r * np.sin(phi), y, r * np.cos(phi)], axis=1)
    return v[np.abs(np.arcsin(np.clip(v[:, 1], -1, 1))) <= MAX_ELEVATION]


_GRID = _candidates()


def _units(mu: Any) -> np.ndarray:
    """Unit class directions (finite, non-zero rows of ``mu``), at most :data:`MAX_CLASSES`."""
    m = np.asarray(mu, dtype=np.float64).reshape(-1, 3)[:MAX_CLASSES]
    n = np.linalg.norm(m, axis=1)
    ok = np.isfinite(n) & (n > 1e-12)
    return m[ok] / n[ok, None]


def _score(units: np.ndarray, views: np.ndarray) -> np.ndarray:
    """Spread of the unit directions ``units`` (K×3) seen along each of ``views`` (V×3)."""
    d = units @ views.T  # K×V components along the view
    p = units[:, None, :] - d[..., None] * views[None]  # K×V×3 projections on the image plane
    i, j = np.triu_indices(len(units), 1)
    gap = np.linalg.norm(p[i] - p[j], axis=-1).min(axis=0)  # V
    return gap + 0.25 * np.linalg.norm(p, axis=-1).mean(axis=0)


def angles(v: np.ndarray) -> dict[str, float]:
    """Widget angles (azimuth, elevation in radians) of a camera placed along unit vector ``v``."""
    v = np.asarray(v, dtype=np.float64)
    v = v / np.linalg.norm(v)
    el = float(np.arcsin(np.clip(v[1], -1.0, 1.0)))
    az = float(np.arctan2(v[0], v[2]))
    return {"azimuth": round(az, 5), "elevation": round(el, 5)}


def direction(a: dict[str, float]) -> np.ndarray:
    """Unit vector from the target to the camera for widget angles ``a`` (inverse of :func:`angles`)."""
    az, el = float(a["azimuth"]), float(a["elevation"])
    return np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])


def view_for(mus: Any) -> dict[str, float]:
    """Widget angles of the view that fans the class directions out, for one μ (K×3) or several
    epochs' μ (a list of K×3 arrays, scored together).

    Ties (a view and its mirror image score alike) go to the view nearest :data:`FALLBACK`, so the
    choice is deterministic.
    """
    if isinstance(mus, np.ndarray) and mus.ndim == 2:
        mus = [mus]
    sets = [u for u in (_units(m) for m in mus) if len(u) >= 2]
    if not sets:
        return dict(FALLBACK)
    second = sum(u.T @ u for u in sets)
    vals, vecs = np.linalg.eigh(second)
    pca = vecs[:, 0] * (1.0 if vecs[1, 0] >= 0 else -1.0)
    views = np.concatenate([_GRID, pca[None]])
    views = views[np.abs(np.arcsin(np.clip(views[:, 1], -1, 1))) <= MAX_ELEVATION + 1e-9]
    score = np.mean([_score(u, views) for u in sets], axis=0)
    near = views @ direction(FALLBACK)
    best = np.flatnonzero(score >= score.max() - 1e-6)
    return angles(views[best[np.argmax(near[best])]])


def _pick(epochs: list[int]) -> list[int]:
    if len(epochs) <= MAX_EPOCHS:
        return epochs
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, MAX_EPOCHS)).astype(int))
    return [epochs[i] for i in idx]


def default_camera(
    store: Any, model: str | None = None, condition: str = "clean"
) -> dict[str, float]:
    """Default widget angles of every view of ``model``: :func:`view_for` of its class directions
    μ_c (the sample embedding's, which frame every layer's regions too) over its epochs;
    :data:`FALLBACK` without any.

    ``model=None``: the study's own model (``meta["model_name"]``), else the first stored.
    """
    models = store.models()
    if model is None:
        model = str(store.meta.get("model_name") or "main")
        if model not in models and models:
            model = models[0]
    keys = store.find(SampleEmbedding, model=model, layer=SAMPLE)
    if not keys:
        return dict(FALLBACK)
    conditions = {k.condition for k in keys}
    cond = (
        condition
        if condition in conditions
        else ("clean" if "clean" in conditions else sorted(conditions)[0])
    )
    epochs = sorted({k.epoch for k in keys if k.condition == cond})
    mus = [store.get(Key(model=model, condition=cond, epoch=e, layer=SAMPLE), SampleEmbedding).mu
           for e in _pick(epochs)]  # fmt: skip
    return view_for(mus)
