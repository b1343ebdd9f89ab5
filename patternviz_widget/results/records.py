"""Typed records: dataclasses of numpy arrays plus small JSON-able metadata.

Every record type is registered in :data:`RECORD_TYPES` under its class name so that
:mod:`patternviz_widget.results.io` can save and load it without pickle. Fields annotated as
``np.ndarray`` (or ``np.ndarray | None``) are stored as ``.npy`` members; every other field must be
JSON-able (str, int, float, bool, None, lists/tuples/dicts of those).

Shapes use: N images in the probe set, K classes, D sample-feature dim, M regions kept for a layer,
C channels of that layer, d = 3 embedding dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

RECORD_TYPES: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a record type known to the store and to save/load."""
    RECORD_TYPES[cls.__name__] = cls
    return cls


class Record:
    """Mixin: splits a dataclass into arrays and JSON metadata and back."""

    kind: ClassVar[str]

    def split(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                meta[f.name] = list(value) if isinstance(value, tuple) else value
        return arrays, meta

    @classmethod
    def join(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Record:
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in arrays:
                values[f.name] = arrays[f.name]
            elif f.name in meta:
                v = meta[f.name]
                values[f.name] = tuple(v) if isinstance(v, list) and "tuple" in str(f.type) else v
        return cls(**values)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.split()[0].values())


@register
@dataclass
class ProbeRecord(Record):
    """The fixed images a study analyses (one per study). Kept small: thumbnails, not inputs.

    labels: int64[N] true classes. thumbnails: uint8[N, h, w, 3] for display (h, w <= 64).
    masks: uint8[N, H, W] foreground masks at input resolution, or None. input_size: (H, W) of
    the model input, the frame of every region box. class_names: K strings. data_index: int64[N]
    index of each probe image in the user's data.
    """

    labels: np.ndarray
    thumbnails: np.ndarray
    input_size: tuple[int, int]
    class_names: list[str]
    data_index: np.ndarray
    masks: np.ndarray | None = None


@register
@dataclass
class SampleRecord(Record):
    """Sample-level capture for one (model, condition, epoch): key.layer == SAMPLE.

    features: float32[N, D], the input of the classifier head (paper Sec. 3, f).
    logits: float32[N, K], the model's output. source: the module whose input was taken.
    """

    features: np.ndarray
    logits: np.ndarray
    source: str = ""


@register
@dataclass
class RegionRecord(Record):
    """Regional features of one layer for one (model, condition, epoch) (paper Sec. 3, f^(r)).

    features: float32 or float16 [M, C]. image: int32[M] index into the probe set.
    grid: int16[M, 2] (row, col) of the region on the layer's grid. box: float32[M, 4]
    (x0, y0, x1, y1) in input pixels that the region sees. grid_shape: (rows, cols).
    kind: "conv" or "tokens".
    """

    features: np.ndarray
    image: np.ndarray
    grid: np.ndarray
    box: np.ndarray
    grid_shape: tuple[int, int]
    kind: str = "conv"  # type: ignore[misc]  # the file format names this field "kind" too


@register
@dataclass
class SampleEmbedding(Record):
    """The paper's sample embedding g = M f (paper Sec. 3.2) for one key with layer == SAMPLE.

    g: float32[N, 3]. mu: float32[K, 3] unit class directions. pi: float32[K] class priors.
    M: float32[3, D]. kl: final mean KL(P || Q_M) per sample. method: "paper", "pca", ...
    params: the hyper-parameters used (JSON).
    """

    g: np.ndarray
    mu: np.ndarray
    pi: np.ndarray
    M: np.ndarray
    kl: float = float("nan")
    method: str = "paper"
    params: dict = field(default_factory=dict)


@register
@dataclass
class RegionEmbedding(Record):
    """The paper's regional embedding h = Λ f^(r) (paper Sec. 3.3) for one (key, layer).

    h: float32[M, 3], rows aligned with the RegionRecord of the same key. Lambda: float32[3, C].
    w: float32[M] region importance w_i^(r) of each kept region in its image (sums to 1 per image).
    mean_strength: the layer's mean ||h||, used to normalise before counting knowledge points.
    """

    h: np.ndarray
    Lambda: np.ndarray
    w: np.ndarray
    mean_strength: float = 1.0
    method: str = "paper"
    params: dict = field(default_factory=dict)


@register
@dataclass
class ArrayRecord(Record):
    """Free-form named arrays (attack traces, distillation histograms, ...). ``name`` says what."""

    arrays: dict = field(default_factory=dict)
    name: str = ""
    meta: dict = field(default_factory=dict)

    def split(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {f"arrays.{k}": v for k, v in self.arrays.items()}, {
            "name": self.name,
            "meta": self.meta,
        }

    @classmethod
    def join(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Record:
        inner = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("arrays.")}
        return cls(arrays=inner, name=meta.get("name", ""), meta=meta.get("meta", {}))
