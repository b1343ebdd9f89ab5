"""Knowledge-distillation figures (PAPER.md §7, §9 items 17–18): knowledge points per layer for the
teacher and its students, and histograms of how far each student's regional embeddings lie from
the teacher's (1 − cos and the strength difference), all in the teacher's frame (its Λ and μ)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._validate import check_positive_int, check_probability
from ..errors import InputError
from ..results import RegionEmbedding
from . import _data
from ._common import legend_rows, new_figure, style

#: Colours of compared models in order (teacher first): grey, then distinct hues.
MODEL_COLORS = ["#555555", "#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#f28e2b"]


def _sources(
    source: Any, students: Mapping[str, Any] | None, reference: str | None
) -> tuple[list[tuple[str, Any, str]], str]:
    """Return [(label, study, model name in that study)], reference first, and the reference label."""
    study = _data.as_study(source)
    if students:
        ref_model = reference or _data.default_model(study)
        out = [(ref_model, study, ref_model)]
        for label, other in students.items():
            other = _data.as_study(other)
            out.append((str(label), other, _data.default_model(other)))
        return out, ref_model
    models = study.store.models()
    ref = reference or ("teacher" if "teacher" in models else _data.default_model(study))
    if ref not in models:
        raise InputError(
            f"Unknown reference model {ref!r}. {_data.did_you_mean(ref, models, 'model')}"
        )
    if len(models) < 2:
        raise InputError("This study holds one model. Pass students={'name': student_study} or a "
                         "study that holds teacher and students (pv.Study.compare).")  # fmt: skip
    return [(m, study, m) for m in [ref] + [m for m in models if m != ref]], ref


def distill_knowledge(
    source: Any,
    students: Mapping[str, Any] | None = None,
    layers: Sequence[str] | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    reference: str | None = None,
    threshold: float = 0.4,
    size: tuple[float, float] = (4.2, 2.6),
) -> Figure:
    """Return total (light) and reliable (solid) knowledge points per image, per layer and model.

    PAPER.md §7 measurement 1 (teacher vs students distilled on logits or on one layer). Bars carry
    gids ``kp-total-<model>`` and ``kp-reliable-<model>``, one bar per layer.
    """
    threshold = check_probability(threshold, "threshold (τ)")
    entries, _ = _sources(source, students, reference)
    first = entries[0][1]
    if layers is None:
        have = {k.layer for k in first.store.find(RegionEmbedding, model=entries[0][2])}
        layers = [name for name in first.store.layers() if name in have]
    layers = list(layers)
    n_models = len(entries)
    width = 0.8 / n_models
    x = np.arange(len(layers))
    with style():
        fig = new_figure(size)
        ax = fig.add_subplot(111)
        for i, (label, study, model) in enumerate(entries):
            totals, reliables = [], []
            for name in layers:
                view = _data.region_view(study, name, epoch, condition, model, threshold)
                totals.append(float(view.kp.mean_total))
                reliables.append(float(view.kp.mean_reliable))
            color = MODEL_COLORS[i % len(MODEL_COLORS)]
            pos = x - 0.4 + width * (i + 0.5)
            b1 = ax.bar(pos, totals, width * 0.92, color=color, alpha=0.35, label=f"{label}: all")
            b2 = ax.bar(pos, reliables, width * 0.92, color=color, label=f"{label}: reliable")
            for bar in b1:
                bar.set_gid(f"kp-total-{label}")
            for bar in b2:
                bar.set_gid(f"kp-reliable-{label}")
        ax.set_xticks(x, layers)
        ax.set_ylabel("knowledge points per image")
        ax.set_title(f"knowledge points per layer (τ = {threshold:g}, {condition})")
        handles, _ = ax.get_legend_handles_labels()
        legend_rows(fig, [handles[0::2], handles[1::2]])
    return fig


def distill_histograms(
    source: Any,
    students: Mapping[str, Any] | None = None,
    layer: str | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    reference: str | None = None,
    bins: int = 40,
    size: tuple[float, float] = (6.4, 2.5),
) -> Figure:
    """Return histograms of 1 − cos(h_student, h_teacher) and of the strength difference per region.

    PAPER.md §7 measurement 2: a student distilled on layer ℓ is concentrated at 0 at ℓ, a
    logit-distilled one has a heavy tail. Strength difference = (‖h_s‖ − ‖h_t‖) / the teacher's
    mean strength of the layer. Both students must be projected with the teacher's Λ (as
    ``pv.Study.compare`` stores them, or as ``students={...}`` studies holding such embeddings),
    row for row. Step outlines carry gids ``hist-<model>-cos`` and ``hist-<model>-strength``.

    Args:
        source: a study holding teacher and students (models), or the teacher's study with
            ``students={"label": study, ...}``.
        layer: the compared layer (default: the last one). reference: the teacher's model name.
        bins: bins per histogram.
    """
    check_positive_int(bins, "bins", minimum=2)
    entries, ref_label = _sources(source, students, reference)
    _, ref_study, ref_model = entries[0]
    if layer is None:
        have = {k.layer for k in ref_study.store.find(RegionEmbedding, model=ref_model)}
        layer = [name for name in ref_study.store.layers() if name in have][-1]
    key_t = _data.resolve_key(ref_study, RegionEmbedding, layer, epoch, condition, ref_model)
    emb_t = ref_study.store.get(key_t, RegionEmbedding)
    h_t = np.asarray(emb_t.h, np.float64)
    unit = float(emb_t.mean_strength) or 1.0
    with style():
        fig = new_figure(size)
        ax_cos, ax_norm = fig.subplots(1, 2)
        handles = []
        for i, (label, study, model) in enumerate(entries[1:], start=1):
            key = _data.resolve_key(study, RegionEmbedding, layer, epoch, condition, model)
            h_s = np.asarray(study.store.get(key, RegionEmbedding).h, np.float64)
            if h_s.shape != h_t.shape:
                raise InputError(f"{label!r} has {h_s.shape[0]} regions at {layer!r}, the teacher "
                                 f"{h_t.shape[0]}: compare studies made on the same probe data.")  # fmt: skip
            n_s, n_t = np.linalg.norm(h_s, axis=1), np.linalg.norm(h_t, axis=1)
            one_minus_cos = 1.0 - np.sum(h_s * h_t, axis=1) / np.maximum(n_s * n_t, 1e-12)
            d_strength = (n_s - n_t) / unit
            color = MODEL_COLORS[i % len(MODEL_COLORS)]
            _, _, p1 = ax_cos.hist(one_minus_cos, bins=bins, range=(0, 2), histtype="step", color=color,
                                   linewidth=1.1, label=label)  # fmt: skip
            _, _, p2 = ax_norm.hist(
                d_strength, bins=bins, histtype="step", color=color, linewidth=1.1
            )
            p1[0].set_gid(f"hist-{label}-cos")
            p2[0].set_gid(f"hist-{label}-strength")
            handles.append(p1[0])
        ax_cos.set_yscale("log")
        ax_norm.set_yscale("log")
        ax_cos.set_xlim(0, 2)
        ax_cos.set_xlabel(r"$1 - \cos(h_{\mathrm{student}}, h_{\mathrm{teacher}})$")
        ax_norm.set_xlabel(
            r"$(\|h_{\mathrm{student}}\| - \|h_{\mathrm{teacher}}\|)$ / teacher mean"
        )
        ax_norm.axvline(0, color="#999999", linewidth=0.6)
        ax_cos.set_ylabel("regions")
        fig.suptitle(
            f"{layer} · epoch {key_t.epoch} · students vs {ref_label} (teacher's Λ)", fontsize=8.5
        )
        legend_rows(fig, [handles])
    return fig
