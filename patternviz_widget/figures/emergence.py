"""Emergence figures: forward construction across layers (spatial) and per-class covariance
ellipsoids over epochs (temporal), paper Sec. 3.3 and its emergence figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .._style import ELLIPSOID_SIGMA, GLYPH_CODES, GLYPHS, class_color
from .._validate import check_choice, check_positive_int, check_probability
from ..defaults import THRESHOLD
from ..errors import InputError
from ..results import RegionEmbedding
from ..results import SampleEmbedding as SampleEmbeddingRecord
from . import _data
from ._common import (
    GLYPH_ORDER,
    class_handles,
    draw_class_arrows,
    ellipsoid_surface,
    glyph_handles,
    legend_rows,
    new_figure,
    plain,
    radius_of,
    setup_3d,
    style,
    view_angles,
    xyz3,
)
from .knowledge import KP_RED, _cell_boxes, _draw_image, layer_color


def _object_rows(view: _data.RegionView, rows: np.ndarray, mask: np.ndarray | None,
                 input_size: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """The rows among ``rows`` whose grid cell is at least half covered by the object ``mask``."""
    if mask is None or rows.size == 0:
        return rows
    boxes = _cell_boxes(view.grid[rows], view.grid_shape, input_size)
    m = np.asarray(mask) > 0
    frac = np.array([m[int(y0):max(int(y0) + 1, int(np.ceil(y1))), int(x0):max(int(x0) + 1, int(np.ceil(x1)))].mean()
                     for x0, y0, x1, y1 in boxes])  # fmt: skip
    keep = rows[frac >= 0.5]
    return keep if keep.size else rows


def forward_construction(
    source: Any,
    image: int | Sequence[int] | None = None,
    regions: str = "object",
    layers: Sequence[str] | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
    size: tuple[float, float] | None = None,
    elev: float | None = None,
    azim: float | None = None,
) -> Figure:
    """Return images' regions from every layer in one 3-D frame, coloured by layer.

    The paper's spatial emergence ("forward propagation") figure (paper Sec. 3.3), and
    the widget's forward mode: low-layer regions sit near the origin, high-layer ones far out along
    μ_truth. Glyphs follow the knowledge-point status of each region at its own layer; a dashed path
    joins the layers' mean embeddings (gid ``layer-path``). Each layer's points have gid
    ``layer-<name>``. For one image the image is shown beside, its chosen cells outlined.

    Args:
        image: a probe image index or several (default: the image with most reliable knowledge
            points at the last layer).
        regions: ``"object"`` keeps the cells at least half inside the foreground mask (when the
            data have masks), ``"all"`` every kept region of the images (as the widget does).
        layers: the layers to draw (default: every layer with an embedding), low to high.
        threshold: τ (paper Sec. 3.4).
        size: inches; default (6.0, 3.6) with the image panel, (4.2, 4.2) without.
    """
    check_choice(regions, ("object", "all"), "regions")
    threshold = check_probability(threshold, "threshold (τ)")
    study = _data.as_study(source)
    pr = _data.probe(study)
    if layers is None:
        have = {k.layer for k in study.store.find(RegionEmbedding, condition=condition)}
        layers = [name for name in study.store.layers() if name in have]
    if not layers:
        raise InputError("No layer has a regional embedding yet. Run study.embed().")
    views = [_data.region_view(study, name, epoch, condition, model, threshold) for name in layers]
    if image is None:
        image = int(np.argmax(np.asarray(views[-1].kp.per_image_reliable)))
    images = [int(i) for i in np.atleast_1d(np.asarray(image)).reshape(-1)]
    bad = [i for i in images if not 0 <= i < len(pr.labels)]
    if bad or not images:
        raise InputError(
            f"image must be probe indices in [0, {len(pr.labels)}), got {bad or images}."
        )
    input_size = tuple(int(v) for v in pr.input_size)
    use_mask = regions == "object" and pr.masks is not None
    picked = []
    for v in views:
        rows = [_object_rows(v, np.flatnonzero(v.image == i), pr.masks[i] if use_mask else None, input_size)
                for i in images]  # fmt: skip
        picked.append(np.concatenate(rows))
    all_h = np.concatenate([v.h[rows] for v, rows in zip(views, picked)])
    r = radius_of(all_h, quantile=1.0)
    names = _data.class_names(study)
    order = study.store.layers()
    colors = [
        layer_color(order.index(v.key.layer) if v.key.layer in order else i)
        for i, v in enumerate(views)
    ]
    single = len(images) == 1
    elev, azim = view_angles(study.store, views[-1].key.model, elev, azim)
    with style():
        fig = new_figure(size or ((6.0, 3.6) if single else (4.2, 4.2)))
        top = views[-1]
        if single:
            gs = fig.add_gridspec(1, 2, width_ratios=[1, 2.4])
            _image_panel(
                fig.add_subplot(gs[0]), pr, images[0], top, picked[-1], use_mask, names, input_size
            )
            ax = fig.add_subplot(gs[1], projection="3d")
        else:
            ax = fig.add_subplot(111, projection="3d")
        means = []
        for v, rows, color in zip(views, picked, colors):
            for name in GLYPH_ORDER:
                sub = rows[v.glyph[rows] == GLYPH_CODES[name]]
                if sub.size:
                    sc = ax.scatter(*xyz3(v.h[sub]), c=color, marker=GLYPHS[name][0],
                                    s=14, alpha=0.85, linewidths=0, depthshade=False)  # fmt: skip
                    sc.set_gid(f"layer-{v.key.layer}")
            means.append(v.h[rows].mean(axis=0) if rows.size else np.zeros(3))
        (path,) = ax.plot(*xyz3(np.asarray(means)), color="#333333", linestyle="--",
                          linewidth=0.8, marker="x", markersize=4)  # fmt: skip
        path.set_gid("layer-path")
        setup_3d(ax, r, elev=elev, azim=azim)
        draw_class_arrows(ax, top.mu, names, length=0.9 * r)
        which = f"image {images[0]}" if single else f"{len(images)} images"
        ax.set_title(
            f"forward construction · {which} · epoch {top.key.epoch} · {top.key.condition}", pad=2
        )
        handles = [Line2D([], [], linestyle="none", marker="o", markersize=5, markerfacecolor=color,
                          markeredgecolor="none", label=v.key.layer) for v, color in zip(views, colors)]  # fmt: skip
        present = sorted({n for v, rows in zip(views, picked) for n in GLYPH_ORDER
                          if (v.glyph[rows] == GLYPH_CODES[n]).any()})  # fmt: skip
        legend_rows(fig, [handles, glyph_handles(present)])
    return fig


def _image_panel(ax: Any, pr: Any, image: int, top: Any, rows: np.ndarray, use_mask: bool, names: list[str],
                 input_size: tuple[int, int]) -> None:  # fmt: skip
    """The probe image with the chosen cells of the top layer outlined."""
    _draw_image(ax, pr.thumbnails[image], input_size, np.zeros((0, 4)), np.zeros(0, bool), top.grid_shape,
                0.0, np.zeros((0, 2), int))  # fmt: skip
    for x0, y0, x1, y1 in _cell_boxes(top.grid[rows], top.grid_shape, input_size):
        ax.add_patch(_rect(x0, y0, x1, y1))
    truth = int(pr.labels[image])
    ax.set_title(f"{plain(names[truth]) if truth < len(names) else truth} #{image}\n"
                 f"{'object' if use_mask else 'all'} regions of {top.key.layer}", fontsize=7)  # fmt: skip


def _rect(x0: float, y0: float, x1: float, y1: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor="none", edgecolor=KP_RED, linewidth=0.7)


def _pick_epochs(epochs: list[int], max_panels: int) -> list[int]:
    if len(epochs) <= max_panels:
        return epochs
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, max_panels)).astype(int))
    return [epochs[i] for i in idx]


def ellipsoids(
    source: Any,
    layer: str | None = None,
    epochs: Sequence[int] | None = None,
    condition: str = "clean",
    model: str | None = None,
    n_std: float = ELLIPSOID_SIGMA,
    points: bool = True,
    max_panels: int = 6,
    panel_size: float = 2.1,
    elev: float | None = None,
    azim: float | None = None,
) -> Figure:
    """Return one 3-D panel per epoch with a covariance ellipsoid per class (the paper's learning-process figure).

    The paper's "learning process" figure: the regional embeddings of one layer (or, with
    ``layer=None``, the sample embeddings) start as a blob at the origin and grow into separated
    class lobes. All panels share one scale. Each ellipsoid (``n_std`` standard deviations along
    the principal axes of the class's points) is a surface with gid ``ellipsoid-<class>``.
    ``epochs`` defaults to at most ``max_panels`` evenly spread tracked epochs.
    """
    check_positive_int(max_panels, "max_panels")
    if not 0 < float(n_std) <= 5:
        raise InputError(f"n_std must be in (0, 5], got {n_std}.")
    study = _data.as_study(source)
    sample = _data.is_sample_layer(layer)
    kind = SampleEmbeddingRecord if sample else RegionEmbedding
    first = _data.resolve_key(study, kind, layer, None, condition, model)
    have = sorted({k.epoch for k in study.store.find(kind, model=first.model, condition=condition,
                                                     layer=first.layer)})  # fmt: skip
    epochs = _pick_epochs(have, max_panels) if epochs is None else [int(e) for e in epochs]
    labels_all = np.asarray(_data.probe(study).labels, dtype=np.int64)
    panels = []
    for e in epochs:
        if sample:
            sv = _data.sample_view(study, e, condition, first.model)
            panels.append((e, sv.g, sv.label, sv.mu))
        else:
            key = _data.resolve_key(study, kind, layer, e, condition, first.model)
            emb = study.store.get(key, RegionEmbedding)
            from ..results import RegionRecord

            image = np.asarray(study.store.get(key, RegionRecord).image, dtype=np.int64)
            panels.append(
                (e, np.asarray(emb.h, np.float32), labels_all[image], _data.mu_for(study, key))
            )
    names = _data.class_names(study)
    elev, azim = view_angles(study.store, first.model, elev, azim)
    r = max(radius_of(h, quantile=0.95) for _, h, _, _ in panels)
    n = len(panels)
    ncols = min(n, 3)
    nrows = int(np.ceil(n / ncols))
    with style():
        fig = new_figure((panel_size * ncols, panel_size * nrows + 0.7))
        subs = np.atleast_1d(fig.subfigures(nrows, ncols)).ravel()
        for sub in subs[n:]:
            sub.set_visible(False)
        for sub, (e, h, lab, mu) in zip(subs, panels):
            ax = sub.add_subplot(111, projection="3d")
            for c in np.unique(lab):
                pts = h[lab == c]
                if points:
                    sc = ax.scatter(*xyz3(pts), c=class_color(c), s=1.5, alpha=0.12,
                                    linewidths=0, depthshade=False, rasterized=len(pts) > 2000)  # fmt: skip
                    sc.set_gid(f"points-{int(c)}")
                surf = ellipsoid_surface(pts, n_std)
                if surf is not None:
                    s = ax.plot_surface(*xyz3(np.stack(surf, axis=-1)), color=class_color(c), alpha=0.35, linewidth=0,
                                        antialiased=True, shade=True)  # fmt: skip
                    s.set_gid(f"ellipsoid-{int(c)}")
            setup_3d(ax, r, elev=elev, azim=azim)
            draw_class_arrows(ax, mu, names, length=0.9 * r, labels=False)
            sub.suptitle(f"epoch {e}", fontsize=8.5)
        where = "samples" if sample else first.layer
        fig.suptitle(f"{where} · {condition} · {n_std:g}σ class ellipsoids", fontsize=9)
        legend_rows(fig, [class_handles(names, np.unique(labels_all))])
    return fig
