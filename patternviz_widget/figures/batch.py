"""Every figure a study supports, made or written in one call (the ``figures`` command and the demo).

A figure the study cannot support (no attack, no embedding of a layer) is skipped with a logged
reason instead of stopping the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from patternviz_widget.defaults import THRESHOLD
from patternviz_widget.errors import PatternVizError
from patternviz_widget.figures import _data
from patternviz_widget.results import RegionEmbedding


def _safe(fn: Callable[[], Any], what: str, log: Callable[[str], None]) -> Any:
    try:
        return fn()
    except PatternVizError as e:
        log(f"[figures] skipped {what}: {e}")
        return None


def figure_specs(study: Any, threshold: float = THRESHOLD) -> list[tuple[str, Callable[[], Any]]]:
    """(file stem, maker) of every figure ``study`` supports: the distillation figures for a
    teacher | student study (``pv.Study.compare``); otherwise the training/emergence figures, and
    the attack figures when it has adversarial results."""
    from patternviz_widget import figures as F

    store = study.store
    tau = {"threshold": threshold}
    if "compare" in store.meta:
        return [
            ("distill_knowledge", lambda: F.distill_knowledge(study, **tau)),
            ("distill_histograms", lambda: F.distill_histograms(study)),
        ]
    have = {k.layer for k in store.find(RegionEmbedding, condition="clean")}
    layers = [name for name in store.layers() if name in have]
    last = layers[-1] if layers else None
    specs: list[tuple[str, Callable[[], Any]]] = [
        ("knowledge_curve", lambda: F.knowledge_curve(study, **tau)),
        ("sample_embedding", lambda: F.sample_embedding(study, **tau)),
        (f"embedding_{last}", lambda: F.embedding(study, layer=last, **tau)),
        ("layer_strip", lambda: F.layer_strip(study, **tau)),
        ("highlighted_regions", lambda: F.highlighted_regions(study, **tau)),
        ("forward_construction", lambda: F.forward_construction(study, **tau)),
        (f"ellipsoids_{last}", lambda: F.ellipsoids(study, layer=last)),
    ]
    if "adversarial" in store.conditions():
        specs += [
            ("attack_compare", lambda: F.compare(study, layer=last, **tau)),
            (
                "attack_highlighted",
                lambda: F.highlighted_regions(study, layers=[last], condition="adversarial", **tau),
            ),  # fmt: skip
            ("attack_deltas", lambda: F.attack_deltas(study)),
            ("attack_histogram", lambda: F.attack_histogram(study, **tau)),
            ("attack_trajectory_types", lambda: F.trajectory_types(study)),
        ]
    return specs


def write_figures(
    study: Any,
    out: str | Path,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 300,
    threshold: float = THRESHOLD,
    log: Callable[[str], None] = print,
) -> tuple[list[Path], list[str]]:
    """Write every figure ``study`` supports to ``out``; return (paths written, names skipped).

    A figure the study cannot support (say, no attack trace) is skipped with a logged reason.
    """
    from patternviz_widget import figures as F

    study = _data.as_study(study)
    out = Path(out)
    written, skipped = [], []
    for name, make in figure_specs(study, threshold):
        fig = _safe(make, name, log)
        if fig is None:
            skipped.append(name)
            continue
        for fmt in formats:
            written.append(F.save(fig, out / f"{name.replace('.', '_')}.{fmt}", dpi=dpi))
    log(
        f"[figures] wrote {len(written)} files to {out}"
        + (f"; skipped {skipped}" if skipped else "")
    )
    return written, skipped
