"""Embed new features with a fitted embedding: no fit, the reference's M, μ, π or Λ as they are.

The paper reads adversarial inputs (Sec. 4, attack experiment) and distilled students (Sec. 4,
distillation experiment) in the frame of a clean, fitted embedding. :func:`project` is that one
operation for both record kinds, with the checks that make it meaningful: the feature width must
match the reference's projection, and regional rows must be the reference's (image, cell) rows
when the reference's per-region importance weights w are carried over.
"""

from __future__ import annotations

from typing import overload

import numpy as np

from patternviz_widget.engine.method.embed import project_samples
from patternviz_widget.engine.method.region_embed import project_regions
from patternviz_widget.errors import InputError
from patternviz_widget.results.records import (
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
    SampleRecord,
)


@overload
def project(
    record: SampleRecord,
    reference: SampleEmbedding,
    source: str = "",
    labels: np.ndarray | None = None,
    fix: str = "",
) -> SampleEmbedding: ...
@overload
def project(
    record: RegionRecord,
    reference: RegionEmbedding,
    source: str = "",
    labels: np.ndarray | None = None,
    fix: str = "",
) -> RegionEmbedding: ...
def project(record, reference, source="", labels=None, fix=""):  # type: ignore[no-untyped-def]
    """Return ``record``'s features embedded with ``reference`` (a fitted embedding of the same kind).

    Args:
        record: a SampleRecord (f and logits) or a RegionRecord (f^(r) and its rows).
        reference: the fitted SampleEmbedding / RegionEmbedding to read it with.
        source: the reference's key, stored as ``params["projected_from"]``.
        labels: true classes of the sample rows (reported in the sample metrics only).
        fix: a sentence appended to a shape error, saying what the caller can do about it.

    The result's ``params`` are the reference's plus ``projected=True`` and ``projected_from``.
    A sample projection computes the KL and agreement metrics at the reference's temperature T.
    A regional projection keeps the reference's w when the row counts agree (the same rows), else
    w is NaN (importance weights belong to the reference's regions).

    Raises:
        InputError: a feature width that the reference's M or Λ cannot take (the message names
            both shapes and ``fix``), or a record of another kind than the reference.
    """
    hint = f" {fix}" if fix else ""
    if isinstance(record, SampleRecord) and isinstance(reference, SampleEmbedding):
        d, want = record.features.shape[1], np.asarray(reference.M).shape[1]
        if d != want:
            raise InputError(
                f"The sample features have D = {d} but the reference embedding's M expects {want}.{hint}"
            )
        emb = project_samples(record.features, reference, probs=record.logits, labels=labels)
        emb.params["projected_from"] = source
        return emb
    if isinstance(record, RegionRecord) and isinstance(reference, RegionEmbedding):
        lam = np.asarray(reference.Lambda, np.float32)
        if record.features.shape[1] != lam.shape[1]:
            raise InputError(
                f"The regional features have C = {record.features.shape[1]} channels but the reference "
                f"Λ is {lam.shape[0]}×{lam.shape[1]}.{hint}"
            )
        h = project_regions(record.features, reference)
        w = (
            reference.w
            if np.asarray(reference.w).shape[0] == h.shape[0]
            else np.full(h.shape[0], np.nan, np.float32)
        )
        return RegionEmbedding(
            h=h,
            Lambda=lam,
            w=w,
            mean_strength=reference.mean_strength,
            method=reference.method,
            params=dict(reference.params, projected=True, projected_from=source),
        )
    raise InputError(
        f"project() takes a SampleRecord with a SampleEmbedding or a RegionRecord with a RegionEmbedding; "
        f"got {type(record).__name__} with {type(reference).__name__}."
    )
