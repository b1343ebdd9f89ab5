"""What a figure reads: a study (or store, or study file) and a view state -> arrays to draw.

Figures never compute features or embeddings; they read records from the study's
:class:`~patternviz_widget.results.ResultStore` and ask the engine for knowledge points
(``study.knowledge_points``), exactly as the widget does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._style import glyph_codes
from ..defaults import THRESHOLD
from ..errors import InputError, NotFittedError
from ..results import SAMPLE, Key, ProbeRecord, RegionEmbedding, RegionRecord, query
from ..results import SampleEmbedding as SampleEmbeddingRecord
from ..results.query import SAMPLE_NAMES as SAMPLE_NAMES  # the figures read them from here
from ..results.query import is_sample_layer as is_sample_layer
from ..study import Study


def as_study(source: Any) -> Study:
    """Return ``source`` as a :class:`Study` (see :meth:`Study.from_source`)."""
    return Study.from_source(source, needed_by="A figure")


def probe(study: Study) -> ProbeRecord:
    """The study's probe record, or an error naming the step that makes it."""
    if study.store.probe is None:
        raise NotFittedError("This study has no probe images yet. Run study.capture() first.")
    return study.store.probe


def class_names(study: Study) -> list[str]:
    """Class names (:func:`patternviz_widget.results.query.class_names`)."""
    return query.class_names(study.store)


def resolve_key(
    study: Study,
    kind: type,
    layer: str | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
) -> Key:
    """The :class:`Key` a view state names (:func:`patternviz_widget.results.query.resolve_key`)."""
    return query.resolve_key(study.store, kind, layer, epoch, condition, model)


def default_model(study: Study) -> str:
    """The model a view shows when none is named: the study's own, else the first stored."""
    return query.default_model(study.store)


def mu_for(study: Study, key: Key) -> np.ndarray:
    """The class directions μ_c (K×3) that frame ``key``: its own sample embedding, else the clean one."""
    return query.mu_for(study.store, key)  # type: ignore[return-value]


@dataclass
class RegionView:
    """Everything a regional figure draws for one key.

    h: float32[M, 3] regional embeddings. image: int[M] probe image of each row. label: int[M] true
    class of that image. grid: int[M, 2] (row, col). grid_shape: (rows, cols). glyph: uint8[M] codes
    of :data:`~patternviz_widget._style.GLYPH_CODES`. kp: the engine's KnowledgePoints. mu: K×3.
    """

    key: Key
    h: np.ndarray
    image: np.ndarray
    label: np.ndarray
    grid: np.ndarray
    grid_shape: tuple[int, int]
    glyph: np.ndarray
    kp: Any
    mu: np.ndarray
    mean_strength: float


def knowledge(study: Study, key: Key, threshold: float) -> Any:
    """The engine's knowledge points of ``key`` at threshold τ (``study.knowledge_points``)."""
    return study.knowledge_points(
        key.layer, epoch=key.epoch, condition=key.condition, model=key.model, threshold=threshold
    )


def region_view(
    study: Study,
    layer: str,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
) -> RegionView:
    """Read the regional embedding, regions and knowledge points of one view state."""
    key = resolve_key(study, RegionEmbedding, layer, epoch, condition, model)
    emb = study.store.get(key, RegionEmbedding)
    regions = study.store.get(key, RegionRecord)
    labels = np.asarray(probe(study).labels)
    image = np.asarray(regions.image, dtype=np.int64)
    kp = knowledge(study, key, threshold)
    return RegionView(
        key=key,
        h=np.asarray(emb.h, dtype=np.float32),
        image=image,
        label=labels[image],
        grid=np.asarray(regions.grid, dtype=np.int64),
        grid_shape=tuple(int(v) for v in regions.grid_shape),  # type: ignore[arg-type]
        glyph=glyph_codes(np.asarray(kp.is_kp, bool), np.asarray(kp.is_reliable, bool)),
        kp=kp,
        mu=mu_for(study, key),
        mean_strength=float(emb.mean_strength),
    )


@dataclass
class SampleView:
    """Everything the sample-level figure draws for one key: g (N×3), labels (N), the model's
    prediction (N), glyph codes (N), μ (K×3)."""

    key: Key
    g: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    glyph: np.ndarray
    mu: np.ndarray


def sample_view(
    study: Study,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
) -> SampleView:
    """Read the sample embedding g = M f and μ_c of one view state, with the widget's sample glyphs.

    A sample is drawn as a knowledge point when the network's softmax(z / T) peaks at ≥ τ, reliable
    when its prediction is the true class: the widget's rule
    (:func:`patternviz_widget.results.query.sample_knowledge`).
    """
    key = resolve_key(study, SampleEmbeddingRecord, SAMPLE, epoch, condition, model)
    emb = study.store.get(key, SampleEmbeddingRecord)
    labels = np.asarray(probe(study).labels, dtype=np.int64)
    fields = query.sample_knowledge(study.store, key, threshold)
    return SampleView(
        key=key,
        g=np.asarray(emb.g, np.float32),
        label=labels,
        predicted=np.asarray(fields["predicted"], np.int64),
        glyph=glyph_codes(
            np.asarray(fields["is_kp"], bool), np.asarray(fields["is_reliable"], bool)
        ),
        mu=np.asarray(emb.mu, np.float32),
    )


def check_selection(selection: Any, n: int, what: str = "selection") -> np.ndarray | None:
    """Return ``selection`` (row indices) as a sorted int array within [0, n), or None for none."""
    if selection is None:
        return None
    sel = np.asarray(selection).reshape(-1)
    if sel.size == 0:
        return None
    if sel.dtype == bool:
        if sel.size != n:
            raise InputError(
                f"A boolean {what} must have {n} entries (one per point), got {sel.size}."
            )
        return np.flatnonzero(sel)
    if not np.issubdtype(sel.dtype, np.integer):
        raise InputError(f"{what} must hold integer row indices, got dtype {sel.dtype}.")
    if sel.min() < 0 or sel.max() >= n:
        raise InputError(
            f"{what} indices must lie in [0, {n}); got {int(sel.min())}..{int(sel.max())}."
        )
    return np.unique(sel)


def title_for(key: Key, extra: str = "") -> str:
    """The title every view of ``key`` carries (the widget uses the same words)."""
    where = "samples" if key.layer == SAMPLE else key.layer
    parts = [where, f"epoch {key.epoch}", key.condition]
    if key.model not in ("main", ""):
        parts.append(key.model)
    return " · ".join(parts) + (f" — {extra}" if extra else "")
