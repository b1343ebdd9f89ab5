"""The engine's adversarial measurements for the attack figures: ``study.attack_report`` (the paper's
attack experiment), or the pieces of a report passed in directly."""

from __future__ import annotations

from typing import Any

from patternviz_widget.engine.attack import analysis as aa

from ..defaults import THRESHOLD
from ..errors import InputError
from . import _data


def report(
    source: Any, layer: str | None = None, epoch: int | None = None, threshold: float = THRESHOLD
) -> Any:
    """Return an ``AttackReport``: ``source`` itself, or ``attack_report`` of a study/store/file."""
    if hasattr(source, "deltas") and hasattr(source, "kp"):
        return source
    study = _data.as_study(source)
    return study.attack_report(layer=layer, epoch=epoch, threshold=threshold)


def layer_shift(source: Any, **kw: Any) -> aa.LayerShift:
    """Δ_orientation / Δ_strength per layer (attacked images only)."""
    return source if isinstance(source, aa.LayerShift) else report(source, **kw).deltas


def kp_shift(source: Any, **kw: Any) -> aa.KPShift:
    """Knowledge points of c_ori before vs of c_adv after, and the p(c_ori | h_clean) histogram."""
    return source if isinstance(source, aa.KPShift) else report(source, **kw).kp


def trajectories(source: Any, **kw: Any) -> aa.Trajectories:
    """Trajectory types over the recorded attack iterations of the traced layer."""
    if isinstance(source, aa.Trajectories):
        return source
    rep = report(source, **kw)
    if rep.trajectories is None:
        raise InputError(
            f"The attack traced no iterations of layer {rep.layer!r}. Run "
            f"study.attack(..., record_layers=[{rep.layer!r}]) after study.embed()."
        )
    return rep.trajectories
