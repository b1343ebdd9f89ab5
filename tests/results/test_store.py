"""ResultStore: keyed records, queries, observers and the catalog the widget reads."""

from __future__ import annotations

import numpy as np
import pytest

from patternviz_widget.errors import NotFittedError
from patternviz_widget.results import SAMPLE, Key, RegionRecord, ResultStore, SampleRecord


def _region(m=4, c=2):
    return RegionRecord(
        np.zeros((m, c), np.float32),
        np.zeros(m, np.int32),
        np.zeros((m, 2), np.int16),
        np.zeros((m, 4), np.float32),
        (2, 2),
    )


def test_put_get_find_and_axes():
    s = ResultStore()
    s.meta["layers"] = ["b", "a"]
    seen = []
    unsubscribe = s.observe(seen.append)
    s.put(Key(epoch=1), SampleRecord(np.zeros((3, 5), np.float32), np.zeros((3, 2), np.float32)))
    s.put(Key(epoch=1, layer="a"), _region())
    s.put(Key(epoch=0, layer="b", condition="adversarial", model="student"), _region(6))
    unsubscribe()
    s.put(Key(epoch=2, layer="z"), _region())
    assert seen == [Key(epoch=1), Key(epoch=1, layer="a"), Key("student", "adversarial", 0, "b")]
    assert s.has(Key(epoch=1), SampleRecord) and not s.has(Key(epoch=1), RegionRecord)
    assert s.get(Key(epoch=1, layer="a"), RegionRecord).features.shape == (4, 2)
    assert s.find(RegionRecord, epoch=1) == [Key(epoch=1, layer="a")]
    assert s.models() == ["main", "student"] and s.conditions() == ["adversarial", "clean"]
    assert s.epochs() == [0, 1, 2] and s.epochs(model="student") == [0]
    assert s.layers() == ["b", "a", "z"]  # capture order from meta first
    cat = s.catalog()
    assert cat["entries"][str(Key(epoch=1))] == {"SampleRecord": 3}
    assert cat["entries"]["student|adversarial|0|b"] == {"RegionRecord": 6}
    s.drop(Key(epoch=2, layer="z"))
    assert len(s) == 3 and Key(epoch=1).layer == SAMPLE


def test_missing_record_names_what_exists():
    s = ResultStore()
    with pytest.raises(NotFittedError, match="Run the step that makes it first"):
        s.get(Key(), SampleRecord)
    s.put(Key(epoch=3), SampleRecord(np.zeros((1, 1), np.float32), np.zeros((1, 2), np.float32)))
    with pytest.raises(NotFittedError, match=r"Closest: 'main\|clean\|3\|<sample>'"):
        s.get(Key(epoch=4), SampleRecord)
