"""Shared plumbing of every figure: the house style, new figures, saving, legends and 3-D axes.

Figures are built on ``matplotlib.figure.Figure`` directly (never ``pyplot``), so nothing is
registered with a GUI backend, nothing leaks between calls, and a notebook shows each figure once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import IdentityTransform

from .._style import GLYPHS, class_color, readable
from ..errors import InputError

#: File formats :func:`save` writes, by suffix.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}

#: rcParams for every figure: small serif-free fonts sized for a paper column, TrueType fonts in PDF
#: (editable, accepted by journals) and real text (not outlines) in SVG.
STYLE: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica", "sans-serif"],
    "font.size": 8.0,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "svg.hashsalt": "patternviz",
    "figure.dpi": 100,
    "savefig.dpi": 300,
}

#: Legend labels of the paper's glyphs: ``_style.GLYPHS`` descriptions, "knowledge point" shortened to
#: "KP" so three glyphs fit below a one-column figure.
GLYPH_LABELS = {name: desc.replace("knowledge point", "KP") for name, (_, desc) in GLYPHS.items()}
#: Draw order of the glyph groups: background first, so knowledge points stay on top.
GLYPH_ORDER = ("non_discriminative", "unreliable", "reliable")
#: Neutral colour of legend glyphs (the point colour itself carries the class).
LEGEND_GREY = "#555555"


@contextmanager
def style() -> Iterator[None]:
    """Context manager: apply :data:`STYLE` (fonts, line widths, vector-font settings)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(size: tuple[float, float]) -> Figure:
    """Return an empty figure of ``size`` inches (width, height) with constrained layout."""
    width, height = check_size(size)
    return Figure(figsize=(width, height), layout="constrained")


def check_size(size: object) -> tuple[float, float]:
    """Return ``size`` as a (width, height) pair of positive inches, or raise naming the fix."""
    try:
        width, height = (float(v) for v in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(
            f"size must be (width, height) in inches, e.g. (4, 3); got {size!r}."
        ) from None
    if not (0.5 <= width <= 40 and 0.5 <= height <= 40):
        raise InputError(f"size must be between 0.5 and 40 inches on each side; got {size!r}.")
    return width, height


def save(fig: Figure, path: str | Path, dpi: int = 300, transparent: bool = False) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names; return the path written.

    Args:
        fig: a figure from :mod:`patternviz_widget.figures`.
        path: ``*.png`` (raster, ``dpi`` pixels per inch), ``*.svg`` or ``*.pdf`` (vector).
            Missing parent folders are created.
        dpi: pixels per inch of PNG output; a PNG is exactly ``size × dpi`` pixels.
        transparent: transparent background instead of white.

    Returns:
        The path written.

    Raises:
        InputError: an unknown suffix (the message lists the supported ones) or a bad dpi.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        shown = path.suffix or "no suffix"
        raise InputError(
            f"Cannot tell the figure format of {str(path)!r} ({shown}). "
            f"Use one of {', '.join(FORMATS)}: e.g. {path.with_suffix('.pdf').name!r}."
        )
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 10 <= dpi <= 2400:
        raise InputError(f"dpi must be a number between 10 and 2400, got {dpi!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
    with style():
        fig.savefig(path, format=fmt, dpi=dpi, transparent=transparent, metadata=metadata)
    return path


# -- text -----------------------------------------------------------------------------------------
def plain(text: object) -> str:
    """``text`` as matplotlib must draw it verbatim: every ``$`` escaped, so class names such as
    "$x$" or "cost $5 and $6" are never read as mathtext."""
    return str(text).replace("$", r"\$")


def text_width(text: str, fontsize: float, weight: str = "normal") -> float:
    """Width in inches of ``text`` (plain, unescaped) in the figures' sans-serif font at ``fontsize``."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(family="DejaVu Sans", size=fontsize, weight=weight)  # always bundled
    return float(text_to_path.get_text_width_height_descent(str(text), prop, ismath=False)[0]) / 72


def shorten(text: str, max_width: float, fontsize: float) -> str:
    """``text`` cut to fit ``max_width`` inches at ``fontsize``, ending in "…" when cut."""
    text = str(text)
    if text_width(text, fontsize) <= max_width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid].rstrip() + "…", fontsize) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


# -- legends ----------------------------------------------------------------------------------------
def glyph_handles(present: Sequence[str] = GLYPH_ORDER[::-1]) -> list[Line2D]:
    """Legend handles for the paper's glyphs that occur in a figure (reliable first)."""
    return [
        Line2D([], [], linestyle="none", marker=GLYPHS[name][0], markersize=5,
               markerfacecolor=LEGEND_GREY, markeredgecolor="white", markeredgewidth=0.4,
               label=GLYPH_LABELS[name])
        for name in ("reliable", "unreliable", "non_discriminative") if name in present
    ]  # fmt: skip


def class_handles(class_names: Sequence[str], classes: Sequence[int] | None = None) -> list[Line2D]:
    """Legend handles: one coloured dot per class (all classes, or those in ``classes``)."""
    shown = range(len(class_names)) if classes is None else sorted({int(c) for c in classes})
    return [
        Line2D([], [], linestyle="none", marker="o", markersize=5, markerfacecolor=class_color(c),
               markeredgecolor="none", label=str(class_names[c]) if c < len(class_names) else str(c))
        for c in shown
    ]  # fmt: skip


#: Legend geometry in inches: row pitch, side margin, gap between a handle and its label, between
#: columns, and the widest label (longer names end in "…"; the full names are in ``fig.legend_names``).
LEGEND_ROW, LEGEND_MARGIN, LEGEND_GAP, LEGEND_COLSEP, LEGEND_MAX_LABEL = 0.145, 0.1, 0.05, 0.16, 1.5


def _handle_width(handle: Any) -> float:
    """Width in inches of a handle's sample: a marker, or a short line for line handles."""
    if isinstance(handle, Line2D) and handle.get_linestyle() not in ("none", "None", " ", ""):
        return 0.3
    return 0.14 if isinstance(handle, Line2D) else 0.2


def _sample_of(handle: Any) -> Any:
    """The artist whose style a legend sample copies: the handle, or a bar container's first bar."""
    from matplotlib.container import Container

    if isinstance(handle, Container):
        parts = [a for a in handle if a is not None]
        return parts[0] if parts else None
    return handle


def _draw_handle(fig: Figure, handle: Any, x: float, y: float, width: float) -> None:
    """Draw ``handle``'s sample with its left edge at (x, y) inches (y: the row's middle)."""
    from matplotlib.patches import Patch, Rectangle

    handle = _sample_of(handle)
    if isinstance(handle, Line2D):
        line = width > 0.2
        art: Any = Line2D([x, x + width] if line else [x + width / 2], [y, y] if line else [y])
    else:
        h = LEGEND_ROW * 0.55
        art = Rectangle((x, y - h / 2), width, h)
    if isinstance(handle, (Line2D, Patch)):
        art.update_from(handle)
    art.set_transform(fig.dpi_scale_trans)
    art.set_gid("legend-handle")
    fig.add_artist(art)


def legend_rows(fig: Figure, groups: Sequence[Sequence[Any]], fontsize: float = 7.0) -> Any:
    """Add a legend below the plots: each group (e.g. classes, then glyphs) a regular grid of equal
    cells, as many columns as fit the figure's width, rows filled left to right.

    Labels wider than :data:`LEGEND_MAX_LABEL` (or than the figure) are shortened with "…"; the
    full labels, in order, are ``fig.legend_names`` (for a caption). Labels are drawn verbatim
    (``$`` is never mathtext). The plots are laid out above the legend's band (the constrained
    layout's ``rect``), so nothing overlaps and the legend never leaves the figure. Returns the
    label Text artists (gids ``legend-label``), or None for no entries.
    """
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        return None
    fig_w, fig_h = fig.get_figwidth(), fig.get_figheight()
    avail = max(fig_w - 2 * LEGEND_MARGIN, 0.3)
    layout = []  # per group: (handles, labels, handle width, cell width, columns)
    for group in groups:
        hw = max(_handle_width(h) for h in group)
        cap = max(min(LEGEND_MAX_LABEL, avail - hw - LEGEND_GAP), 0.1)
        labels = [shorten(str(h.get_label()), cap, fontsize) for h in group]
        cell = hw + LEGEND_GAP + max(text_width(t, fontsize) for t in labels) + LEGEND_COLSEP
        ncol = int(max(1, min(len(group), (avail + LEGEND_COLSEP) // cell)))
        layout.append((group, labels, hw, cell, ncol))
    n_rows = sum(int(np.ceil(len(g) / ncol)) for g, _, _, _, ncol in layout)
    band = n_rows * LEGEND_ROW + 0.08
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0.0, min(band / fig_h, 0.6), 1.0, 1.0 - min(band / fig_h, 0.6)))
    texts, row = [], 0
    for group, labels, hw, cell, ncol in layout:
        x0 = (fig_w - (ncol * cell - LEGEND_COLSEP)) / 2
        for i, (handle, label) in enumerate(zip(group, labels)):
            r, c = divmod(i, ncol)
            x = x0 + c * cell
            y = band - 0.04 - (row + r + 0.5) * LEGEND_ROW
            _draw_handle(fig, handle, x, y, hw)
            t = fig.text(x + hw + LEGEND_GAP, y, plain(label), transform=fig.dpi_scale_trans,
                         fontsize=fontsize, ha="left", va="center_baseline", gid="legend-label")  # fmt: skip
            t.set_in_layout(False)
            texts.append(t)
        row += int(np.ceil(len(group) / ncol))
    fig.legend_names = [str(h.get_label()) for g in groups for h in g]
    return texts


# -- 3-D axes ---------------------------------------------------------------------------------------
#: The widget's field of view (js/src/lib/camera.ts: 32°); its default angles are chosen from the
#: data (:func:`patternviz_widget.results.camera.default_camera`).
WIDGET_FOV = 32.0


def camera_angles(camera: dict | None = None) -> tuple[float | None, float | None]:
    """Return matplotlib (elev, azim) in degrees for the widget's camera trait (radians, y up);
    (None, None) when it holds no angles (the figure then uses the data-chosen default view).

    The page draws with three.js (y up, camera at (cos e·sin a, sin e, cos e·cos a)); figures draw
    the embedding's (x, y, z) at matplotlib's (x, −z, y) (see :func:`xyz3`), where the same camera
    is elev = e, azim = a − 90°.
    """
    camera = camera or {}
    if camera.get("azimuth") is None and camera.get("elevation") is None:
        return None, None
    from ..results.camera import FALLBACK

    az = float(camera.get("azimuth", FALLBACK["azimuth"]))
    el = float(camera.get("elevation", FALLBACK["elevation"]))
    return float(np.degrees(el)), float(np.degrees(az) - 90.0)


def view_angles(
    store: Any, model: str | None, elev: float | None, azim: float | None
) -> tuple[float, float]:
    """(elev, azim) in degrees: the given ones, or for None the data-chosen default view of
    ``model`` (the widget's first view and Reset; ``results.camera.default_camera``)."""
    if elev is not None and azim is not None:
        return float(elev), float(azim)
    from ..results.camera import default_camera

    e0, a0 = camera_angles(default_camera(store, model))
    return float(e0 if elev is None else elev), float(a0 if azim is None else azim)


def xyz3(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matplotlib (X, Y, Z) of embedding points (..., 3): (x, −z, y), so "up" is the embedding's y
    axis as in the widget (a rotation, not a mirror: the picture has the widget's handedness)."""
    a = np.asarray(points)
    return a[..., 0], -a[..., 2], a[..., 1]


def setup_3d(ax: Any, radius: float, elev: float, azim: float, zoom: float = 1.1) -> None:
    """Give a 3-D axes equal limits ±``radius``, a cube aspect, the widget's perspective, light
    panes and small ticks."""
    r = float(radius) if np.isfinite(radius) and radius > 0 else 1.0
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_zlim(-r, r)
    ax.set_box_aspect((1, 1, 1), zoom=zoom)
    ax.view_init(elev=elev, azim=azim)
    ax.set_proj_type("persp", focal_length=1.0 / np.tan(np.radians(WIDGET_FOV / 2)))
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color((0.975, 0.975, 0.975, 1.0))
        axis._axinfo["grid"]["linewidth"] = 0.3  # no public API for the 3-D grid width
        axis.set_major_locator(MaxNLocator(nbins=4, symmetric=True))
        axis.set_tick_params(labelsize=5.5, pad=-3)


def radius_of(points: np.ndarray, quantile: float = 0.98) -> float:
    """Half-width of a cube that holds ``quantile`` of the points' norms, with a 10 % margin."""
    if points.size == 0:
        return 1.0
    norms = np.linalg.norm(points.reshape(-1, points.shape[-1]), axis=1)
    norms = norms[np.isfinite(norms)]
    if norms.size == 0:
        return 1.0
    r = float(np.quantile(norms, quantile)) * 1.1
    return r if r > 0 else 1.0


def draw_class_arrows(
    ax: Any, mu: np.ndarray, class_names: Sequence[str], length: float, labels: bool = True
) -> None:
    """Draw the class directions μ_c as arrows of ``length`` from the origin, labelled by class.

    The arrows form one collection with gid ``mu-arrows`` (one line per class) so tests and
    post-processing can find them in SVG output.
    """
    mu = np.asarray(mu, dtype=np.float64)
    norms = np.linalg.norm(mu, axis=1, keepdims=True)
    unit = np.divide(mu, norms, out=np.zeros_like(mu), where=norms > 0) * length
    colors = [class_color(c) for c in range(len(mu))]
    zeros = np.zeros(len(mu))
    q = ax.quiver(
        zeros, zeros, zeros, *xyz3(unit), colors=colors * 3, arrow_length_ratio=0.08, linewidths=1.3
    )  # fmt: skip  (colours: shafts, then one head side each, then the other)
    q.set_gid("mu-arrows")
    if labels:
        names = [str(class_names[c]) if c < len(class_names) else str(c) for c in range(len(mu))]
        ax.add_artist(MuLabels(np.column_stack(xyz3(unit)), names, colors))


def place_labels(anchors: np.ndarray, sizes: np.ndarray, centre: np.ndarray, bounds: tuple,
                 step: float, pad: float = 1.0) -> np.ndarray:  # fmt: skip
    """Greedy collision avoidance: centres for boxes ``sizes`` (n×2, w×h) near ``anchors`` (n×2).

    Each box tries positions pushed outward from ``centre`` through its anchor (the arrow's
    direction), at growing distances (multiples of ``step``) and at angles fanning out from that
    direction; it takes the first that overlaps no box placed before it and stays inside
    ``bounds`` (x0, y0, x1, y1), else the one with the least overlap; placed boxes keep ``pad``
    clear around them. All in one unit (pixels).
    The widget places its labels by the same rule (js/src/views/embedding.ts ``placeLabels``).
    """
    x0, y0, x1, y1 = bounds
    placed: list[tuple[float, float, float, float]] = []
    out = np.zeros_like(np.asarray(anchors, dtype=float))
    for i, ((ax_, ay), (w, h)) in enumerate(zip(anchors, sizes)):
        d = np.array([ax_ - centre[0], ay - centre[1]])
        base = float(np.arctan2(d[1], d[0])) if np.hypot(*d) > 1e-9 else 0.0
        best, best_cost, free = (ax_, ay), np.inf, False
        for dist in (0.6, 1.2, 2, 3, 4.5, 6.5, 9, 12, 16, 21, 27, 34):
            for turn in (0, 30, -30, 60, -60, 90, -90, 135, -135, 180):
                a = base + np.radians(turn)
                r = dist * step + 0.5 * abs(w * np.cos(a)) + 0.5 * abs(h * np.sin(a))
                cx, cy = ax_ + r * np.cos(a), ay + r * np.sin(a)
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                overlap = sum(max(0.0, min(box[2], b[2]) - max(box[0], b[0]))
                              * max(0.0, min(box[3], b[3]) - max(box[1], b[1])) for b in placed)  # fmt: skip
                outside = (max(0.0, x0 - box[0]) + max(0.0, box[2] - x1)) * h + (
                    max(0.0, y0 - box[1]) + max(0.0, box[3] - y1)
                ) * w
                if overlap + outside < best_cost:
                    best, best_cost = (cx, cy), overlap + outside
                free = best_cost == 0
                if free:
                    break
            if free:
                break
        cx, cy = best  # type: ignore[misc]
        out[i] = (cx, cy)
        placed.append((cx - w / 2 - pad, cy - h / 2 - pad, cx + w / 2 + pad, cy + h / 2 + pad))
    return out


#: Widest class-direction label in inches (longer names end in "…"; the legend has them in full).
MU_LABEL_MAX = 1.0


class MuLabels(Artist):
    """The class names at the tips of the μ_c arrows of a 3-D axes, placed without overlap.

    Placement happens at draw time, in display pixels, from the axes' current projection (so it
    holds at any size, dpi or camera): :func:`place_labels`. Each label is a Text with gid
    ``mu-label``, in its class colour made :func:`~patternviz_widget._style.readable` on white,
    with a thin white halo (readable over points), drawn verbatim (``$`` is not mathtext).
    """

    def __init__(self, tips: np.ndarray, names: Sequence[str], colors: Sequence[str],
                 fontsize: float = 6.5) -> None:  # fmt: skip
        super().__init__()
        self.tips = np.asarray(tips, dtype=np.float64)
        self.texts = [Text(0, 0, plain(shorten(n, MU_LABEL_MAX, fontsize)), color=readable(col), fontsize=fontsize, fontweight="bold",
                           ha="center", va="center", gid="mu-label",
                           path_effects=[withStroke(linewidth=2.2, foreground="white", alpha=0.85)])
                      for n, col in zip(names, colors)]  # fmt: skip
        self.set_zorder(1000)
        self.set_in_layout(False)

    def draw(self, renderer: Any) -> None:
        from mpl_toolkits.mplot3d import proj3d

        ax = self.axes
        if ax is None or not self.get_visible() or not len(self.texts):
            return
        pts = np.vstack([self.tips, np.zeros((1, 3))])
        xs, ys, _ = proj3d.proj_transform(pts[:, 0], pts[:, 1], pts[:, 2], ax.M)
        disp = ax.transData.transform(np.column_stack([xs, ys]))
        sizes = []
        for t in self.texts:
            t.set_figure(
                self.get_figure(root=False) if hasattr(self, "get_figure") else self.figure
            )
            t.set_transform(IdentityTransform())
            t.set_position((0, 0))
            ext = t.get_window_extent(renderer)
            sizes.append((ext.width, ext.height))
        b = ax.bbox
        at = place_labels(disp[:-1], np.asarray(sizes), disp[-1], (b.x0, b.y0, b.x1, b.y1),
                          step=renderer.points_to_pixels(3.0), pad=renderer.points_to_pixels(1.5))  # fmt: skip
        for t, (x, y) in zip(self.texts, at):
            t.set_position((x, y))
            t.draw(renderer)
        self.stale = False


def ellipsoid_surface(
    points: np.ndarray, n_std: float = 1.0, res: int = 14
) -> tuple[np.ndarray, ...] | None:
    """Return (X, Y, Z) grids of the ``n_std`` covariance ellipsoid of 3-D ``points`` (None if < 4 points)."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 4:  # as the widget: too few points for a covariance
        return None
    centre = pts.mean(axis=0)
    cov = np.cov(pts, rowvar=False) + np.eye(3) * 1e-12
    vals, vecs = np.linalg.eigh(cov)
    radii = n_std * np.sqrt(np.clip(vals, 0.0, None))
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, res), np.linspace(0, np.pi, res // 2 + 1))
    sphere = np.stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)], axis=-1)
    xyz = sphere * radii @ vecs.T + centre
    return xyz[..., 0], xyz[..., 1], xyz[..., 2]


def draw_ellipsoids(
    ax: Any, h: np.ndarray, labels: np.ndarray, n_std: float, alpha: float = 0.3
) -> None:
    """Draw one ``n_std`` covariance ellipsoid per class of 3-D points ``h`` (gid ``ellipsoid-<c>``)."""
    for c in np.unique(labels):
        surf = ellipsoid_surface(h[labels == c], n_std)
        if surf is not None:
            s = ax.plot_surface(*xyz3(np.stack(surf, axis=-1)), color=class_color(int(c)), alpha=alpha,
                                linewidth=0, antialiased=True, shade=True)  # fmt: skip
            s.set_gid(f"ellipsoid-{int(c)}")
