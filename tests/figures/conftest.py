"""Fixtures for figure tests: synthetic studies with known geometry and file inspectors."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figure_synth import make_store  # noqa: E402

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def study():
    """A study with clean and adversarial results over 3 epochs and 3 layers (no model)."""
    from patternviz_widget.figures._data import as_study

    return as_study(make_store(conditions=("clean", "adversarial")))


@pytest.fixture(scope="module")
def distill_study():
    """A study holding a teacher and a student (same probe data, same region rows)."""
    from patternviz_widget.figures._data import as_study

    return as_study(make_store(models=("teacher", "student"), epochs=(0, 1)))
