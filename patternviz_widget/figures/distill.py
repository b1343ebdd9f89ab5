"""Knowledge-distillation figures (the paper's distillation experiment): knowledge points per layer for the
teacher and its students, and histograms of how far each student's regional embeddings lie from
the teacher's (1 − cos and the strength difference), all in the teacher's frame (its Λ and μ).

Both read the engine's ``DistillReport`` (``study.distill_report``) of a study made by
``pv.Study.compare(teacher_study, {"name": student_study, ...})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._validate import check_probability, did_you_mean
from ..defaults import THRESHOLD
from ..errors import InputError
from . import _data
from ._common import legend_rows, new_figure, style

#: Colours of compared models in order (teacher first): grey, then distinct hues.
MODEL_COLORS = ["#555555", "#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#f28e2b"]


def report(source: Any, epoch: int | None = None, threshold: float = THRESHOLD) -> Any:
    """The ``DistillReport`` of ``source`` (itself when it already is one)."""
    if hasattr(source, "kp_total") and hasattr(source, "cos_hist"):
        return source
    return _data.as_study(source).distill_report(epoch=epoch, threshold=threshold)


def model_color(i: int) -> str:
    """Colour of the ``i``-th compared model (0 = the teacher)."""
    return MODEL_COLORS[i % len(MODEL_COLORS)]


def distill_knowledge(
    source: Any,
    layers: Sequence[str] | None = None,
    epoch: int | None = None,
    threshold: float = THRESHOLD,
    size: tuple[float, float] = (4.2, 2.6),
) -> Figure:
    """Return total (light) and reliable (solid) knowledge points per image, per layer and model.

    The paper's distillation measurement 1: the teacher and students distilled on logits or on one layer.
    Bars carry gids ``kp-total-<model>`` and ``kp-reliable-<model>``, one bar per layer.

    Args:
        source: a teacher | student study (``pv.Study.compare``) or its ``DistillReport``.
        layers: a subset of the report's layers. threshold: τ (paper Sec. 3.4, default 0.4).
    """
    threshold = check_probability(threshold, "threshold (τ)")
    rep = report(source, epoch, threshold)
    names = _layers(rep, layers)
    cols = [rep.layers.index(n) for n in names]
    width = 0.8 / len(rep.models)
    x = np.arange(len(names))
    with style():
        fig = new_figure(size)
        ax = fig.add_subplot(111)
        totals, reliables = [], []
        for i, model in enumerate(rep.models):
            pos = x - 0.4 + width * (i + 0.5)
            b1 = ax.bar(pos, rep.kp_total[i, cols], width * 0.92, color=model_color(i), alpha=0.35,
                        label=f"{model}: all")  # fmt: skip
            b2 = ax.bar(pos, rep.kp_reliable[i, cols], width * 0.92, color=model_color(i),
                        label=f"{model}: reliable")  # fmt: skip
            for bar in b1:
                bar.set_gid(f"kp-total-{model}")
            for bar in b2:
                bar.set_gid(f"kp-reliable-{model}")
            totals.append(b1)
            reliables.append(b2)
        ax.set_xticks(x, names)
        ax.set_ylabel("knowledge points per image")
        ax.set_title(f"knowledge points per layer (τ = {rep.threshold:g})")
        legend_rows(fig, [totals, reliables])
    return fig


def _layers(rep: Any, layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        return list(rep.layers)
    for name in layers:
        if name not in rep.layers:
            raise InputError(
                f"Layer {name!r} is not compared. {did_you_mean(name, rep.layers, 'layer')}"
            )
    return list(layers)


def distill_histograms(
    source: Any,
    layer: str | None = None,
    epoch: int | None = None,
    size: tuple[float, float] = (6.4, 2.5),
) -> Figure:
    """Return histograms of 1 − cos(h_student, h_teacher) and of the strength difference per region.

    The paper's distillation measurement 2: a student distilled on layer ℓ is concentrated at 0 at ℓ, a
    logit-distilled one has a heavier tail. Strength difference = (‖h_s‖ − ‖h_t‖) / the teacher's
    mean strength of the layer; values beyond the ranges are counted in the end bins. Students are
    projected with the teacher's Λ row for row. Step outlines carry gids ``hist-<model>-cos`` and
    ``hist-<model>-strength``; counts are on a log scale as in the paper.

    Args:
        source: a teacher | student study (``pv.Study.compare``) or its ``DistillReport``.
        layer: the compared layer (default: the last one).
    """
    rep = report(source, epoch)
    layer = layer if layer is not None else rep.layers[-1]
    j = rep.layers.index(_layers(rep, [layer])[0])
    students = [m for m in rep.models[1:] if m in rep.cos_hist]
    if not students:
        raise InputError(
            "This study holds no student in the teacher's frame. Use pv.Study.compare."
        )
    with style():
        fig = new_figure(size)
        ax_cos, ax_str = fig.subplots(1, 2)
        handles = []
        for model in students:
            color = model_color(rep.models.index(model))
            a = ax_cos.stairs(
                rep.cos_hist[model][j], rep.cos_edges, color=color, linewidth=1.1, label=model
            )
            b = ax_str.stairs(
                rep.strength_hist[model][j], rep.strength_edges, color=color, linewidth=1.1
            )
            a.set_gid(f"hist-{model}-cos")
            b.set_gid(f"hist-{model}-strength")
            handles.append(a)
        for ax in (ax_cos, ax_str):
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_ylim(bottom=0)
        ax_cos.set_xlim(rep.cos_edges[0], rep.cos_edges[-1])
        ax_str.set_xlim(rep.strength_edges[0], rep.strength_edges[-1])
        ax_str.axvline(0, color="#999999", linewidth=0.6)
        ax_cos.set_xlabel(r"$1 - \cos(h_{\mathrm{student}}, h_{\mathrm{teacher}})$")
        ax_str.set_xlabel(
            r"$(\|h_{\mathrm{student}}\| - \|h_{\mathrm{teacher}}\|)$ / teacher's mean"
        )
        ax_cos.set_ylabel("regions")
        fig.suptitle(f"{layer} · students vs {rep.models[0]} (teacher's Λ)", fontsize=8.5)
        legend_rows(fig, [handles])
    return fig
