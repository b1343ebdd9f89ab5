"""patternviz-widget: watch discriminative visual patterns emerge inside image classifiers.

Implements Li, Wang, Zhang, *Visualizing the Emergence of Intermediate Visual Patterns in DNNs*
(NeurIPS 2021). ``import patternviz_widget as pv``; the widget (``pv.PatternViz``) is imported
lazily so the engine works without a built JavaScript bundle.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .errors import PatternVizError, StudyFileError
from .results import Key, ResultStore
from .study import Study

try:
    __version__ = version("patternviz-widget")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+local"

load = Study.load

_LAZY = {
    "PatternViz": ("patternviz_widget.widget.patternviz", "PatternViz"),
    "dashboard": ("patternviz_widget.widget.controls", "dashboard"),
    "embed_features": ("patternviz_widget.engine.method.embed", "embed_features"),
    "distill": ("patternviz_widget.engine.distill.train", "distill"),
    "datasets": ("patternviz_widget.datasets", None),
    "models": ("patternviz_widget.models", None),
    "figures": ("patternviz_widget.figures", None),
    "reproduce": ("patternviz_widget.reproduction", "reproduce"),
}

__all__ = [
    "Key",
    "PatternViz",
    "PatternVizError",
    "ResultStore",
    "Study",
    "StudyFileError",
    "__version__",
    "dashboard",
    "datasets",
    "distill",
    "embed_features",
    "figures",
    "load",
    "models",
    "reproduce",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'patternviz_widget' has no attribute {name!r}")
