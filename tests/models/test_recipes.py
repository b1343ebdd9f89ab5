"""The bundled recipes train the bundled CNNs to the accuracy they promise, and on the parts data
the class is in the arrangement: the CNN learns it, a linear classifier on low-level statistics does
not. Each recipe is trained once per module (times are in the benchmark, never asserted here)."""

from __future__ import annotations

import pytest
import torch

import patternviz_widget as pv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    runs: dict[str, pv.models.TrainedRecipe] = {}

    def get(name: str) -> pv.models.TrainedRecipe:
        if name not in runs:
            runs[name] = pv.models.train_recipe(name, seed=0, device="cpu")
        return runs[name]

    return get


@pytest.mark.parametrize("name", ["digits", "shapes", "parts"])
def test_recipe_reaches_its_accuracy(trained, name):
    before = torch.get_num_threads()
    run = trained(name)
    assert torch.get_num_threads() == before
    assert run.test_accuracy >= run.recipe.min_accuracy, run.history["test_accuracy"]
    assert run.threads == 1  # small convolutions: one thread (see pv.models.auto_threads)
    assert not run.model.training
    assert pv.models.evaluate(run.model, run.test_data) == pytest.approx(run.test_accuracy)
    assert run.history["steps"][-1] == run.recipe.train["epochs"] * -(-len(run.train_data) // 64)


def test_parts_class_lives_in_the_arrangement(trained):
    """The recipe CNN tells the arrangements apart; a linear classifier on colour histograms and
    per-pixel statistics of the same images stays near chance (1/6)."""
    from helpers.lowlevel import lowlevel_features
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    run = trained("parts")
    train, test = run.train_data.subset(range(3000)), run.test_data
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(lowlevel_features(train.images.numpy()), train.labels.numpy())
    linear = clf.score(lowlevel_features(test.images.numpy()), test.labels.numpy())
    assert linear < 1 / 6 + 0.05
    assert run.test_accuracy >= run.recipe.min_accuracy and run.test_accuracy > linear + 0.6
