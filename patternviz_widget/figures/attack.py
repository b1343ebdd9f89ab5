"""Adversarial-attack figures (the paper's adversarial-attack experiment): Δ curves over layers, the histogram of
p(c_ori | h_clean) for adversarial-class knowledge points, and the four trajectory types.

Each function takes either the engine's measurement (``LayerShift``, ``KPShift``,
``Trajectories`` from :mod:`patternviz_widget.engine.attack.analysis`) or a study with
adversarial results, from which the measurement is computed by the engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from .._validate import check_positive_int, check_probability
from ..defaults import THRESHOLD
from . import _attack_data
from ._common import new_figure, style

#: Iteration colours of attack trajectories: blue (clean) → red (last iteration), as in the paper.
TRAJECTORY_CMAP = LinearSegmentedColormap.from_list(
    "pv_attack", ["#2c7bb6", "#abd9e9", "#fdae61", "#d7191c"]
)
DELTA_COLORS = {"orientation": "#4e79a7", "strength": "#e15759"}


def attack_deltas(
    source: Any,
    epoch: int | None = None,
    size: tuple[float, float] = (3.4, 2.4),
) -> Figure:
    """Return Δ_orientation and Δ_strength of regional embeddings per layer under the attack.

    The paper's attack experiment: Δ_orientation = mean(1 − cos(h_adv, h_clean)), Δ_strength =
    mean |‖h_adv‖ − ‖h_clean‖| / clean mean strength, both with the clean Λ. The paper finds both
    ≈ 0 in low layers and largest in the last conv layer. Lines carry gids ``delta-orientation``
    and ``delta-strength``, one marker per layer.

    Args:
        source: a study with "adversarial" results (read with ``study.attack_report``), an
            ``AttackReport`` or its ``LayerShift``. Means are over the regions of images the attack
            flipped.
    """
    shift = _attack_data.layer_shift(source, epoch=epoch)
    x = np.arange(len(shift.layers))
    with style():
        fig = new_figure(size)
        ax = fig.add_subplot(111)
        for name, values, marker in (
            ("orientation", shift.orientation, "o"),
            ("strength", shift.strength, "s"),
        ):
            (line,) = ax.plot(x, values, marker=marker, ms=4, color=DELTA_COLORS[name],
                              label=f"Δ {name}")  # fmt: skip
            line.set_gid(f"delta-{name}")
        ax.set_xticks(x, shift.layers, rotation=30 if len(shift.layers) > 4 else 0, ha="right"
                      if len(shift.layers) > 4 else "center")  # fmt: skip
        ax.set_xlabel("layer (low → high)")
        ax.set_ylabel("mean change under attack")
        ax.set_ylim(bottom=0)
        ax.set_title("clean → adversarial, clean Λ")
        ax.legend(loc="upper left")
    return fig


def attack_histogram(
    source: Any,
    layer: str | None = None,
    epoch: int | None = None,
    threshold: float = THRESHOLD,
    size: tuple[float, float] = (3.4, 2.4),
) -> Figure:
    """Return the histogram of p(c_ori | h_clean) over the adversarial-class knowledge points.

    The paper's attack histogram: for the regions that are knowledge points of the adversarial class after the
    attack, how strongly did they support the original class before it? The paper's mode is
    ≈ 0.10–0.15: most were not original-class knowledge points. The dashed line is τ. Bars carry
    gid ``hist-bar`` (one per bin).

    Args:
        source: a study with "adversarial" results, an ``AttackReport`` or its ``KPShift``.
        layer: the layer (default: the last one). threshold: τ (paper Sec. 3.4, default 0.4).
    """
    threshold = check_probability(threshold, "threshold (τ)")
    shift = _attack_data.kp_shift(source, layer=layer, epoch=epoch, threshold=threshold)
    edges = np.asarray(shift.hist_edges, dtype=np.float64)
    counts = np.asarray(shift.hist_counts)
    with style():
        fig = new_figure(size)
        ax = fig.add_subplot(111)
        bars = ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#9c755f",
                      edgecolor="white", linewidth=0.4)  # fmt: skip
        for bar in bars:
            bar.set_gid("hist-bar")
        ax.axvline(shift.threshold, color="#333333", linestyle="--", linewidth=0.8)
        ax.text(
            shift.threshold,
            ax.get_ylim()[1] * 0.97,
            f" τ = {shift.threshold:g}",
            va="top",
            fontsize=6.5,
        )
        ax.set_xlim(0, 1)
        ax.set_xlabel(r"$p(c_{\mathrm{ori}} \mid h_{\mathrm{clean}})$ before the attack")
        ax.set_ylabel("adversarial-class KPs")
        below = shift.share_below_threshold
        title = f"{int(counts.sum())} KPs of c_adv after the attack"
        if np.isfinite(below):
            title += f"; {below:.0%} below τ before"
        ax.set_title(title)
    return fig


def trajectory_types(
    source: Any,
    layer: str | None = None,
    epoch: int | None = None,
    per_type: int = 12,
    seed: int = 0,
    panel_size: float = 1.7,
) -> Figure:
    """Return the four trajectory types of regions over the attack iterations (the paper's attack experiment).

    Each panel draws up to ``per_type`` regions of one type in the radial plane of the original
    class: x = ‖h‖ cos(h, μ_ori), y = ‖h‖ sin(h, μ_ori) (strength in units of the clean mean, so
    distances to the origin and angles to μ_ori are exact), coloured from blue (clean) to red
    (last iteration). Type 1: original → adversarial directly; 2: through the origin;
    3: nothing → adversarial; 4: original → nothing. Each drawn trajectory is one line collection
    with gid ``trajectory-<type>``.

    Args:
        source: a study whose attack traced ``layer``, an ``AttackReport`` or its ``Trajectories``.
        per_type: regions drawn per type (a seeded sample when more qualify).
    """
    check_positive_int(per_type, "per_type")
    traj = _attack_data.trajectories(source, layer=layer, epoch=epoch)
    s = np.asarray(traj.strength, dtype=np.float64)
    cos = np.clip(np.asarray(traj.cos_ori, dtype=np.float64), -1.0, 1.0)
    xy = np.stack([s * cos, s * np.sqrt(1.0 - cos**2)], axis=-1)  # [T, R, 2]
    rng = np.random.default_rng(seed)
    lim = max(1.5, float(np.quantile(s, 0.99)) * 1.1) if s.size else 1.5
    t = xy.shape[0]
    with style():
        fig = new_figure((panel_size * 4 + 0.2, panel_size + 0.9))
        axes = fig.subplots(1, 4, sharex=True, sharey=True)
        for k, ax in enumerate(axes):
            members = np.flatnonzero(traj.types[k])
            pick = (
                members
                if members.size <= per_type
                else np.sort(rng.choice(members, per_type, replace=False))
            )
            for j in pick:
                seg = np.stack([xy[:-1, j], xy[1:, j]], axis=1)
                lc = LineCollection(seg, cmap=TRAJECTORY_CMAP, linewidths=0.9)
                lc.set_array(np.linspace(0, 1, max(t - 1, 1)))
                lc.set_gid(f"trajectory-{k + 1}")
                ax.add_collection(lc)
                ax.plot(*xy[0, j], "o", color=TRAJECTORY_CMAP(0.0), ms=2.2)
                ax.plot(*xy[-1, j], "o", color=TRAJECTORY_CMAP(1.0), ms=2.2)
            for radius in (traj.thresholds["start_norm_nothing"], traj.thresholds["start_norm"]):
                ax.add_patch(
                    Circle(
                        (0, 0), radius, fill=False, linestyle=":", linewidth=0.6, color="#888888"
                    )
                )
            ax.annotate("", xy=(lim * 0.95, 0), xytext=(0, 0),
                        arrowprops={"arrowstyle": "->", "color": "#333333", "lw": 0.8})  # fmt: skip
            ax.text(lim * 0.95, lim * 0.03, "μ_ori", ha="right", va="bottom", fontsize=6.5)
            ax.set_xlim(-lim * 0.5, lim)
            ax.set_ylim(0, lim)
            ax.set_aspect("equal")
            n, share = int(traj.counts[k]), float(traj.shares[k])
            desc = str(traj.names[k]).split(": ", 1)[-1]
            ax.set_title(f"Type {k + 1}: {n} regions ({share:.0%})\n{desc}", fontsize=6.5)
            ax.set_xlabel("along μ_ori")
        axes[0].set_ylabel("across μ_ori")
        handles = [Line2D([], [], marker="o", linestyle="none", color=TRAJECTORY_CMAP(0.0), ms=3, label="clean"),
                   Line2D([], [], marker="o", linestyle="none", color=TRAJECTORY_CMAP(1.0), ms=3,
                          label=f"after {t - 1} iterations"),
                   Line2D([], [], linestyle=":", color="#888888", label="strength 0.5 and 1 (× clean mean)")]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncol=3)
    return fig
