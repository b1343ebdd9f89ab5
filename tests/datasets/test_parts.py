"""Generated parts: deterministic, balanced, masks on the object's three parts, and classes that
low-level statistics cannot tell apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.lowlevel import lowlevel_features, object_hue_bins
from scipy import ndimage

import patternviz_widget as pv
from patternviz_widget.errors import InputError


@pytest.fixture(scope="module")
def ds():
    return pv.datasets.parts(n=240, size=48, seed=7)


def test_layout_balance_and_names(ds):
    assert tuple(ds.images.shape) == (240, 3, 48, 48) and ds.images.dtype == torch.float32
    assert tuple(ds.masks.shape) == (240, 48, 48) and ds.masks.dtype == torch.uint8
    assert float(ds.images.min()) >= 0 and float(ds.images.max()) <= 1
    assert np.array_equal(np.bincount(ds.labels.numpy()), np.full(6, 40))  # 240 = 40 runs of 6
    counts = np.bincount(pv.datasets.parts(n=100, num_classes=4).labels.numpy())
    assert len(counts) == 4 and counts.max() - counts.min() <= 1
    assert (
        ds.class_names
        == list(pv.datasets.PART_NAMES)
        == ["tee", "corner", "cross", "rails", "hat", "elbow"]
    )
    image, label, mask = ds[5]
    assert image.shape == (3, 48, 48) and mask.shape == (48, 48) and label == int(ds.labels[5])


def test_deterministic_from_the_seed_and_stable_prefixes():
    a = pv.datasets.parts(n=1200, size=32, seed=3)
    b = pv.datasets.parts(n=30, size=32, seed=3)
    c = pv.datasets.parts(n=30, size=32, seed=4)
    assert torch.equal(a.images[:30], b.images) and torch.equal(a.masks[:30], b.masks)
    assert torch.equal(a.labels[:30], b.labels)
    assert not torch.equal(b.images, c.images)
    assert torch.equal(pv.datasets.parts(n=30, size=32, seed=3).images, b.images)
    assert not torch.equal(pv.datasets.shapes(n=30, size=32, seed=3).images, b.images)


# connected parts of the mask per class: the bars touch in tee, corner, cross, hat and elbow
# (one piece) and the dot stands apart; in rails all three stand apart
PIECES = {"tee": 2, "corner": 2, "cross": 2, "rails": 3, "hat": 2, "elbow": 2}


def test_masks_cover_the_three_parts(ds):
    masks = ds.masks.numpy().astype(bool)
    names = ds.class_names
    area = masks.mean(axis=(1, 2))
    assert area.min() > 0.01 and area.max() < 0.12  # three thin parts, never the whole image
    # every class has the same parts, so the same area (within the overlaps where bars touch)
    per_class = np.array([area[ds.labels.numpy() == c].mean() for c in range(6)])
    assert per_class.max() / per_class.min() < 1.25
    # the mask is the parts: as many pieces as the arrangement has, in one flat colour
    pieces = [ndimage.label(m)[1] for m in masks]
    right = [p == PIECES[names[y]] for p, y in zip(pieces, ds.labels.numpy())]
    assert np.mean(right) >= 0.9
    # the parts are painted brighter than the background (value 0.75-1 against 0.25-0.7)
    images = ds.images.numpy().max(axis=1)
    brighter = [x[m].mean() > x[~m].mean() + 0.1 for x, m in zip(images, masks)]
    assert np.mean(brighter) >= 0.95


def test_masks_follow_the_arrangement(ds):
    """In "cross" the bars meet at their middles, so the mask's centre of mass lies on the bars;
    in "rails" it lies between them, on the dot (at 48 px the dot is 4-5 px wide)."""
    masks = ds.masks.numpy().astype(bool)
    labels = ds.labels.numpy()
    for cls in ("cross", "rails", "corner"):
        idx = np.flatnonzero(labels == ds.class_names.index(cls))[:20]
        hits = []
        for i in idx:
            ys, xs = np.nonzero(masks[i])
            hits.append(masks[i, int(ys.mean()), int(xs.mean())])
        # corner: the centre of mass is inside the L, between bars and dot: mostly background
        assert np.mean(hits) >= 0.8 if cls != "corner" else np.mean(hits) <= 0.3


def test_low_level_statistics_do_not_tell_the_class():
    """A linear classifier on colour histograms and per-pixel statistics stays near chance on the
    class, while the same features do see the object's colour (so they are not blind)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = pv.datasets.parts(n=1800, seed=0), pv.datasets.parts(n=600, seed=1)
    f_train, f_test = (
        lowlevel_features(train.images.numpy()),
        lowlevel_features(test.images.numpy()),
    )

    def accuracy(y_train, y_test):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        return clf.fit(f_train, y_train).score(f_test, y_test)

    assert accuracy(train.labels.numpy(), test.labels.numpy()) < 1 / 6 + 0.06
    assert accuracy(object_hue_bins(train), object_hue_bins(test)) > 0.6  # 3 hue bins: chance 1/3


def test_bad_arguments():
    with pytest.raises(InputError, match="num_classes must be an integer from 2 to 6"):
        pv.datasets.parts(n=10, num_classes=7)
    with pytest.raises(InputError, match="size must be >= 32"):
        pv.datasets.parts(n=10, size=16)
    with pytest.raises(InputError, match="size must be from 32 to 64"):
        pv.datasets.parts(n=10, size=96)
