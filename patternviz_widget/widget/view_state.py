"""View-state logic of :class:`~patternviz_widget.widget.patternviz.PatternViz`: defaults, checks, the
knowledge-point summary the charts draw, and the tidy table of a selection."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_choice as check_choice  # the widget's validators
from .._validate import did_you_mean
from ..defaults import THRESHOLD
from ..errors import InputError
from ..results import SAMPLE, Key, RegionEmbedding, RegionRecord, ResultStore, SampleEmbedding
from ..results.query import class_names
from . import payload

FEATURE_KINDS = ("regions", "samples")
MODES = ("embedding", "forward")
COMPARE = ("", "condition", "model", "epoch")
RENDERERS = ("auto", "webgl", "webgl-cpu", "canvas2d")


def check_name(value: str, valid: list[str], what: str) -> str:
    """Return ``value`` if valid (or nothing is stored yet), else raise listing close names."""
    if valid and value not in valid:
        raise InputError(f"Unknown {what} {value!r}. {did_you_mean(str(value), valid, what)}")
    return value


def check_threshold(value: object) -> float:
    """Return τ as a float in [0, 1] or raise naming the fix."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"threshold (τ) must be a number in [0, 1], got {value!r}.") from None
    if not 0.0 <= v <= 1.0 or not np.isfinite(v):
        raise InputError(f"threshold (τ) must be in [0, 1] (the paper uses {THRESHOLD}), got {v}.")
    return v


def check_index(value: object, n: int, what: str) -> int:
    """Return ``value`` as an int in [0, n) (any int when n == 0) or raise."""
    i = int(value)  # type: ignore[call-overload]
    if n and not 0 <= i < n:
        raise InputError(f"{what} must be in [0, {n}), got {i}.")
    return i


#: The camera trait's fields (radians, y up; see the widget's docs): all optional, {} = fit to the data.
CAMERA_FIELDS = ("azimuth", "elevation", "distance", "target")
#: The widget's height in CSS pixels must lie in this range.
HEIGHT_RANGE = (200, 4000)


def check_camera(value: object) -> dict:
    """Return the camera trait with float fields, or raise naming the field and the fix."""
    if not isinstance(value, dict):
        raise InputError(
            f"camera must be a dict such as {{'azimuth': 0.7, 'elevation': 0.4}}, got {value!r}."
        )
    unknown = [k for k in value if k not in CAMERA_FIELDS]
    if unknown:
        raise InputError(
            f"camera has unknown field {unknown[0]!r}; its fields are {', '.join(CAMERA_FIELDS)}."
        )
    out: dict[str, Any] = {}
    for name, v in value.items():
        if name == "target":
            ok = isinstance(v, (list, tuple)) and len(v) == 3 and all(_is_finite(x) for x in v)
            if not ok:
                raise InputError(f"camera['target'] must be 3 finite numbers [x, y, z], got {v!r}.")
            out[name] = [float(x) for x in v]
            continue
        if not _is_finite(v):
            raise InputError(
                f"camera[{name!r}] must be a finite number (radians for angles), got {v!r}."
            )
        if name == "distance" and not float(v) > 0:  # type: ignore[arg-type]
            raise InputError(f"camera['distance'] must be > 0, got {v!r}.")
        out[name] = float(v)  # type: ignore[arg-type]
    return out


def _is_finite(x: object) -> bool:
    return (
        isinstance(x, (int, float, np.integer, np.floating))
        and not isinstance(x, bool)
        and bool(np.isfinite(x))
    )


def check_height(value: object) -> int:
    """Return the widget height in pixels, or raise naming the range."""
    lo, hi = HEIGHT_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise InputError(
            f"height must be a whole number of pixels from {lo} to {hi} (default 660), got {value!r}."
        )
    return int(value)


def check_compare_with(store: ResultStore, compare: str, key: Key, value: str) -> str:
    """Return ``value`` if the right-hand view of compare mode ``compare`` may show it, else raise."""
    if not value:
        return value
    if not compare:
        raise InputError(
            f"compare_with={value!r} needs a compare mode: set compare='condition', 'model' or "
            "'epoch' first (compare_with is the right-hand view's value of that field)."
        )
    valid = compare_values(store, compare, key)
    if not valid:
        raise InputError(
            f"There is no other {compare} to compare {key.model}|{key.condition}|{key.epoch} with, "
            f"so compare_with={value!r} cannot be shown. Capture and embed another {compare} first."
        )
    return check_name(value, valid, f"{compare} to compare with")


def point_count(store: ResultStore, key: Key) -> int | None:
    """Points the view of ``key`` shows (regions of its layer, or images), or None when unknown."""
    if key.is_sample:
        return int(store.probe.labels.shape[0]) if store.probe is not None else None
    if store.has(key, RegionRecord):
        return int(store.get(key, RegionRecord).image.shape[0])
    keys = store.find(RegionRecord, layer=key.layer)
    return int(store.get(keys[0], RegionRecord).image.shape[0]) if keys else None


def check_ids(store: ResultStore, key: Key, ids: np.ndarray) -> None:
    """Raise InputError when an id is not a point of the view of ``key``."""
    n = point_count(store, key)
    if n is not None and ids.size and int(ids.max()) >= n:
        what = "images" if key.is_sample else f"regions of layer {key.layer!r}"
        raise InputError(
            f"select: id {int(ids.max())} is not a point of this view, which has {n} {what} "
            f"(ids 0..{n - 1}). Pass row ids of the current layer (see w.selected_regions()['region'])."
        )


def embedded_layers(store: ResultStore, model: str | None = None) -> list[str]:
    """Region layers that have a RegionEmbedding (capture order)."""
    have = {k.layer for k in store.find(RegionEmbedding) if model in (None, k.model)}
    return [name for name in store.layers() if name in have]


def epochs_for(store: ResultStore, model: str, condition: str, kind: str, layer: str) -> list[int]:
    """Epochs with an embedding for (model, condition) and the current layer (or samples)."""
    rec = SampleEmbedding if kind == "samples" else RegionEmbedding
    want = SAMPLE if kind == "samples" else layer
    keys = store.find(rec, model=model, condition=condition)
    eps = sorted({k.epoch for k in keys if k.layer == want})
    return eps or sorted({k.epoch for k in keys})


def defaults(store: ResultStore) -> dict[str, Any]:
    """The first view of a store: its own model, clean data, the deepest layer, the latest epoch."""
    models = store.models()
    model = str(store.meta.get("model_name", "main"))
    if models and model not in models:
        model = models[0]
    conditions = store.conditions(model)
    condition = "clean" if "clean" in conditions or not conditions else conditions[0]
    layers = embedded_layers(store, model) or store.layers(model)
    kind = "regions" if embedded_layers(store, model) else "samples"
    layer = layers[-1] if layers else ""
    eps = epochs_for(store, model, condition, kind, layer)
    return {
        "model": model,
        "condition": condition,
        "layer": layer,
        "feature_kind": kind,
        "epoch": eps[-1] if eps else 0,
    }


def compare_values(store: ResultStore, compare: str, key: Key) -> list[str]:
    """Values the right-hand view may take in compare mode ``compare`` (as strings)."""
    if compare == "condition":
        return [c for c in store.conditions(key.model) if c != key.condition]
    if compare == "model":
        return [m for m in store.models() if m != key.model]
    if compare == "epoch":
        return [str(e) for e in store.epochs(key.model, key.condition) if e != key.epoch]
    return []


def kp_summary(
    study: Any, kn: payload.Knowledge, model: str, condition: str, threshold: float, cache: dict
) -> dict[str, Any]:
    """Knowledge points per image for every (layer, epoch) of one (model, condition): what the
    sparkline and the dashboard's bqplot charts draw. Cached per (key, revision, τ)."""
    store = study.store
    layers: dict[str, Any] = {}
    for layer in embedded_layers(store, model):
        keys = [
            k for k in store.find(RegionEmbedding, model=model, condition=condition, layer=layer)
        ]
        row: dict[str, list] = {
            "epochs": [],
            "total": [],
            "reliable": [],
            "r_reliable": [],
            "warning": [],
        }
        for key in keys:
            ck = (str(key), kn.rev.get(str(key), 0), round(float(threshold), 6))
            if ck not in cache:
                kp = kn.get(key, threshold)
                cache[ck] = (
                    float(kp.mean_total),
                    float(kp.mean_reliable),
                    float(kp.r_reliable),
                    getattr(kp, "warning", None),
                )
            total, reliable, r_rel, warning = cache[ck]
            row["epochs"].append(key.epoch)
            row["total"].append(_finite(total))
            row["reliable"].append(_finite(reliable))
            row["r_reliable"].append(_finite(r_rel))
            row["warning"].append(warning)
        layers[layer] = row
    return {"model": model, "condition": condition, "threshold": float(threshold), "layers": layers}


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def selected_table(
    study: Any, kn: payload.Knowledge, key: Key, ids: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    """Columns of the selected points (one row each): see :meth:`PatternViz.selected_regions`."""
    store = study.store
    names = np.asarray(class_names(store) or ["?"], dtype=object)
    labels = np.asarray(store.probe.labels) if store.probe is not None else None
    ids = np.asarray(ids, dtype=np.int64)
    if key.is_sample:
        n = store.get(key, SampleEmbedding).g.shape[0]
        image = np.arange(n)
        grid = np.zeros((n, 2), np.int64)
    else:
        rec = store.get(key, RegionRecord)
        n = rec.image.shape[0]
        image = np.asarray(rec.image, np.int64)
        grid = np.asarray(rec.grid, np.int64)
    ids = ids[(ids >= 0) & (ids < n)]
    f = payload._kp_fields(kn.get(key, threshold))
    label = labels[image[ids]] if labels is not None else np.full(ids.size, -1)
    data_index = store.probe.data_index[image[ids]] if store.probe is not None else image[ids]
    pred = np.asarray(f["predicted"])[ids]
    return {
        "region": ids,
        "image": image[ids],
        "data_index": np.asarray(data_index, np.int64),
        "row": grid[ids, 0],
        "col": grid[ids, 1],
        "label": np.asarray(label, np.int64),
        "class_name": names[np.clip(label, 0, len(names) - 1)] if ids.size else names[:0],
        "predicted": pred.astype(np.int64),
        "predicted_name": names[np.clip(pred, 0, len(names) - 1)] if ids.size else names[:0],
        "discrimination": np.asarray(f["discrimination"], np.float32)[ids],
        "is_kp": np.asarray(f["is_kp"], bool)[ids],
        "is_reliable": (np.asarray(f["is_kp"], bool) & np.asarray(f["is_reliable"], bool))[ids],
    }


def _cells(store: ResultStore, layer: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(image, grid, grid_shape) of the rows of ``layer`` (samples: one whole-image cell each)."""
    if layer == SAMPLE:
        n = store.probe.labels.shape[0] if store.probe is not None else 0
        return np.arange(n), np.zeros((n, 2), np.int64), (1, 1)
    keys = store.find(RegionRecord, layer=layer)
    if not keys:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.int64), (1, 1)
    rec = store.get(keys[0], RegionRecord)
    shape = (int(rec.grid_shape[0]), int(rec.grid_shape[1]))
    return np.asarray(rec.image, np.int64), np.asarray(rec.grid, np.int64), shape


def map_selection(
    store: ResultStore, old_layer: str, new_layer: str, ids: np.ndarray
) -> np.ndarray:
    """The rows of ``new_layer`` covering the same image area as rows ``ids`` of ``old_layer``:
    a new region is selected when its grid-cell centre lies in a selected old cell of the same
    image; an image (sample) when any of its regions is; all regions of a selected image. Region identity differs between layers; image area does not."""
    ids = np.asarray(ids, np.int64)
    if old_layer == new_layer or ids.size == 0:
        return ids
    o_img, o_grid, (o_r, o_c) = _cells(store, old_layer)
    n_img, n_grid, (n_r, n_c) = _cells(store, new_layer)
    ids = ids[ids < o_img.shape[0]]
    if ids.size == 0 or n_img.size == 0:
        return np.zeros(0, np.int64)
    if new_layer == SAMPLE:  # an image is selected when any of its regions is
        return np.unique(o_img[ids])
    res = 32  # per-image raster of the selected area, in image-normalised coordinates
    images, slot = np.unique(o_img[ids], return_inverse=True)
    area = np.zeros((images.size, res, res), bool)
    r0 = np.floor(o_grid[ids, 0] / o_r * res).astype(int)
    r1 = np.ceil((o_grid[ids, 0] + 1) / o_r * res).astype(int)
    c0 = np.floor(o_grid[ids, 1] / o_c * res).astype(int)
    c1 = np.ceil((o_grid[ids, 1] + 1) / o_c * res).astype(int)
    for s, a, b, c, d in zip(slot, r0, r1, c0, c1, strict=True):
        area[s, a:b, c:d] = True
    pos = np.searchsorted(images, n_img)
    known = (pos < images.size) & (images[np.minimum(pos, images.size - 1)] == n_img)
    py = np.clip(((n_grid[:, 0] + 0.5) / n_r * res).astype(int), 0, res - 1)
    px = np.clip(((n_grid[:, 1] + 0.5) / n_c * res).astype(int), 0, res - 1)
    hit = np.zeros(n_img.shape[0], bool)
    hit[known] = area[pos[known], py[known], px[known]]
    return np.flatnonzero(hit)
