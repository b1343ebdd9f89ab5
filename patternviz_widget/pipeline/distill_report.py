"""``study.distill_report()``: the paper's distillation measurements of a teacher | students study.

Works on the study that :func:`~patternviz_widget.pipeline.compare.compare` returns, whose students
are projected with the teacher's Λ and μ (our reading of the paper's distillation experiment: "both projected with the same
Λ"), so regions of one row are the same image cell for every model:

* knowledge points per image, total and reliable, per layer and model (the paper's first distillation measurement), at each model's
  latest epoch;
* histograms over regions of 1 − cos(h_s, h_t) on [0, 2] and of (‖h_s‖ − ‖h_t‖) / the teacher's mean
  strength on [−3, 2] (the paper's axes), per layer and student;
* emergence: each model's mean knowledge points per image over its epochs, and the first epoch at
  which half of the final count is reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from patternviz_widget._validate import check_probability
from patternviz_widget.defaults import THRESHOLD
from patternviz_widget.errors import InputError, NotFittedError
from patternviz_widget.pipeline.compare import TEACHER
from patternviz_widget.pipeline.embed import study_knowledge_points
from patternviz_widget.results.records import RegionEmbedding

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState

COS_RANGE = (0.0, 2.0)
STRENGTH_RANGE = (-3.0, 2.0)


@dataclass
class DistillReport:
    """The paper's distillation measurements for a compared study. ``models`` (teacher first) × ``layers`` arrays:

    kp_total / kp_reliable: float32[models, layers] mean knowledge points per image (NaN where a
    model has no embedding of a layer). cos_hist / strength_hist: per student, int64[layers, bins]
    counts over ``cos_edges`` / ``strength_edges`` (values outside the range go to the end bins).
    cos_median, cos_share_small (share with 1 − cos < 0.1), strength_mean_abs: float32[layers] per
    student. epochs / emergence_total / emergence_reliable: per model, int64[E] and
    float32[E, layers]; half_epoch: per model, int64[layers] first epoch with ≥ half the final total
    (−1 when the final total is 0).
    """

    models: list[str]
    layers: list[str]
    threshold: float
    kp_total: np.ndarray
    kp_reliable: np.ndarray
    cos_edges: np.ndarray
    strength_edges: np.ndarray
    cos_hist: dict[str, np.ndarray] = field(default_factory=dict)
    strength_hist: dict[str, np.ndarray] = field(default_factory=dict)
    cos_median: dict[str, np.ndarray] = field(default_factory=dict)
    cos_share_small: dict[str, np.ndarray] = field(default_factory=dict)
    strength_mean_abs: dict[str, np.ndarray] = field(default_factory=dict)
    epochs: dict[str, np.ndarray] = field(default_factory=dict)
    emergence_total: dict[str, np.ndarray] = field(default_factory=dict)
    emergence_reliable: dict[str, np.ndarray] = field(default_factory=dict)
    half_epoch: dict[str, np.ndarray] = field(default_factory=dict)

    def table(self) -> str:
        """Plain-text tables: KPs (total / reliable) per layer and model, then the distances."""
        w = max(14, *(len(m) + 2 for m in self.models))
        head = "model".ljust(w) + "".join(f"{n:>24}" for n in self.layers)
        lines = [f"knowledge points per image, total / reliable (τ = {self.threshold:g})", head]
        for i, m in enumerate(self.models):
            cells = "".join(
                f"{self.kp_total[i, j]:>14.2f} / {self.kp_reliable[i, j]:>7.2f}"
                for j in range(len(self.layers))
            )
            lines.append(m.ljust(w) + cells)
        lines += ["", "1 − cos(h_s, h_t): median, share < 0.1 | mean |Δ strength|", head]
        for m in self.cos_median:
            cells = "".join(
                f"{self.cos_median[m][j]:>10.3f}, {self.cos_share_small[m][j]:>4.0%} | {self.strength_mean_abs[m][j]:>5.2f}"
                for j in range(len(self.layers))
            )
            lines.append(m.ljust(w) + cells)
        return "\n".join(lines)


def distill_report(
    state: StudyState, epoch: int | None = None, threshold: float = THRESHOLD, bins: int = 40
) -> DistillReport:
    """Return a :class:`DistillReport` of a study made by ``pv.Study.compare`` (see its docstring).

    Args:
        epoch: the epoch compared for every model (None: each model's latest).
        threshold: τ of the knowledge points (paper: 0.4).
        bins: histogram bins on each range.
    """
    threshold = check_probability(threshold, "threshold (τ)")
    store = state.store
    models = list(store.meta.get("compare", {}).get("models", []))
    if TEACHER not in models or len(models) < 2:
        raise InputError(
            "distill_report() reads a teacher | student study: make it with "
            "pv.Study.compare(teacher_study, student_study)."
        )
    layers = [
        n
        for n in store.layers(model=TEACHER)
        if store.find(RegionEmbedding, model=TEACHER, layer=n)
    ]
    if not layers:
        raise NotFittedError(
            "The teacher has no regional embedding. Run teacher_study.embed() before compare()."
        )
    rep = DistillReport(
        models, layers, threshold,
        kp_total=np.full((len(models), len(layers)), np.nan, np.float32),
        kp_reliable=np.full((len(models), len(layers)), np.nan, np.float32),
        cos_edges=np.linspace(*COS_RANGE, bins + 1).astype(np.float32),
        strength_edges=np.linspace(*STRENGTH_RANGE, bins + 1).astype(np.float32),
    )  # fmt: skip
    for i, m in enumerate(models):
        for j, layer in enumerate(layers):
            e = _epoch(store, m, layer, epoch)
            if e is None:
                continue
            kp = study_knowledge_points(
                state, layer, epoch=e, condition="clean", model=m, threshold=threshold
            )
            rep.kp_total[i, j], rep.kp_reliable[i, j] = kp.mean_total, kp.mean_reliable
        _emergence(state, rep, m, layers, threshold)
    for m in models[1:]:
        _distances(store, rep, m, layers, epoch)
    return rep


def _epoch(store, model: str, layer: str, epoch: int | None) -> int | None:
    have = [
        k.epoch for k in store.find(RegionEmbedding, model=model, condition="clean", layer=layer)
    ]
    if not have:
        return None
    if epoch is None:
        return max(have)
    return int(epoch) if int(epoch) in have else None


def _emergence(
    state: StudyState, rep: DistillReport, model: str, layers: list[str], threshold: float
) -> None:
    epochs = sorted(
        {k.epoch for k in state.store.find(RegionEmbedding, model=model, condition="clean")}
    )
    tot = np.full((len(epochs), len(layers)), np.nan, np.float32)
    rel = np.full_like(tot, np.nan)
    for a, e in enumerate(epochs):
        for j, layer in enumerate(layers):
            if state.store.find(
                RegionEmbedding, model=model, condition="clean", epoch=e, layer=layer
            ):
                kp = study_knowledge_points(
                    state, layer, epoch=e, condition="clean", model=model, threshold=threshold
                )
                tot[a, j], rel[a, j] = kp.mean_total, kp.mean_reliable
    half = np.full(len(layers), -1, np.int64)
    for j in range(len(layers)):
        col = tot[:, j]
        ok = np.isfinite(col)
        if ok.any():
            final = col[ok][-1]
            hit = np.flatnonzero(ok & (col >= 0.5 * final))
            half[j] = epochs[hit[0]] if hit.size and final > 0 else -1
    rep.epochs[model] = np.asarray(epochs, np.int64)
    rep.emergence_total[model], rep.emergence_reliable[model], rep.half_epoch[model] = (
        tot,
        rel,
        half,
    )


def _distances(store, rep: DistillReport, model: str, layers: list[str], epoch: int | None) -> None:
    nb = len(rep.cos_edges) - 1
    ch = np.zeros((len(layers), nb), np.int64)
    sh = np.zeros_like(ch)
    med, small, mabs = (np.full(len(layers), np.nan, np.float32) for _ in range(3))
    for j, layer in enumerate(layers):
        et, es = _epoch(store, TEACHER, layer, epoch), _epoch(store, model, layer, epoch)
        if et is None or es is None:
            continue
        (kt,) = store.find(RegionEmbedding, model=TEACHER, condition="clean", epoch=et, layer=layer)
        (ks,) = store.find(RegionEmbedding, model=model, condition="clean", epoch=es, layer=layer)
        t, s = store.get(kt, RegionEmbedding), store.get(ks, RegionEmbedding)
        if not np.array_equal(np.asarray(t.Lambda), np.asarray(s.Lambda)):
            raise InputError(
                f"{model!r} at {layer!r} is not in the teacher's frame (another Λ). Make the study "
                "with pv.Study.compare(..., project=True) after embedding the teacher."
            )
        d_cos, d_str = student_distances(t.h, s.h, float(t.mean_strength))
        ch[j] = np.histogram(np.clip(d_cos, *COS_RANGE), bins=rep.cos_edges)[0]
        sh[j] = np.histogram(np.clip(d_str, *STRENGTH_RANGE), bins=rep.strength_edges)[0]
        med[j], small[j], mabs[j] = np.median(d_cos), (d_cos < 0.1).mean(), np.abs(d_str).mean()
    rep.cos_hist[model], rep.strength_hist[model] = ch, sh
    rep.cos_median[model], rep.cos_share_small[model], rep.strength_mean_abs[model] = (
        med,
        small,
        mabs,
    )


def student_distances(
    h_t: np.ndarray, h_s: np.ndarray, unit: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return per region 1 − cos(h_s, h_t) and (‖h_s‖ − ‖h_t‖) / ``unit`` (the teacher's mean strength)."""
    h_t, h_s = np.asarray(h_t, np.float64), np.asarray(h_s, np.float64)
    if h_t.shape != h_s.shape:
        raise InputError(
            f"Teacher and student rows differ ({h_t.shape} vs {h_s.shape}); use Study.compare."
        )
    n_t, n_s = np.linalg.norm(h_t, axis=1), np.linalg.norm(h_s, axis=1)
    cos = np.sum(h_t * h_s, axis=1) / np.maximum(n_t * n_s, 1e-12)
    return (1.0 - cos).astype(np.float32), ((n_s - n_t) / max(unit, 1e-12)).astype(np.float32)
