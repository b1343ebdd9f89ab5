"""results.query: the readings the widget and the figures share (one key resolution, one error)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "figures"))
from figure_synth import make_store  # noqa: E402

from patternviz_widget.defaults import TEMPERATURE  # noqa: E402
from patternviz_widget.engine.method.metrics import softmax_t  # noqa: E402
from patternviz_widget.errors import (  # noqa: E402
    InputError,
    NotFittedError,
    ResultNotFoundError,
)
from patternviz_widget.results import (  # noqa: E402
    SAMPLE,
    Key,
    RegionEmbedding,
    RegionRecord,
    ResultStore,
    SampleEmbedding,
    SampleRecord,
    query,  # noqa: E402
)

LAST = "features.9"


@pytest.fixture(scope="module")
def store() -> ResultStore:
    return make_store(conditions=("clean", "adversarial"))


def test_resolve_key_fills_the_defaults(store):
    assert query.resolve_key(store, RegionEmbedding, LAST) == Key("main", "clean", 2, LAST)
    assert query.resolve_key(store, SampleEmbedding, "samples", epoch=1) == Key(
        "main", "clean", 1, SAMPLE
    )
    assert query.resolve_key(store, RegionRecord, LAST, 0, "adversarial").condition == "adversarial"


def test_a_missing_epoch_is_one_error_that_lists_the_epochs_and_names_the_fix(store):
    with pytest.raises(
        ResultNotFoundError, match=r"Epochs available: \[0, 1, 2\]\. Capture it first"
    ) as e:
        query.resolve_key(store, RegionEmbedding, LAST, epoch=7)
    assert isinstance(e.value, InputError) and isinstance(e.value, NotFittedError)
    partly = make_store()
    partly.drop(Key("main", "clean", 1, LAST), RegionEmbedding)
    with pytest.raises(
        ResultNotFoundError, match=r"Epochs available: \[0, 2\]\. Run study\.embed\(\)"
    ):
        query.resolve_key(partly, RegionEmbedding, LAST, epoch=1)


def test_unknown_names_list_the_closest(store):
    with pytest.raises(InputError, match=r"Unknown layer 'features\.99'.*'features\.9'"):
        query.resolve_key(store, RegionEmbedding, "features.99")
    with pytest.raises(InputError, match=r"Unknown condition 'adverserial'.*'adversarial'"):
        query.resolve_key(store, RegionEmbedding, LAST, condition="adverserial")
    with pytest.raises(NotFittedError, match=r"Run study\.embed\(\) first"):
        query.resolve_key(ResultStore(), RegionEmbedding, LAST)


def test_sample_rule_is_softmax_over_t_against_tau(store):
    key = Key("main", "clean", 2, SAMPLE)
    logits = store.get(key, SampleRecord).logits
    p = softmax_t(logits, TEMPERATURE)
    f = query.sample_knowledge(store, key, threshold=0.5)
    np.testing.assert_allclose(f["posterior"], p, rtol=1e-6)
    np.testing.assert_array_equal(f["is_kp"], p.max(1) >= 0.5)
    labels = store.probe.labels
    np.testing.assert_array_equal(f["is_reliable"], f["is_kp"] & (p.argmax(1) == labels))


def test_mu_and_class_names(store):
    adv = Key("main", "adversarial", 2, LAST)
    np.testing.assert_array_equal(
        query.mu_for(store, adv), store.get(adv.replace(layer=SAMPLE), SampleEmbedding).mu
    )
    assert query.mu_for(ResultStore(), adv, required=False) is None
    assert query.class_names(store) == [str(c) for c in store.probe.class_names]
    bare = ResultStore()
    bare.meta["num_classes"] = 3
    assert query.class_names(bare) == ["0", "1", "2"]
