"""The widget stack: everything that imports traitlets, anywidget, ipywidgets or bqplot.

- :mod:`.patternviz`: :class:`PatternViz`, the anywidget (traits and the few methods that delegate).
- :mod:`.view_state`: the view-state checks and defaults, the knowledge-point summary, the
  selection table.
- :mod:`.payload`: store records -> the columns the page draws (catalog, point slices, atlas).
- :mod:`.rpc` and :mod:`.wire`: the request/reply protocol with the page and its array format.
- :mod:`.snapshot`: asking the page for a PNG of what it shows.
- :mod:`.export`: a widget's view as a matplotlib figure (through :mod:`patternviz_widget.figures`).
- :mod:`.controls`: ``pv.dashboard``, the widget with kernel-side sliders and bqplot charts.

The page itself is ``js/``, built into ``patternviz_widget/static/``.
"""

from .patternviz import PatternViz

__all__ = ["PatternViz"]
