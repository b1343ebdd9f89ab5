"""Publication figures from a study, with no browser: ``pv.figures.embedding(study, layer=...)``.

Every function returns a ``matplotlib.figure.Figure`` drawn with the widget's class colours,
glyphs and titles (``patternviz_widget._style``); :func:`save` writes PNG (``dpi``), SVG or PDF
(vector) by the path's suffix. ``source`` is a :class:`~patternviz_widget.Study`, a
:class:`~patternviz_widget.ResultStore` or the path of a saved study.

| function | shows | in the paper |
|---|---|---|
| `sample_embedding` | g = M f of the probe images with class arrows μ_c | Sec. 3.2 |
| `embedding` | regional embeddings h with the paper's glyphs | Sec. 3.3–3.4 |
| `layer_strip` | one small embedding per layer | Sec. 3.3 |
| `compare` | two views side by side (clean vs adversarial, teacher vs student) | experiments |
| `knowledge_curve` | knowledge points per image vs epoch, per layer | Sec. 3.4 |
| `highlighted_regions` | knowledge-point cells outlined on probe images | Sec. 3.4 |
| `forward_construction` | one image's regions across layers, coloured by layer | Sec. 3.3 |
| `ellipsoids` | per-class covariance ellipsoids over epochs | Sec. 3.3 |
| `attack_deltas` | Δ orientation / Δ strength per layer | attack experiment |
| `attack_histogram` | p(c_ori ∣ h_clean) of adversarial-class KPs | attack experiment |
| `trajectory_types` | regions' paths over attack iterations, Types 1–4 | attack experiment |
| `distill_knowledge` | KPs per layer, teacher vs students | distillation experiment |
| `distill_histograms` | 1 − cos and strength difference, students vs teacher | distillation experiment |

Example:
    >>> import patternviz_widget as pv                                # doctest: +SKIP
    >>> fig = pv.figures.embedding(study, layer="features.8")         # doctest: +SKIP
    >>> pv.figures.save(fig, "embedding.pdf")                         # doctest: +SKIP
"""

from __future__ import annotations

from ._common import FORMATS, STYLE, save
from .attack import attack_deltas, attack_histogram, trajectory_types
from .distill import distill_histograms, distill_knowledge
from .emergence import ellipsoids, forward_construction
from .knowledge import format_table, highlighted_regions, knowledge_curve, knowledge_table
from .scatter3d import compare, embedding, layer_strip, sample_embedding

__all__ = [
    "FORMATS",
    "STYLE",
    "attack_deltas",
    "attack_histogram",
    "compare",
    "distill_histograms",
    "distill_knowledge",
    "ellipsoids",
    "embedding",
    "format_table",
    "forward_construction",
    "highlighted_regions",
    "knowledge_curve",
    "knowledge_table",
    "layer_strip",
    "sample_embedding",
    "save",
    "trajectory_types",
]
