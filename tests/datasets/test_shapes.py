"""Generated shapes: deterministic, balanced, cluttered, and masks that cover exactly the shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import patternviz_widget as pv
from patternviz_widget.errors import InputError


@pytest.fixture(scope="module")
def ds():
    return pv.datasets.shapes(n=240, size=48, num_classes=8, seed=7)


def test_layout_balance_and_names(ds):
    assert tuple(ds.images.shape) == (240, 3, 48, 48) and ds.images.dtype == torch.float32
    assert tuple(ds.masks.shape) == (240, 48, 48) and ds.masks.dtype == torch.uint8
    assert float(ds.images.min()) >= 0 and float(ds.images.max()) <= 1
    assert np.array_equal(np.bincount(ds.labels.numpy()), np.full(8, 30))  # 240 = 30 runs of 8
    counts = np.bincount(pv.datasets.shapes(n=100, size=16, num_classes=6).labels.numpy())
    assert counts.max() - counts.min() <= 1
    assert ds.class_names == list(pv.datasets.SHAPE_NAMES)
    image, label, mask = ds[5]
    assert image.shape == (3, 48, 48) and mask.shape == (48, 48) and label == int(ds.labels[5])


def test_deterministic_from_the_seed_and_stable_prefixes():
    a = pv.datasets.shapes(n=1200, size=24, seed=3)
    b = pv.datasets.shapes(n=30, size=24, seed=3)
    c = pv.datasets.shapes(n=30, size=24, seed=4)
    assert torch.equal(a.images[:30], b.images) and torch.equal(a.masks[:30], b.masks)
    assert torch.equal(a.labels[:30], b.labels)
    assert not torch.equal(b.images, c.images)
    assert torch.equal(pv.datasets.shapes(n=30, size=24, seed=3).images, b.images)


def test_masks_mark_the_shape(ds):
    masks = ds.masks.numpy().astype(bool)
    area = masks.mean(axis=(1, 2))
    assert area.min() > 0.01 and area.max() < 0.5  # one shape, never the whole image
    # the shape is one flat colour (+ light shading and noise); the background is cluttered
    inside, outside = [], []
    for x, m in zip(ds.images.numpy(), masks):
        inside.append(x[:, m].std(axis=1).mean())
        outside.append(x[:, ~m].std(axis=1).mean())
    assert np.median(inside) < 0.5 * np.median(outside)
    # rings have a hole at their centre, circles do not
    names = ds.class_names
    for cls, centre_on in (("ring", False), ("circle", True)):
        for i in np.flatnonzero(ds.labels.numpy() == names.index(cls))[:10]:
            ys, xs = np.nonzero(masks[i])
            cy, cx = int(round(ys.mean() - 0.5)), int(round(xs.mean() - 0.5))
            assert masks[i, cy, cx] == centre_on


def test_shape_colour_is_not_the_class(ds):
    hue = []
    for x, m in zip(ds.images.numpy(), ds.masks.numpy().astype(bool)):
        hue.append(x[:, m].mean(axis=1))
    hue = np.array(hue)
    labels = ds.labels.numpy()
    # every class shows a wide range of colours
    for c in range(8):
        assert np.ptp(hue[labels == c], axis=0).max() > 0.5


def test_bad_arguments():
    with pytest.raises(InputError, match="num_classes must be an integer from 5 to 8"):
        pv.datasets.shapes(n=10, num_classes=3)
    with pytest.raises(InputError, match="size must be >= 16"):
        pv.datasets.shapes(n=10, size=8)
