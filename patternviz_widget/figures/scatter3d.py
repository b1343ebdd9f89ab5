"""3-D embedding figures: samples with class arrows, regions with the paper's glyphs, the layer
strip and side-by-side comparisons (paper Sec. 3.2–3.4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._style import ELLIPSOID_SIGMA, GLYPH_CODES, GLYPHS, class_color
from .._validate import check_choice, check_probability
from ..defaults import THRESHOLD
from ..errors import InputError
from ..results import RegionEmbedding
from . import _data
from ._common import (
    GLYPH_ORDER,
    class_handles,
    draw_class_arrows,
    draw_ellipsoids,
    glyph_handles,
    legend_rows,
    new_figure,
    radius_of,
    setup_3d,
    style,
    view_angles,
    xyz3,
)

#: Above this many points a vector file draws the point layer as an embedded raster image.
RASTERIZE_ABOVE = 20_000
COLOR_BY = ("label", "predicted")


def draw_regions(
    ax: Any,
    view: _data.RegionView,
    color_by: str = "label",
    selection: np.ndarray | None = None,
    scale: float = 1.0,
    rasterize: bool | None = None,
    marker_size: float = 9.0,
    emphasis: bool = False,
) -> list[str]:
    """Scatter a region view on a 3-D axes, one collection per glyph; return the glyphs drawn.

    Collections carry gids ``points-reliable``, ``points-unreliable`` and
    ``points-non_discriminative`` (one marker per region in SVG output). Colour is the class of
    the region's image (``color_by="label"``) or the knowledge point's class (``"predicted"``).
    Selected rows keep full opacity and get a dark edge; the others are dimmed. ``emphasis``
    (small multiples) draws knowledge points larger over smaller, fainter other regions.
    """
    h = view.h * scale
    classes = view.label if color_by == "label" else np.asarray(view.kp.predicted, dtype=np.int64)
    colors = (
        np.array([class_color(c) for c in classes]) if len(classes) else np.array([], dtype=str)
    )
    rasterize = len(h) > RASTERIZE_ABOVE if rasterize is None else rasterize
    chosen = np.zeros(len(h), bool)
    if selection is not None:
        chosen[selection] = True
    drawn = []
    for name in GLYPH_ORDER:
        rows = np.flatnonzero(view.glyph == GLYPH_CODES[name])
        if rows.size == 0:
            continue
        drawn.append(name)
        dim = selection is not None
        background = name == "non_discriminative"
        size = marker_size * (
            (0.35 if emphasis else 0.6) if background else (1.5 if emphasis else 1.0)
        )
        sc = ax.scatter(
            *xyz3(h[rows]), c=list(colors[rows]), marker=GLYPHS[name][0],
            s=size, alpha=0.18 if dim else ((0.3 if emphasis else 0.45) if background else 0.9),
            linewidths=0, depthshade=False, rasterized=rasterize,
        )  # fmt: skip
        sc.set_gid(f"points-{name}")
        if dim and chosen[rows].any():
            pick = rows[chosen[rows]]
            hi = ax.scatter(
                *xyz3(h[pick]), c=list(colors[pick]), marker=GLYPHS[name][0],
                s=size * 2.2, alpha=1.0, edgecolors="#222222", linewidths=0.5, depthshade=False,
            )  # fmt: skip
            hi.set_gid(f"selected-{name}")
    return drawn


def _embedding_axes(
    container: Any, view: _data.RegionView, color_by: str, selection: Any, arrows: bool,
    normalize: bool, radius: float | None, elev: float, azim: float,
    title: str | None = None, class_names: Sequence[str] = (), ellipsoids: bool = False,
    emphasis: bool = False,
) -> tuple[Any, list[str]]:  # fmt: skip
    """Fill ``container`` (a Figure or SubFigure) with one 3-D region view; title it above.

    The title is the container's suptitle: constrained layout leaves room for it, which it does
    not for the title of a 3-D axes.
    """
    ax = container.add_subplot(111, projection="3d")
    scale = 1.0 / view.mean_strength if normalize and view.mean_strength > 0 else 1.0
    sel = _data.check_selection(selection, len(view.h))
    drawn = draw_regions(ax, view, color_by=color_by, selection=sel, scale=scale, emphasis=emphasis)
    r = radius if radius is not None else radius_of(view.h * scale)
    setup_3d(ax, r, elev=elev, azim=azim)
    if ellipsoids:
        draw_ellipsoids(ax, view.h * scale, view.label, ELLIPSOID_SIGMA)
    if arrows:
        draw_class_arrows(ax, view.mu, class_names, length=0.9 * r)
    container.suptitle(title if title is not None else _data.title_for(view.key, _kp_text(view)),
                       fontsize=8.5)  # fmt: skip
    return ax, drawn


def _kp_text(view: _data.RegionView) -> str:
    kp = view.kp
    return f"{float(kp.mean_total):.1f} KPs/image, {float(kp.mean_reliable):.1f} reliable"


def _legend(
    fig: Figure, names: Sequence[str], classes: Sequence[int], glyphs: Sequence[str]
) -> None:
    legend_rows(fig, [class_handles(names, classes), glyph_handles(glyphs)])


def embedding(
    source: Any,
    layer: str | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
    selection: Any = None,
    color_by: str = "label",
    arrows: bool = True,
    ellipsoids: bool = False,
    normalize: bool = False,
    size: tuple[float, float] = (4.2, 4.4),
    elev: float | None = None,
    azim: float | None = None,
    title: str | None = None,
) -> Figure:
    """Return the 3-D embedding figure of one view state, as the widget's main view draws it.

    ``layer=None`` (or ``"sample"``) gives :func:`sample_embedding`. For a layer: regional
    embeddings h = Λ f^(r) with the paper's glyphs (reliable knowledge point ●, unreliable ▲,
    non-discriminative ■), coloured by class, and the class directions μ_c as arrows.

    Args:
        source: a :class:`~patternviz_widget.Study`, a ResultStore or a saved study's path.
        layer, epoch, condition, model: the view state (``epoch=None``: latest).
        threshold: τ, the knowledge-point threshold of paper Sec. 3.4 (default 0.4).
        selection: region rows to highlight (indices or a boolean mask); the rest is dimmed.
        color_by: ``"label"`` (the image's true class) or ``"predicted"`` (the region's class).
        arrows: draw μ_c.
        ellipsoids: draw a 1.5σ covariance ellipsoid per class (as the widget's ellipsoid toggle).
        normalize: divide h by the layer's mean strength (the frame knowledge points are read in).
        size: (width, height) in inches. elev, azim: camera angles in degrees (None: the view
            that fans the class directions out, as the widget opens; ``results.camera``).
        title: overrides the default "layer · epoch · condition — KPs" title.

    Returns:
        A matplotlib Figure (save it with :func:`patternviz_widget.figures.save`).
    """
    if _data.is_sample_layer(layer):
        return sample_embedding(source, epoch=epoch, condition=condition, model=model,
                                threshold=threshold, selection=selection, arrows=arrows, size=size,
                                elev=elev, azim=azim, title=title)  # fmt: skip
    check_choice(color_by, COLOR_BY, "color_by")
    threshold = check_probability(threshold, "threshold (τ)")
    study = _data.as_study(source)
    view = _data.region_view(study, layer, epoch, condition, model, threshold)  # type: ignore[arg-type]
    names = _data.class_names(study)
    elev, azim = view_angles(study.store, view.key.model, elev, azim)
    with style():
        fig = new_figure(size)
        _, drawn = _embedding_axes(fig, view, color_by, selection, arrows, normalize, None, elev,
                                   azim, title=title, class_names=names, ellipsoids=ellipsoids)  # fmt: skip
        _legend(fig, names, np.unique(view.label), drawn)
    return fig


def sample_embedding(
    source: Any,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
    selection: Any = None,
    arrows: bool = True,
    size: tuple[float, float] = (4.2, 4.4),
    elev: float | None = None,
    azim: float | None = None,
    title: str | None = None,
) -> Figure:
    """Return the 3-D sample embedding g = M f with class arrows μ_c (paper Sec. 3.2).

    One point per probe image coloured by its true class, with the widget's sample glyphs: ● the
    network predicts the true class with softmax(z/T) ≥ τ, ▲ it predicts another class that
    confidently, ■ its peak is below τ. Groups have gids ``samples-reliable``,
    ``samples-unreliable``, ``samples-non_discriminative`` (one marker per image).
    """
    threshold = check_probability(threshold, "threshold (τ)")
    study = _data.as_study(source)
    view = _data.sample_view(study, epoch, condition, model, threshold)
    names = _data.class_names(study)
    elev, azim = view_angles(study.store, view.key.model, elev, azim)
    sel = _data.check_selection(selection, len(view.g))
    with style():
        fig = new_figure(size)
        ax = fig.add_subplot(111, projection="3d")
        drawn = []
        for name in GLYPH_ORDER:
            idx = np.flatnonzero(view.glyph == GLYPH_CODES[name])
            if idx.size == 0:
                continue
            drawn.append(name)
            alpha = np.full(idx.size, 0.85)
            if sel is not None:
                alpha[~np.isin(idx, sel)] = 0.15
            sc = ax.scatter(*xyz3(view.g[idx]), c=[class_color(c) for c in view.label[idx]], alpha=alpha,
                            marker=GLYPHS[name][0], s=12, linewidths=0, depthshade=False,
                            rasterized=idx.size > RASTERIZE_ABOVE)  # fmt: skip
            sc.set_gid(f"samples-{name}")
        r = radius_of(view.g)
        setup_3d(ax, r, elev=elev, azim=azim)
        if arrows:
            draw_class_arrows(ax, view.mu, names, length=0.9 * r)
        acc = float((view.predicted == view.label).mean()) if len(view.label) else float("nan")
        fig.suptitle(title if title is not None else _data.title_for(view.key, f"accuracy {acc:.0%}"),
                     fontsize=8.5)  # fmt: skip
        _legend(fig, names, np.unique(view.label), drawn)
    return fig


def layer_strip(
    source: Any,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
    layers: Sequence[str] | None = None,
    color_by: str = "label",
    normalize: bool = True,
    panel_size: float = 2.2,
    elev: float | None = None,
    azim: float | None = None,
) -> Figure:
    """Return one small 3-D panel per layer for the same epoch/condition (the widget's layer strip).

    Each panel shows that layer's regional embeddings with the paper's glyphs (knowledge points
    emphasised over the other regions) and μ_c, titled with its knowledge points per image.
    ``normalize`` (default) divides each layer by its mean strength so panels share one scale, as
    knowledge points are counted (paper Sec. 3.4).
    Figure size is ``panel_size`` inches per panel wide.
    """
    check_choice(color_by, COLOR_BY, "color_by")
    threshold = check_probability(threshold, "threshold (τ)")
    study = _data.as_study(source)
    layers = (
        list(layers) if layers is not None else _layers_with_embeddings(study, model, condition)
    )
    if not layers:
        raise InputError(
            "No layer has a regional embedding yet. Run study.capture() and study.embed()."
        )
    views = [_data.region_view(study, name, epoch, condition, model, threshold) for name in layers]
    names = _data.class_names(study)
    elev, azim = view_angles(study.store, views[0].key.model, elev, azim)
    n = len(views)
    with style():
        fig = new_figure((panel_size * n, panel_size + 1.0))
        glyphs: set[str] = set()
        for sub, view in zip(np.atleast_1d(fig.subfigures(1, n)), views):
            kp = view.kp
            title = f"{view.key.layer}\n{float(kp.mean_total):.1f} KPs/img · {float(kp.mean_reliable):.1f} reliable"
            _, drawn = _embedding_axes(sub, view, color_by, None, True, normalize, None, elev, azim,
                                       title=title, class_names=names, emphasis=True)  # fmt: skip
            glyphs.update(drawn)
        key = views[0].key
        fig.suptitle(f"epoch {key.epoch} · {key.condition}" + (f" · {key.model}" if key.model != "main" else ""),
                     fontsize=9)  # fmt: skip
        _legend(fig, names, np.unique(np.concatenate([v.label for v in views])), sorted(glyphs))
    return fig


def _layers_with_embeddings(study: Any, model: str | None, condition: str) -> list[str]:
    keys = study.store.find(RegionEmbedding, condition=condition)
    if model is not None:
        keys = [k for k in keys if k.model == model]
    have = {k.layer for k in keys}
    return [name for name in study.store.layers(model) if name in have]


def compare(
    source: Any,
    layer: str | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    left: dict | None = None,
    right: dict | None = None,
    other: Any = None,
    threshold: float = THRESHOLD,
    selection: Any = None,
    color_by: str = "label",
    size: tuple[float, float] = (7.0, 4.0),
    elev: float | None = None,
    azim: float | None = None,
) -> Figure:
    """Return two 3-D panels side by side with one camera and one scale (the widget's compare mode).

    ``left`` and ``right`` are view-state overrides, e.g. ``left={"condition": "clean"}``,
    ``right={"condition": "adversarial"}`` (the default when the study has adversarial results), or
    ``{"model": "teacher"}`` / ``{"model": "student"}``, or ``{"epoch": 1}`` / ``{"epoch": 9}``.
    ``other`` is a second study (e.g. a student) drawn on the right. Regions keep their identity
    across panels: a ``selection`` highlights the same rows on both sides.
    """
    check_choice(color_by, COLOR_BY, "color_by")
    threshold = check_probability(threshold, "threshold (τ)")
    study_a = _data.as_study(source)
    study_b = _data.as_study(other) if other is not None else study_a
    left = dict(left or {})
    right = dict(right if right is not None else _default_right(study_a, other is not None))
    for side in (left, right):
        unknown = set(side) - {"condition", "model", "epoch", "layer"}
        if unknown:
            raise InputError(
                f"compare sides take condition/model/epoch/layer, got {sorted(unknown)}."
            )
    views = []
    for study, side in ((study_a, left), (study_b, right)):
        state = {"layer": layer, "epoch": epoch, "condition": condition, "model": model} | side
        if _data.is_sample_layer(state["layer"]):
            raise InputError("compare() draws regional views; pass layer=<a captured layer>.")
        views.append(_data.region_view(study, state["layer"], state["epoch"], state["condition"],
                                       state["model"], threshold))  # fmt: skip
    names = _data.class_names(study_a)
    elev, azim = view_angles(study_a.store, views[0].key.model, elev, azim)
    sel = _data.check_selection(selection, len(views[0].h))
    r = max(radius_of(v.h) for v in views)
    with style():
        fig = new_figure(size)
        glyphs: set[str] = set()
        titles = _pane_titles(views[0].key, views[1].key)
        for sub, view, title in zip(fig.subfigures(1, 2), views, titles):
            _, drawn = _embedding_axes(sub, view, color_by, sel, True, False, r, elev, azim,
                                       title=f"{title}\n{_kp_text(view)}", class_names=names)  # fmt: skip
            glyphs.update(drawn)
        common = [
            f
            for f in ("layer", "epoch", "condition", "model")
            if getattr(views[0].key, f) == getattr(views[1].key, f)
        ]
        if len(common) == 3:
            fig.suptitle(
                _data.title_for(views[0].key).replace(titles[0], "").strip(" ·"), fontsize=9
            )
        _legend(fig, names, np.unique(views[0].label), sorted(glyphs))
    return fig


def _pane_titles(a: Any, b: Any) -> list[str]:
    """The widget's compare-pane titles: the one key field that differs, else the full key."""
    diff = [f for f in ("condition", "model", "epoch") if getattr(a, f) != getattr(b, f)]
    if len(diff) == 1 and a.layer == b.layer:
        field = diff[0]
        return [f"epoch {k.epoch}" if field == "epoch" else str(getattr(k, field)) for k in (a, b)]
    return [_data.title_for(a), _data.title_for(b)]


def _default_right(study: Any, has_other: bool) -> dict:
    if has_other:
        return {}
    conditions = study.store.conditions()
    if "adversarial" in conditions:
        return {"condition": "adversarial"}
    models = study.store.models()
    if len(models) > 1:
        return {"model": models[1]}
    epochs = study.store.epochs()
    if len(epochs) > 1:
        return {"epoch": epochs[0]}
    raise InputError("Nothing to compare: pass right={'condition': ...} or other=<a second study>.")
