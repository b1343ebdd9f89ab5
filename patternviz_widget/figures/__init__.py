"""Publication figures from a study, with no browser: ``pv.figures.embedding(study, layer=...)``.

Every function returns a ``matplotlib.figure.Figure`` drawn with the widget's class colours,
glyphs and titles (``patternviz_widget._style``); :func:`save` writes PNG (``dpi``), SVG or PDF
(vector) by the path's suffix. ``source`` is a :class:`~patternviz_widget.Study`, a
:class:`~patternviz_widget.ResultStore` or the path of a saved study.

=========================  =====================================================  ===========
function                   shows                                                  PAPER.md
=========================  =====================================================  ===========
sample_embedding           g = M f of the probe images with class arrows μ_c      §2, §9.4
embedding                  regional embeddings h with the paper's glyphs          §3–4
layer_strip                one small embedding per layer                          §3
compare                    two views side by side (clean|adv, teacher|student)    §6–7
knowledge_curve            knowledge points per image vs epoch, per layer         §4, §9.12
highlighted_regions        knowledge-point cells outlined on probe images         §4, §9.11
forward_construction       one image's regions across layers, coloured by layer   §3, §9.13
ellipsoids                 per-class covariance ellipsoids over epochs            §3, §9.14
attack_deltas              Δ orientation / Δ strength per layer                   §6.3
attack_histogram           p(c_ori | h_clean) of adversarial-class KPs            §6.2
trajectory_types           regions' paths over attack iterations, Types 1–4       §6.4
distill_knowledge          KPs per layer, teacher vs students                     §7.1
distill_histograms         1 − cos and strength difference, students vs teacher   §7.2
=========================  =====================================================  ===========

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
