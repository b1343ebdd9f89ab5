"""Knowledge-point figures: counts over epochs per layer and highlighted regions on probe images
(paper Sec. 3.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from .._style import LAYER_COLORS
from .._validate import check_probability, did_you_mean
from ..defaults import THRESHOLD
from ..errors import InputError
from ..results import RegionEmbedding
from . import _data
from ._common import legend_rows, new_figure, plain, style

#: Outline colour of knowledge points on images (the paper's red boxes).
KP_RED = "#d62728"


def layer_color(i: int) -> str:
    """Colour of the ``i``-th captured layer (low layer = dark)."""
    return LAYER_COLORS[i % len(LAYER_COLORS)]


def knowledge_table(
    source: Any,
    threshold: float = THRESHOLD,
    models: Sequence[str] | None = None,
    conditions: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Return one row per (model, condition, epoch, layer) with knowledge points per image.

    Rows hold ``model, condition, epoch, layer, total, reliable, r_reliable`` (means per image and
    N_reliable / N_total), ``on_object`` (our mask extension; None without masks) and ``warning``
    (why the counts are empty by construction, e.g. "posterior near uniform: classes not separated
    yet"; None when they mean something), for every key that has a regional embedding. ``threshold`` is τ of paper Sec. 3.4 (default 0.4).
    """
    threshold = check_probability(threshold, "threshold (τ)")
    study = _data.as_study(source)
    order = {name: i for i, name in enumerate(study.store.layers())}
    keys = sorted(study.store.find(RegionEmbedding),
                  key=lambda k: (k.model, k.condition, k.epoch, order.get(k.layer, 1_000)))  # fmt: skip
    rows = []
    for key in keys:
        if (models is not None and key.model not in models) or (
            conditions is not None and key.condition not in conditions
        ):
            continue
        kp = _data.knowledge(study, key, threshold)
        share = getattr(kp, "on_object_share", None)
        rows.append({
            "model": key.model, "condition": key.condition, "epoch": key.epoch, "layer": key.layer,
            "total": float(kp.mean_total), "reliable": float(kp.mean_reliable),
            "r_reliable": float(kp.r_reliable),
            "on_object": None if share is None else float(share),
            "warning": getattr(kp, "warning", None),
        })  # fmt: skip
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Return :func:`knowledge_table` rows as an aligned plain-text table."""
    head = (
        "model",
        "condition",
        "epoch",
        "layer",
        "KPs/img",
        "reliable/img",
        "r_reliable",
        "on-object",
    )
    body = [
        (r["model"], r["condition"], str(r["epoch"]), r["layer"], f"{r['total']:.2f}",
         f"{r['reliable']:.2f}", _pct(r["r_reliable"]), "—" if r["on_object"] is None else _pct(r["on_object"]))
        if not r.get("warning") else
        (r["model"], r["condition"], str(r["epoch"]), r["layer"], "posterior ≈ uniform", "—", "—", "—")
        for r in rows
    ]  # fmt: skip
    notes = sorted({r["warning"] for r in rows if r.get("warning")})
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in body]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def _pct(v: float) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"


def knowledge_curve(
    source: Any,
    layers: Sequence[str] | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
    ratio: bool = True,
    size: tuple[float, float] | None = None,
) -> Figure:
    """Return knowledge points per image vs epoch, one colour per layer (paper Sec. 3.4).

    Solid lines: all knowledge points per image; dashed: reliable ones (class = the image's true
    class). With ``ratio`` a second panel shows r_reliable = N_reliable / N_total. Lines carry gids
    ``kp-total-<layer>`` and ``kp-reliable-<layer>``.
    """
    rows = knowledge_table(source, threshold, conditions=[condition])
    study = _data.as_study(source)
    model = model or _data.default_model(study)
    rows = [r for r in rows if r["model"] == model]
    names = list(layers) if layers is not None else list(dict.fromkeys(r["layer"] for r in rows))
    if not rows:
        raise InputError(
            f"No knowledge points for model {model!r}, condition {condition!r}. Run study.embed()."
        )
    with style():
        fig = new_figure(size or ((6.4, 2.6) if ratio else (3.6, 2.6)))
        axes = fig.subplots(1, 2 if ratio else 1, squeeze=False)[0]
        for i, name in enumerate(names):
            mine = sorted((r for r in rows if r["layer"] == name), key=lambda r: r["epoch"])
            if not mine:
                raise InputError(
                    f"Layer {name!r} has no knowledge points. {did_you_mean(name, [r['layer'] for r in rows], 'layer')}"
                )
            x = [r["epoch"] for r in mine]
            color = layer_color(
                study.store.layers().index(name) if name in study.store.layers() else i
            )
            marker = "o" if len(x) < 30 else None
            (a,) = axes[0].plot(
                x, [r["total"] for r in mine], color=color, marker=marker, ms=3, label=name
            )
            (b,) = axes[0].plot(x, [r["reliable"] for r in mine], color=color, marker=marker, ms=3,
                                linestyle="--", mfc="white")  # fmt: skip
            a.set_gid(f"kp-total-{name}")
            b.set_gid(f"kp-reliable-{name}")
            if ratio:
                (c,) = axes[1].plot(
                    x, [100 * r["r_reliable"] for r in mine], color=color, marker=marker, ms=3
                )
                c.set_gid(f"kp-ratio-{name}")
        warned = sorted({r["epoch"] for r in rows if r.get("warning") and r["layer"] in names})
        if warned:  # counts there are 0 by construction: say so instead of plotting a finding
            all_x = sorted({r["epoch"] for r in rows})
            half = 0.5 * (min(np.diff(all_x)) if len(all_x) > 1 else 1.0)
            for ax in axes:
                for e in warned:
                    span = ax.axvspan(e - half, e + half, color="#dddddd", zorder=0, lw=0)
                    span.set_gid(f"kp-uniform-{e}")
            axes[0].text(
                0.01,
                0.98,
                "grey: posterior ≈ uniform, classes not separated yet",
                transform=axes[0].transAxes,
                va="top",
                ha="left",
                fontsize=6.5,
                color="#555555",
            )
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("knowledge points per image")
        axes[0].set_ylim(bottom=0)
        axes[0].set_title(
            f"τ = {threshold:g} · {condition}" + (f" · {model}" if model != "main" else "")
        )
        style_handles = [Line2D([], [], color="#555555", label="all"),
                         Line2D([], [], color="#555555", linestyle="--", label="reliable (class = truth)")]  # fmt: skip
        axes[0].legend(handles=axes[0].get_legend_handles_labels()[0] + style_handles, loc="best")
        if ratio:
            axes[1].set_xlabel("epoch")
            axes[1].set_ylabel("r_reliable (%)")
            axes[1].set_ylim(0, 100)
            axes[1].set_title("reliable share of knowledge points")
        for ax in axes:
            ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def _cell_boxes(
    grid: np.ndarray, grid_shape: tuple[int, int], input_size: tuple[int, int]
) -> np.ndarray:
    """Grid cells (x0, y0, x1, y1) in input pixels of rows ``grid`` (row, col) on ``grid_shape``."""
    from patternviz_widget.engine.method.knowledge import cell_boxes

    return cell_boxes(grid, grid_shape, input_size)


def highlighted_regions(
    source: Any,
    images: Sequence[int] | None = None,
    layers: str | Sequence[str] | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
    kp_class: int | Sequence[int] | None = None,
    dim: float = 0.6,
    panel_size: float = 1.5,
) -> Figure:
    """Return probe images with knowledge-point cells outlined in red and every other cell dimmed.

    As the paper's highlighted-region figures (paper Sec. 3.4): one row per layer, one
    column per image. Reliable knowledge points get solid red outlines (gid
    ``kp-boxes-reliable``), unreliable ones dashed (``kp-boxes-unreliable``); one outline per
    knowledge point.

    Args:
        images: probe image indices (default: the first image of each class, at most 8).
        layers: one layer or several (default: every layer with an embedding).
        threshold: τ (paper Sec. 3.4, default 0.4).
        kp_class: keep only knowledge points of this class (one int, or one per image), e.g. the
            original class before an attack and the adversarial class after it (the paper's attack experiment).
        dim: opacity of the black veil over cells that are not knowledge points.
        panel_size: inches per image panel.
    """
    threshold = check_probability(threshold, "threshold (τ)")
    dim = check_probability(dim, "dim")
    study = _data.as_study(source)
    pr = _data.probe(study)
    names = _data.class_names(study)
    n_images = len(pr.labels)
    if images is None:
        _, first = np.unique(np.asarray(pr.labels), return_index=True)
        images = sorted(first.tolist())[:8]
    images = [int(i) for i in images]
    bad = [i for i in images if not 0 <= i < n_images]
    if bad or not images:
        raise InputError(f"images must be probe indices in [0, {n_images}), got {bad or images}.")
    if isinstance(layers, str):
        layers = [layers]
    if layers is None:
        have = {k.layer for k in study.store.find(RegionEmbedding, condition=condition)}
        layers = [name for name in study.store.layers() if name in have]
    if kp_class is not None:
        kp_class = np.broadcast_to(np.asarray(kp_class, dtype=np.int64), (len(images),))
    height, width = (int(v) for v in pr.input_size)
    n_rows, n_cols = len(layers), len(images)
    with style():
        fig = new_figure((panel_size * n_cols + 0.3, panel_size * n_rows + 0.55))
        axes = fig.subplots(n_rows, n_cols, squeeze=False)
        for r, name in enumerate(layers):
            view = _data.region_view(study, name, epoch, condition, model, threshold)
            boxes = _cell_boxes(view.grid, view.grid_shape, (height, width))
            is_kp = np.asarray(view.kp.is_kp, bool)
            reliable = np.asarray(view.kp.is_reliable, bool)
            predicted = np.asarray(view.kp.predicted, np.int64)
            for c, img in enumerate(images):
                ax = axes[r, c]
                rows = np.flatnonzero(view.image == img)
                keep = is_kp[rows]
                if kp_class is not None:
                    keep &= predicted[rows] == kp_class[c]
                _draw_image(ax, pr.thumbnails[img], (height, width), boxes[rows], keep, view.grid_shape, dim,
                            view.grid[rows])  # fmt: skip
                for gid, mask, ls in (("kp-boxes-reliable", keep & reliable[rows], "-"),
                                      ("kp-boxes-unreliable", keep & ~reliable[rows], "--")):  # fmt: skip
                    rects = [_inset(b) for b in boxes[rows][mask]]
                    if rects:
                        pc = PatchCollection(rects, facecolor="none", edgecolor=KP_RED, linewidths=0.9,
                                             linestyle=ls)  # fmt: skip
                        pc.set_gid(gid)
                        ax.add_collection(pc)
                n_kp, n_rel = int(keep.sum()), int((keep & reliable[rows]).sum())
                label = (
                    names[int(pr.labels[img])]
                    if int(pr.labels[img]) < len(names)
                    else str(pr.labels[img])
                )
                ax.set_title(
                    f"{plain(label)} #{img}\n{n_kp} KPs, {n_rel} reliable", fontsize=6.5, pad=2
                )
                if c == 0:
                    ax.set_ylabel(name, fontsize=7)
        key = view.key
        fig.suptitle(
            f"knowledge points (τ = {threshold:g}) · epoch {key.epoch} · {key.condition}",
            fontsize=8,
        )
        legend_rows(fig, [[Patch(facecolor="none", edgecolor=KP_RED, label="reliable KP"),
                           Patch(facecolor="none", edgecolor=KP_RED, linestyle="--", label="unreliable KP"),
                           Patch(facecolor="black", alpha=dim, label="other regions (dimmed)")]])  # fmt: skip
    return fig


def _inset(box: np.ndarray, frac: float = 0.06) -> Rectangle:
    """A rectangle slightly inside ``box`` so outlines of neighbouring cells stay apart."""
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = (x1 - x0) * frac, (y1 - y0) * frac
    return Rectangle((x0 + dx, y0 + dy), x1 - x0 - 2 * dx, y1 - y0 - 2 * dy)


def _draw_image(ax: Any, thumb: np.ndarray, input_size: tuple[int, int], boxes: np.ndarray, keep: np.ndarray,
                grid_shape: tuple[int, int], dim: float, grid: np.ndarray) -> None:  # fmt: skip
    """Show a thumbnail stretched over the input frame with a veil over every cell but ``keep``."""
    height, width = input_size
    thumb = np.asarray(thumb)
    if thumb.ndim == 3 and thumb.shape[-1] == 1:
        thumb = thumb[..., 0]
    ax.imshow(thumb, extent=(0, width, height, 0), interpolation="nearest",
              cmap="gray" if thumb.ndim == 2 else None)  # fmt: skip
    veil = np.zeros((*grid_shape, 4), dtype=np.float32)
    veil[..., 3] = dim
    lit = grid[keep]
    veil[lit[:, 0], lit[:, 1], 3] = 0.0
    ax.imshow(veil, extent=(0, width, height, 0), interpolation="nearest")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_linewidth(0.4)
