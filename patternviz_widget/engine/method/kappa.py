"""The concentration function κ(l) of the radial (vMF) model (paper Sec. 3.1, 3.2, 3.4; our choice: docs/method.md).

κ maps the strength l = ‖g‖ (or ‖h‖) of an embedding to the vMF concentration of its posterior
over classes. The official code loads a tabulated, linearly interpolated curve whose generator is
not published (the official code's table has no published generator), so κ is pluggable here:

* :class:`LinearKappa` (the default, ours): κ(l) = min(κ_max, a·l).
* :class:`TableKappa`: any monotone table (x, y), linearly interpolated, flat beyond the last x —
  plug in a table like the official code's.
* any callable ``torch.Tensor -> torch.Tensor`` (element-wise, non-negative, non-decreasing).

κ is always evaluated on *detached* norms (the official code computes it in numpy), so no
gradient flows through κ; :func:`evaluate` enforces that.

Choice of ``a`` (default 1). With κ(l) = a·l the posterior is softmax_c(a·μ_cᵀ g) below the cap,
so during a fit ``a`` only sets the unit of the learned M (or Λ): a fit with another ``a`` reaches
the same posteriors with M scaled by 1/a. It matters where the scale is *fixed*: knowledge points
(paper Sec. 3.4) divide h by the layer's mean strength first, so with a = 1 a region of average
strength has κ = 1, which cannot reach τ = 0.4 among ten well-spread classes (its posterior peak is
about 0.2), while a region about 1.5–2× the average strength pointing at one μ_c can. That matches
the paper's reading "long and aligned = discriminative, near the origin = not".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import numpy as np
import torch

# The caps and κ_m, re-exported: the method reads them as kappa.REGION_KAPPA_MAX etc.
from patternviz_widget.defaults import IMPORTANCE_KAPPA_M as IMPORTANCE_KAPPA_M
from patternviz_widget.defaults import IMPORTANCE_KAPPA_M_CHANNELS as IMPORTANCE_KAPPA_M_CHANNELS
from patternviz_widget.defaults import REGION_KAPPA_MAX as REGION_KAPPA_MAX
from patternviz_widget.defaults import SAMPLE_KAPPA_MAX as SAMPLE_KAPPA_MAX
from patternviz_widget.errors import InputError


def importance_kappa_m(kappa_m: float | None, channels: int) -> float:
    """Return the κ_m the importance fit uses for a layer with ``channels`` channels.

    None (the default, ours): κ_m = 1000 · K / 512, the official value scaled with the channel
    count. The importance scores s = Σ_k v_k f̂^(k,r) f̂^(k,r') start at v = 1/K, so they are a
    cosine divided by K; 1000 / 512 is the concentration per unit of cosine that the official code
    uses at its K = 512, and the scaling keeps it for any K. Unscaled at K = 16–64 the importance
    loss rises from its first step (exp(1000·s) is far too peaked) and the fit returns its uniform
    start. A number: used as given (1000 reproduces the official code exactly at K = 512)."""
    if kappa_m is None:
        return IMPORTANCE_KAPPA_M * max(int(channels), 1) / IMPORTANCE_KAPPA_M_CHANNELS
    if (
        isinstance(kappa_m, bool)
        or not isinstance(kappa_m, (int, float))
        or not (np.isfinite(kappa_m) and kappa_m > 0)
    ):
        raise InputError(
            f"kappa_m must be None (scaled with the channel count) or a positive number, got {kappa_m!r}."
        )
    return float(kappa_m)


KappaLike = Union["LinearKappa", "TableKappa", Callable[[torch.Tensor], torch.Tensor], float, None]


class LinearKappa:
    """κ(l) = min(κ_max, a·l): the capped linear concentration (our default).

    Args:
        kappa_max: κ_max, the cap (paper tables: 10 for samples, 1000 for regions).
        a: the slope (default 1; see the module docstring for why).
    """

    def __init__(self, kappa_max: float = SAMPLE_KAPPA_MAX, a: float = 1.0) -> None:
        if not (np.isfinite(kappa_max) and kappa_max > 0):
            raise InputError(f"kappa_max must be a positive number, got {kappa_max!r}.")
        if not (np.isfinite(a) and a > 0):
            raise InputError(f"kappa slope a must be a positive number, got {a!r}.")
        self.kappa_max = float(kappa_max)
        self.a = float(a)

    def __call__(self, norms: torch.Tensor) -> torch.Tensor:
        return torch.clamp(norms * self.a, min=0.0, max=self.kappa_max)

    def describe(self) -> dict:
        """JSON description stored in a record's params."""
        return {"kind": "linear", "kappa_max": self.kappa_max, "a": self.a}

    def __repr__(self) -> str:
        return f"LinearKappa(kappa_max={self.kappa_max}, a={self.a})"


class TableKappa:
    """κ from a monotone table (x_i, κ_i), linearly interpolated; flat outside [x_0, x_n].

    The official code interpolates such a table (``scipy interp1d``) but refuses norms beyond its
    last x; here they get the last value (so huge norms give κ_max, never an error).

    Args:
        x: increasing norms. y: non-negative, non-decreasing κ values of the same length.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape or x.size < 2:
            raise InputError("TableKappa needs x and y of the same length >= 2.")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise InputError("TableKappa x and y must be finite.")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0) or y[0] < 0:
            raise InputError("TableKappa needs increasing x and non-negative, non-decreasing y.")
        self.x, self.y = x, y

    def __call__(self, norms: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(self.x, dtype=norms.dtype, device=norms.device)
        y = torch.as_tensor(self.y, dtype=norms.dtype, device=norms.device)
        flat = norms.reshape(-1).clamp(min=float(self.x[0]), max=float(self.x[-1]))
        idx = torch.searchsorted(x, flat, right=True).clamp(1, x.numel() - 1)
        x0, x1, y0, y1 = x[idx - 1], x[idx], y[idx - 1], y[idx]
        out = y0 + (y1 - y0) * (flat - x0) / (x1 - x0)
        return out.reshape(norms.shape)

    def describe(self) -> dict:
        return {"kind": "table", "x": self.x.tolist(), "y": self.y.tolist()}

    def __repr__(self) -> str:
        return f"TableKappa({self.x.size} points, kappa_max={self.y[-1]:g})"


def make_kappa(kappa: KappaLike, default_max: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return a κ function from ``kappa``: None (capped linear at ``default_max``), a number
    (capped linear with that κ_max), a :class:`LinearKappa`/:class:`TableKappa`, or a callable."""
    if kappa is None:
        return LinearKappa(default_max)
    if isinstance(kappa, bool):
        raise InputError(f"kappa must be None, a number (κ_max), or a callable; got {kappa!r}.")
    if isinstance(kappa, (int, float)):
        return LinearKappa(float(kappa))
    if callable(kappa):
        return kappa
    raise InputError(
        f"kappa must be None, a number (κ_max), LinearKappa, TableKappa or a callable; got {kappa!r}."
    )


def from_description(
    desc: dict | None, default_max: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the κ function a record's ``params["kappa"]`` describes (capped linear by default)."""
    if isinstance(desc, dict) and desc.get("kind") == "linear":
        return LinearKappa(float(desc.get("kappa_max", default_max)), float(desc.get("a", 1.0)))
    if isinstance(desc, dict) and desc.get("kind") == "table":
        return TableKappa(np.asarray(desc["x"]), np.asarray(desc["y"]))
    return LinearKappa(default_max)


def describe(kappa: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """JSON description of a κ function for a record's params."""
    fn = getattr(kappa, "describe", None)
    return fn() if callable(fn) else {"kind": "callable", "repr": repr(kappa)}


def evaluate(kappa: Callable[[torch.Tensor], torch.Tensor], norms: torch.Tensor) -> torch.Tensor:
    """Return κ(norms) on detached norms, finite and non-negative (NaN/Inf become the cap)."""
    with torch.no_grad():
        k = kappa(norms.detach())
        k = torch.as_tensor(k, dtype=norms.dtype, device=norms.device)
        if k.shape != norms.shape:
            raise InputError(
                f"kappa returned shape {tuple(k.shape)} for norms {tuple(norms.shape)}."
            )
        finite = torch.isfinite(k)
        if bool(finite.all()):  # the usual case, without the temporaries of the masking below
            return k.clamp(min=0.0)
        cap = torch.where(finite, k, torch.zeros_like(k)).amax() if k.numel() else k.new_zeros(())
        k = torch.where(finite, k, torch.where(k == float("inf"), cap, torch.zeros_like(k))).clamp(
            min=0.0
        )
    return k
