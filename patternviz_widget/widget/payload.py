"""What the widget sends: readers that turn store records into the columns the page draws.

No feature math happens here: embeddings come from the store, knowledge points from the engine
(``study.knowledge_points``) and the shared readings (class names, μ_c, the sample rule) from
:mod:`patternviz_widget.results.query`; this module only selects, reorders and packs them.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from .._style import (
    CLASS_COLORS,
    ELLIPSOID_SIGMA,
    GLYPH_CODES,
    GLYPHS,
    LAYER_COLORS,
    glyph_codes,
)
from ..errors import NotFittedError
from ..results import (
    SAMPLE,
    Key,
    RegionEmbedding,
    RegionRecord,
    ResultStore,
    SampleEmbedding,
)
from ..results.camera import default_camera
from ..results.query import class_names, mu_for, sample_knowledge
from ..study import Study


def as_study(source: Any) -> Study:
    """Return ``source`` as a :class:`Study` (see :meth:`Study.from_source`)."""
    return Study.from_source(source, needed_by="PatternViz")


class Knowledge:
    """Bounded cache of the engine's knowledge points per (key, revision, τ).

    ``get`` returns the engine's ``KnowledgePoints`` (regions) or a small dict for samples.
    """

    def __init__(self, study: Study, size: int = 6) -> None:
        self.study = study
        self.size = size
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()
        self.rev: dict[str, int] = {}

    def invalidate(self, key: Key) -> None:
        with self._lock:
            self.rev[str(key)] = self.rev.get(str(key), 0) + 1

    def get(self, key: Key, threshold: float) -> Any:
        ck = (str(key), self.rev.get(str(key), 0), round(float(threshold), 6))
        with self._lock:
            if ck in self._cache:
                self._cache.move_to_end(ck)
                return self._cache[ck]
        value = self._samples(key, threshold) if key.is_sample else self._regions(key, threshold)
        with self._lock:
            self._cache[ck] = value
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return value

    def _regions(self, key: Key, threshold: float) -> Any:
        return self.study.knowledge_points(
            key.layer,
            epoch=key.epoch,
            condition=key.condition,
            model=key.model,
            threshold=threshold,
        )

    def _samples(self, key: Key, threshold: float) -> dict[str, np.ndarray]:
        """Sample glyphs: the model's own prediction vs the true class, non-discriminative below τ
        (:func:`patternviz_widget.results.query.sample_knowledge`)."""
        return sample_knowledge(self.study.store, key, threshold)


def _kp_fields(kp: Any) -> dict[str, np.ndarray]:
    if isinstance(kp, dict):
        return kp
    post = np.asarray(kp.posterior, dtype=np.float32)
    return {
        "posterior": post,
        "predicted": np.asarray(kp.predicted),
        "discrimination": post.max(axis=1) if post.size else np.zeros(0, np.float32),
        "is_kp": np.asarray(kp.is_kp, bool),
        "is_reliable": np.asarray(kp.is_reliable, bool),
        "strength": np.asarray(getattr(kp, "strength", np.zeros(0)), np.float32),
    }


def _kp_flags(kp: Any) -> dict[str, np.ndarray]:
    """The two flags the glyphs need (no per-point peak: the first view does not send it)."""
    if isinstance(kp, dict):
        return kp
    return {"is_kp": np.asarray(kp.is_kp, bool), "is_reliable": np.asarray(kp.is_reliable, bool)}


def ellipsoids(xyz: np.ndarray, labels: np.ndarray, k: int) -> list[dict[str, Any] | None]:
    """Per-class covariance ellipsoids: centre and three semi-axes (ELLIPSOID_SIGMA σ), or None."""
    out: list[dict[str, Any] | None] = []
    for c in range(k):
        pts = xyz[labels == c]
        if pts.shape[0] < 4:
            out.append(None)
            continue
        pts = pts.astype(np.float64)
        centre = pts.mean(axis=0)
        vals, vecs = np.linalg.eigh(np.cov(pts.T) + 1e-12 * np.eye(3))
        axes = (vecs * (ELLIPSOID_SIGMA * np.sqrt(np.clip(vals, 0, None)))).T
        out.append({"centre": centre.round(6).tolist(), "axes": axes.round(6).tolist()})
    return out


def _subsample(n: int, max_points: int | None) -> np.ndarray | None:
    if not max_points or n <= max_points:
        return None
    rng = np.random.default_rng(n)  # stable: the same ids for every key of a layer
    return np.sort(rng.choice(n, size=int(max_points), replace=False)).astype(np.uint32)


def point_slice(
    study: Study,
    kn: Knowledge,
    key: Key,
    threshold: float,
    max_points: int | None = None,
    *,
    draw_only: bool = False,
    with_ellipsoids: bool = True,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return (meta, arrays) of one key's points: xyz, label (true class), image, glyph,
    discrimination, predicted (+ ids when subsampled). Enough to draw without the layout.

    draw_only: only xyz, label and glyph (what drawing reads; the widget's first view).
    with_ellipsoids: compute the per-class ellipsoids (else ``meta["ellipsoids"]`` is None: the
    page draws them only when shown, from the full slice that follows the first view)."""
    store = study.store
    if key.is_sample:
        emb: Any = store.get(key, SampleEmbedding)
        xyz = np.asarray(emb.g, dtype=np.float32)
        labels = (
            np.asarray(store.probe.labels) if store.probe is not None else np.zeros(len(xyz), int)
        )
        image = np.arange(len(xyz))
        mean_strength = float(np.linalg.norm(xyz, axis=1).mean()) if len(xyz) else 1.0
    else:
        emb = store.get(key, RegionEmbedding)
        xyz = np.asarray(emb.h, dtype=np.float32)
        rec = store.get(key, RegionRecord)
        image = np.asarray(rec.image)
        labels = (
            np.asarray(store.probe.labels)[image]
            if store.probe is not None
            else np.zeros(len(xyz), int)
        )
        mean_strength = float(emb.mean_strength)
    kpts = kn.get(key, threshold)
    f = _kp_fields(kpts) if not draw_only else _kp_flags(kpts)
    n = xyz.shape[0]
    k = len(class_names(store)) or (int(labels.max()) + 1 if labels.size else 1)
    meta: dict[str, Any] = {
        "key": str(key),
        "n": int(n),
        "mean_strength": mean_strength,
        "kp_total": int(f["is_kp"].sum()),
        "kp_reliable": int((f["is_kp"] & f["is_reliable"]).sum()),
        "mu": None,
        "ellipsoids": (ellipsoids(xyz, labels, k) if n else []) if with_ellipsoids else None,
        "radius": float(np.percentile(np.linalg.norm(xyz[:: max(1, n // 20_000)], axis=1), 98))
        if n
        else 1.0,
    }
    mu = mu_for(store, key, required=False)
    if mu is not None:
        meta["mu"] = mu.round(6).tolist()
    arrays = {
        "xyz": xyz,
        "label": labels.astype(np.uint8 if k <= 256 else np.uint16),
        "glyph": glyph_codes(f["is_kp"], f["is_reliable"]),
    }
    if not draw_only:
        arrays["image"] = np.asarray(image).astype(np.uint32)
        arrays["discrimination"] = np.asarray(f["discrimination"], dtype=np.float32)
        arrays["predicted"] = np.asarray(f["predicted"]).astype(np.uint8 if k <= 256 else np.uint16)
    ids = _subsample(n, max_points)
    if ids is not None:
        arrays = {name: a[ids] for name, a in arrays.items()}
        arrays["ids"] = ids
        meta["n"] = int(ids.size)
        meta["subsampled_from"] = int(n)
    return meta, arrays


def layout(store: ResultStore, layer: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return (meta, arrays) of the points of ``layer`` (shared by every key of that layer):
    image uint32, grid int16 (row, col), box float32 (x0, y0, x1, y1) input px, label (true class)."""
    labels = np.asarray(store.probe.labels) if store.probe is not None else np.zeros(0, np.int64)
    ldt = np.uint8 if labels.size == 0 or labels.max() < 256 else np.uint16
    if layer == SAMPLE:
        n = labels.shape[0]
        h, w = store.probe.input_size if store.probe is not None else (1, 1)
        return {"layer": layer, "grid_shape": [1, 1], "kind": "samples"}, {
            "image": np.arange(n, dtype=np.uint32),
            "grid": np.zeros((n, 2), np.int16),
            "box": np.tile(np.array([0, 0, w, h], np.float32), (n, 1)),
            "label": labels.astype(ldt),
        }
    keys = store.find(RegionRecord, layer=layer)
    if not keys:
        raise NotFittedError(f"No regions captured for layer {layer!r}. Run study.capture() first.")
    rec = store.get(keys[0], RegionRecord)
    image = np.asarray(rec.image).astype(np.uint32)
    return {"layer": layer, "grid_shape": [int(v) for v in rec.grid_shape], "kind": rec.kind}, {
        "image": image,
        "grid": np.asarray(rec.grid).astype(np.int16),
        "box": np.asarray(rec.box, dtype=np.float32),
        "label": (labels[image] if labels.size else np.zeros(image.shape[0])).astype(ldt),
    }


def atlas(store: ResultStore) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """All probe thumbnails tiled into ONE PNG (bytes as uint8) + labels + the tile geometry."""
    from PIL import Image  # pillow comes with matplotlib

    if store.probe is None:
        raise NotFittedError("This study has no probe images yet. Run study.capture() first.")
    thumbs = np.asarray(store.probe.thumbnails)
    if thumbs.ndim == 3:
        thumbs = np.repeat(thumbs[..., None], 3, axis=-1)
    n, th, tw = thumbs.shape[:3]
    cols = max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / cols)))
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        sheet[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = thumbs[i, ..., :3]
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format="PNG", optimize=False, compress_level=3)
    labels = np.asarray(store.probe.labels)
    meta = {
        "n": int(n),
        "cols": cols,
        "tile": [int(th), int(tw)],
        "input_size": [int(v) for v in store.probe.input_size],
        "has_masks": store.probe.masks is not None,
    }
    return meta, {
        "png": np.frombuffer(buf.getvalue(), np.uint8),
        "labels": labels.astype(np.uint16),
    }


def patch_png(store: ResultStore, image: int, box: np.ndarray, size: int = 96) -> bytes:
    """PNG of the part of probe thumbnail ``image`` that ``box`` (input pixels) covers, ``size`` px."""
    from PIL import Image

    thumb = np.asarray(store.probe.thumbnails[int(image)])
    if thumb.ndim == 2:
        thumb = np.repeat(thumb[..., None], 3, axis=-1)
    ih, iw = store.probe.input_size
    th, tw = thumb.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    c0 = int(np.clip(np.floor(x0 / iw * tw), 0, tw - 1))
    r0 = int(np.clip(np.floor(y0 / ih * th), 0, th - 1))
    c1 = int(np.clip(np.ceil(x1 / iw * tw), c0 + 1, tw))
    r1 = int(np.clip(np.ceil(y1 / ih * th), r0 + 1, th))
    crop = Image.fromarray(np.ascontiguousarray(thumb[r0:r1, c0:c1, :3]))
    scale = size / max(crop.width, crop.height)
    crop = crop.resize(
        (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.NEAREST
    )
    buf = io.BytesIO()
    crop.save(buf, format="PNG")
    return buf.getvalue()


def frame_radius(store: ResultStore, key: Key, rev: dict[str, int], cache: dict) -> float | None:
    """98th percentile of ‖h‖ (or ‖g‖) of one key, cached per revision; None without an embedding."""
    ck = (str(key), rev.get(str(key), 0))
    if ck not in cache:
        kind = SampleEmbedding if key.is_sample else RegionEmbedding
        if not store.has(key, kind):
            return None
        rec: Any = store.get(key, kind)
        xyz = np.asarray(rec.g if key.is_sample else rec.h, dtype=np.float32)
        xyz = xyz[:: max(1, len(xyz) // 20_000)]  # a strided sample is plenty for a percentile
        cache[ck] = float(np.percentile(np.linalg.norm(xyz, axis=1), 98)) if len(xyz) else 0.0
    return cache[ck]


def catalog(
    store: ResultStore, rev: dict[str, int], radius_cache: dict | None = None
) -> dict[str, Any]:
    """The small JSON the page needs to lay itself out (store.catalog() + palette + grid shapes,
    and per layer the largest radius over every key, so the camera frames all epochs at once)."""
    cat = store.catalog()
    radii: dict[str, float] = {}
    cache = {} if radius_cache is None else radius_cache
    for key in store.find(RegionEmbedding) + store.find(SampleEmbedding):
        r = frame_radius(store, key, rev, cache)
        if r is not None and np.isfinite(r):
            radii[key.layer] = max(radii.get(key.layer, 0.0), r)
    names = class_names(store)
    grids: dict[str, list[int]] = {}
    for layer in cat["layers"]:
        keys = store.find(RegionRecord, layer=layer)
        if keys:
            grids[layer] = [int(v) for v in store.get(keys[0], RegionRecord).grid_shape]
    cat.update(
        {
            "class_names": names,
            "palette": CLASS_COLORS,
            "layer_colors": LAYER_COLORS,
            "glyphs": {
                name: {"code": GLYPH_CODES[name], "label": GLYPHS[name][1]} for name in GLYPH_CODES
            },
            "grid_shapes": grids,
            "num_images": int(store.probe.labels.shape[0]) if store.probe is not None else 0,
            "rev": {k: v for k, v in rev.items() if k in cat["entries"]},
            "model_name": str(store.meta.get("model_name", "main")),
            "radius": radii,
            # the data-chosen default view of each model (results/camera.py), as the figures use
            "cameras": {m: default_camera(store, m) for m in store.models()},
        }
    )
    return cat
