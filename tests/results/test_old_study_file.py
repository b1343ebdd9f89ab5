"""A study file written by an earlier version of the package still loads, whole and unchanged.

``tests/fixtures/study_pre_move.pvz`` was written (by ``tests/fixtures/make_study_pre_move.py``)
before the engine was split into sub-packages: a SmallVGG trained on digits, two layers, a clean and
an FGSM condition, embedded with the fast preset. Its JSON holds the SHA-256 of every array as that
version read it back, and the knowledge points per image it computed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import patternviz_widget as pv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPECTED = json.loads((FIXTURES / "study_pre_move.json").read_text())


@pytest.fixture(scope="module")
def study():
    return pv.Study.load(FIXTURES / "study_pre_move.pvz")


def _digest(value: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def test_every_record_loads_with_the_same_arrays(study):
    found = {}
    for (key, kind), rec in study.store.items_with_kind():
        arrays = {
            name: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": _digest(v)}
            for name, v in vars(rec).items()
            if isinstance(v, np.ndarray)
        }
        found[f"{key}|{kind}"] = {"type": type(rec).__name__, "arrays": arrays}
    assert sorted(found) == sorted(EXPECTED["records"])
    for name, want in EXPECTED["records"].items():
        assert found[name] == want, name


def test_knowledge_points_are_what_the_old_version_counted(study):
    for layer, by_condition in EXPECTED["knowledge_points_per_image"].items():
        for condition, want in by_condition.items():
            got = study.knowledge_points(layer, condition=condition).per_image_total
            np.testing.assert_array_equal(np.asarray(got, dtype=float)[: len(want)], want)


def test_the_old_file_draws_in_the_widget_and_a_figure(study):
    w = pv.PatternViz(study)
    assert w.layer in EXPECTED["knowledge_points_per_image"]
    w.condition = "adversarial"  # the attacked condition is there to switch to
    fig = pv.figures.knowledge_curve(study)
    assert fig.axes and fig.axes[0].lines
