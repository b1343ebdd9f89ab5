"""The kernel-side engine: pure torch/numpy. Never imports anywidget, ipywidgets, bqplot or traitlets."""
