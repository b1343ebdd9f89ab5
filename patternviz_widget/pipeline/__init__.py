"""The pipeline: orchestrates capture, embedding, attacks, comparisons and tracking over a study's
state (model, probe, configuration, result store), calling the engine with explicit arguments.

A :class:`~patternviz_widget.study.Study` is the facade over it; the engine never imports this
package.
"""
