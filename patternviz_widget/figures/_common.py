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
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .._style import GLYPHS, class_color
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
#: Ellipsoid radius in standard deviations, as the widget draws them (``_payload.ELLIPSOID_SIGMA``).
ELLIPSOID_SIGMA = 1.5
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


def _item_width(handle: Any, fontsize: float) -> float:
    """Rough width in inches of one legend entry (marker + gap + label)."""
    return 0.42 + 0.56 * fontsize / 72 * len(handle.get_label())


def legend_rows(fig: Figure, groups: Sequence[Sequence[Any]], fontsize: float = 7.0) -> Any:
    """Add one legend below the axes whose rows are filled group by group and fit the figure's width.

    Each group (e.g. classes, then glyphs) starts on a new row; the number of columns is the
    largest that keeps the estimated legend width inside the figure.
    """
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        return None
    width = fig.get_figwidth() - 0.2
    blank = Line2D([], [], linestyle="none", label=" ")
    best = None
    for ncol in range(max(len(g) for g in groups), 0, -1):
        rows = [g[i : i + ncol] for g in groups for i in range(0, len(g), ncol)]
        cols = [max((_item_width(r[c], fontsize) for r in rows if c < len(r)), default=0.0)
                for c in range(ncol)]  # fmt: skip
        best = (ncol, rows)
        if sum(cols) <= width:
            break
    ncol, rows = best  # type: ignore[misc]
    grid = [r + [blank] * (ncol - len(r)) for r in rows]
    handles = [grid[r][c] for c in range(ncol) for r in range(len(grid))]  # legends fill by column
    return fig.legend(handles=handles, loc="outside lower center", ncol=ncol, handletextpad=0.3,
                      columnspacing=1.0, fontsize=fontsize)  # fmt: skip


# -- 3-D axes ---------------------------------------------------------------------------------------
#: The widget's default camera (js/src/lib/camera.ts: azimuth 0.7 rad, elevation 0.42 rad, field of
#: view 32°), as matplotlib angles in degrees (see :func:`camera_angles`).
WIDGET_AZIMUTH, WIDGET_ELEVATION, WIDGET_FOV = 0.7, 0.42, 32.0


def camera_angles(camera: dict | None = None) -> tuple[float, float]:
    """Return matplotlib (elev, azim) in degrees for the widget's camera trait (radians, y up).

    The page draws with three.js (y up, camera at (cos e·sin a, sin e, cos e·cos a)); figures draw
    the embedding's (x, y, z) at matplotlib's (x, −z, y) (see :func:`xyz3`), where the same camera
    is elev = e, azim = a − 90°.
    """
    camera = camera or {}
    az = float(camera.get("azimuth", WIDGET_AZIMUTH))
    el = float(camera.get("elevation", WIDGET_ELEVATION))
    return float(np.degrees(el)), float(np.degrees(az) - 90.0)


#: Default (elev, azim) of every 3-D figure: the widget's default camera.
ELEV, AZIM = camera_angles()


def xyz3(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matplotlib (X, Y, Z) of embedding points (..., 3): (x, −z, y), so "up" is the embedding's y
    axis as in the widget (a rotation, not a mirror: the picture has the widget's handedness)."""
    a = np.asarray(points)
    return a[..., 0], -a[..., 2], a[..., 1]


def setup_3d(
    ax: Any, radius: float, elev: float = ELEV, azim: float = AZIM, zoom: float = 1.1
) -> None:
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
        for c, tip in enumerate(unit * 1.16):
            name = str(class_names[c]) if c < len(class_names) else str(c)
            ax.text(*xyz3(tip), name, color=colors[c], fontsize=6.5, ha="center", va="center",
                    fontweight="bold")  # fmt: skip


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
