"""Export what a widget shows, with no browser: ``w.export("fig.pdf")`` -> :func:`export_view`.

The figure is drawn by :mod:`patternviz_widget.figures` from the widget's study and its view-state
traits (``model, condition, epoch, layer, feature_kind, threshold, mode, ellipsoids, compare,
compare_with, selection, probe_image, camera``), so it works whether or not the widget was ever
displayed, and shows the same key, glyphs, colours, class arrows, selection and camera angles as
the page. For the pixels of the live view itself use ``w.snapshot(path)``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from .. import figures
from .._validate import did_you_mean
from ..defaults import THRESHOLD
from ..errors import InputError, NotFittedError
from ..figures._common import FORMATS, camera_angles

#: Figure kinds :func:`export_view` draws (``kind=``); "view" is the one the widget's main view shows.
KINDS = (
    "view", "embedding", "sample_embedding", "layer_strip", "compare", "knowledge_curve",
    "highlighted_regions", "forward_construction", "ellipsoids",
)  # fmt: skip


def _study_of(widget: Any) -> Any:
    for name in ("_study", "study"):
        study = getattr(widget, name, None)
        if study is not None:
            return study
    raise NotFittedError("This widget has no study attached: make it with pv.PatternViz(study).")


def _ids(value: Any) -> np.ndarray:
    """The selection trait (uint32 bytes, or any integer sequence) as int64 ids."""
    if value is None:
        return np.zeros(0, np.int64)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), dtype=np.uint32).astype(np.int64)
    return np.asarray(value).reshape(-1).astype(np.int64)


def view_state(widget: Any) -> dict[str, Any]:
    """Return the widget's view state as keyword arguments of the figure functions.

    ``layer`` is None for the sample view (``feature_kind == "samples"``); ``selection`` holds the
    selected ids; ``elev``/``azim`` come from the widget's camera (its default when unset).
    """
    samples = getattr(widget, "feature_kind", "regions") == "samples"
    layer = getattr(widget, "layer", None) or None
    state: dict[str, Any] = {
        "layer": None if samples else layer,
        "epoch": getattr(widget, "epoch", None),
        "condition": getattr(widget, "condition", "clean") or "clean",
        "model": getattr(widget, "model", None) or None,
        "threshold": float(getattr(widget, "threshold", THRESHOLD)),
    }
    ids = _ids(getattr(widget, "selection", None))
    if ids.size:
        state["selection"] = ids
    state["elev"], state["azim"] = camera_angles(getattr(widget, "camera", None) or None)
    return state


def _forward_images(widget: Any, study: Any, state: dict[str, Any]) -> list[int]:
    """The images the widget's forward mode draws: those of the selected regions, else probe_image."""
    ids = state.get("selection")
    if ids is not None and state.get("layer"):
        from ..results import RegionRecord
        from ..results.query import resolve_key

        key = resolve_key(study.store, RegionRecord, state["layer"], state["epoch"], state["condition"],
                          state["model"])  # fmt: skip
        image = np.asarray(study.store.get(key, RegionRecord).image)
        ids = ids[ids < len(image)]
        if ids.size:
            return list(dict.fromkeys(int(i) for i in image[ids]))[:64]
    return [int(getattr(widget, "probe_image", 0))]


def _compare_right(widget: Any) -> dict[str, Any] | None:
    """The right-hand view of the widget's compare mode (one key field replaced), or None."""
    what = getattr(widget, "compare", "") or ""
    if not what:
        return None
    value = getattr(widget, "compare_with", "")
    if what == "epoch":
        return {"epoch": int(value)}
    if what in ("condition", "model"):
        return {what: str(value)}
    raise InputError(f"Unknown compare mode {what!r}: expected 'condition', 'model' or 'epoch'.")


def _call(fn: Any, **kwargs: Any) -> Any:
    """Call a figure function with the keyword arguments it accepts."""
    params = inspect.signature(fn).parameters
    return fn(**{k: v for k, v in kwargs.items() if k in params})


def export_view(widget: Any, path: str | Path | None = None, kind: str = "view", dpi: int = 300,
                **kwargs: Any) -> Any:  # fmt: skip
    """Draw the widget's current view as a matplotlib figure and write it to ``path``.

    Args:
        widget: a :class:`~patternviz_widget.PatternViz`, displayed or not.
        path: ``*.png`` / ``*.svg`` / ``*.pdf``; None returns the figure without writing.
        kind: "view" (what the main view shows: the embedding of the current key, the sample
            embedding, the compare pair or the forward construction) or one of :data:`KINDS`.
        dpi: pixels per inch of PNG output.
        **kwargs: overrides of the view state or figure options (``size=(w, h)``, ``title``, ...).

    Returns:
        The path written, or the Figure when ``path`` is None.

    Example:
        >>> w = pv.PatternViz(study, layer="features.8")   # doctest: +SKIP
        >>> w.export("view.pdf")                           # doctest: +SKIP
    """
    if kind not in KINDS:
        raise InputError(f"Unknown figure kind {kind!r}. {did_you_mean(kind, KINDS, 'kind')}")
    if path is not None:  # refuse an unknown format before any drawing
        suffix = Path(path).suffix.lower()
        if suffix not in FORMATS:
            raise InputError(
                f"Cannot tell the figure format of {str(path)!r} ({suffix or 'no suffix'}). Use one of "
                f"{', '.join(FORMATS)}: e.g. {Path(path).with_suffix('.pdf').name!r}."
            )
    study = _study_of(widget)
    state = view_state(widget)
    if kind == "view":
        right = _compare_right(widget)
        if state["layer"] is None:
            kind = "sample_embedding"
        elif getattr(widget, "mode", "embedding") == "forward":
            kind = "forward_construction"
            state.update(image=_forward_images(widget, study, state), regions="all")
            state.pop("selection", None)
        elif right is not None:
            kind = "compare"
            state.update(left={}, right=right)
        else:
            kind = "embedding"
            state["ellipsoids"] = bool(getattr(widget, "ellipsoids", False))
    state.update(kwargs)
    fig = _call(getattr(figures, kind), source=study, **state)
    if path is None:
        return fig
    return figures.save(fig, path, dpi=dpi)


def snapshot_view(widget: Any, path: str | Path, timeout: float = 10.0) -> Path:
    """Write the PNG the page draws for ``widget`` (``widget._request_snapshot``) to ``path``.

    Raises the widget's timeout error, naming the fix, when no displayed view answers within
    ``timeout`` seconds.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"A snapshot is a PNG of the page; use a .png path, got {str(path)!r}.")
    data = widget._request_snapshot(timeout=timeout)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
