"""Emergence figures: forward construction across layers (spatial) and per-class covariance
ellipsoids over epochs (temporal), PAPER.md §3 and §9 items 13–14."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .._style import GLYPH_CODES, GLYPHS, class_color
from .._validate import check_choice, check_positive_int, check_probability
from ..errors import InputError
from ..results import RegionEmbedding
from ..results import SampleEmbedding as SampleEmbeddingRecord
from . import _data
from ._common import (
    AZIM,
    ELEV,
    GLYPH_ORDER,
    class_handles,
    draw_class_arrows,
    glyph_handles,
    legend_rows,
    new_figure,
    radius_of,
    setup_3d,
    style,
    xyz3,
)
from .knowledge import KP_RED, _cell_boxes, _draw_image, layer_color

#: Ellipsoid radius in standard deviations, as the widget draws them (``_payload.ELLIPSOID_SIGMA``).
ELLIPSOID_SIGMA = 1.5


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
    image: int | None = None,
    regions: str = "object",
    layers: Sequence[str] | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = 0.4,
    size: tuple[float, float] = (6.0, 3.6),
    elev: float = ELEV,
    azim: float = AZIM,
) -> Figure:
    """Return one image's regions from every layer in one 3-D frame, coloured by layer.

    The paper's spatial emergence ("forward propagation") figure, PAPER.md §3 / §9 item 13:
    low-layer regions sit near the origin, high-layer ones far out along μ_truth. Glyphs follow
    the knowledge-point status of each region at its own layer; a dashed path joins the layers'
    mean embeddings (gid ``layer-path``). Each layer's points have gid ``layer-<name>``.

    Args:
        image: probe image index (default: the image with most reliable knowledge points at the
            last layer).
        regions: ``"object"`` keeps the cells at least half inside the foreground mask (when the
            data have masks), ``"all"`` keeps every kept region of the image.
        layers: the layers to draw (default: every layer with an embedding), low to high.
        threshold: τ (PAPER.md §4).
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
    if not 0 <= int(image) < len(pr.labels):
        raise InputError(f"image must be a probe index in [0, {len(pr.labels)}), got {image}.")
    image = int(image)
    input_size = tuple(int(v) for v in pr.input_size)
    mask = pr.masks[image] if (regions == "object" and pr.masks is not None) else None
    names = _data.class_names(study)
    truth = int(pr.labels[image])
    picked = [_object_rows(v, np.flatnonzero(v.image == image), mask, input_size) for v in views]
    all_h = np.concatenate([v.h[rows] for v, rows in zip(views, picked)])
    r = radius_of(all_h, quantile=1.0)
    with style():
        fig = new_figure(size)
        gs = fig.add_gridspec(1, 2, width_ratios=[1, 2.4])
        ax_img = fig.add_subplot(gs[0])
        top = views[-1]
        _draw_image(ax_img, pr.thumbnails[image], input_size, np.zeros((0, 4)), np.zeros(0, bool),
                    top.grid_shape, 0.0, np.zeros((0, 2), int))  # fmt: skip
        for v, rows in zip(views, picked):  # outline the chosen cells of the top layer only
            if v is top:
                for x0, y0, x1, y1 in _cell_boxes(v.grid[rows], v.grid_shape, input_size):
                    ax_img.add_patch(_rect(x0, y0, x1, y1))
        ax_img.set_title(f"{names[truth] if truth < len(names) else truth} #{image}\n"
                         f"{'object' if mask is not None else 'all'} regions of {top.key.layer}",
                         fontsize=7)  # fmt: skip
        ax = fig.add_subplot(gs[1], projection="3d")
        means = []
        for i, (v, rows) in enumerate(zip(views, picked)):
            color = layer_color(
                study.store.layers().index(v.key.layer)
                if v.key.layer in study.store.layers()
                else i
            )
            for name in GLYPH_ORDER:
                sub = rows[v.glyph[rows] == GLYPH_CODES[name]]
                if sub.size:
                    sc = ax.scatter(*xyz3(v.h[sub]), c=color, marker=GLYPHS[name][0],
                                    s=14, alpha=0.85, linewidths=0, depthshade=False)  # fmt: skip
                    sc.set_gid(f"layer-{v.key.layer}")
            means.append(v.h[rows].mean(axis=0) if rows.size else np.zeros(3))
        means = np.asarray(means)
        (path,) = ax.plot(*xyz3(means), color="#333333", linestyle="--",
                          linewidth=0.8, marker="x", markersize=4)  # fmt: skip
        path.set_gid("layer-path")
        setup_3d(ax, r, elev=elev, azim=azim)
        draw_class_arrows(ax, top.mu, names, length=0.9 * r)
        key = top.key
        ax.set_title(f"forward construction · epoch {key.epoch} · {key.condition}", pad=2)
        handles = [Line2D([], [], linestyle="none", marker="o", markersize=5,
                          markerfacecolor=layer_color(study.store.layers().index(v.key.layer)
                                                      if v.key.layer in study.store.layers() else i),
                          markeredgecolor="none", label=v.key.layer)
                   for i, v in enumerate(views)]  # fmt: skip
        present = sorted({n for v, rows in zip(views, picked) for n in GLYPH_ORDER
                          if (v.glyph[rows] == GLYPH_CODES[n]).any()})  # fmt: skip
        legend_rows(fig, [handles, glyph_handles(present)])
    return fig


def _rect(x0: float, y0: float, x1: float, y1: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor="none", edgecolor=KP_RED, linewidth=0.7)


def _pick_epochs(epochs: list[int], max_panels: int) -> list[int]:
    if len(epochs) <= max_panels:
        return epochs
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, max_panels)).astype(int))
    return [epochs[i] for i in idx]


def ellipsoid_surface(
    points: np.ndarray, n_std: float = 1.0, res: int = 14
) -> tuple[np.ndarray, ...] | None:
    """Return (X, Y, Z) grids of the ``n_std`` covariance ellipsoid of 3-D ``points`` (None if < 2 points)."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 2:
        return None
    centre = pts.mean(axis=0)
    cov = np.cov(pts, rowvar=False) + np.eye(3) * 1e-12
    vals, vecs = np.linalg.eigh(cov)
    radii = n_std * np.sqrt(np.clip(vals, 0.0, None))
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, res), np.linspace(0, np.pi, res // 2 + 1))
    sphere = np.stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)], axis=-1)
    xyz = sphere * radii @ vecs.T + centre
    return xyz[..., 0], xyz[..., 1], xyz[..., 2]


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
    elev: float = ELEV,
    azim: float = AZIM,
) -> Figure:
    """Return one 3-D panel per epoch with a covariance ellipsoid per class (PAPER.md §3, §9 item 14).

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
