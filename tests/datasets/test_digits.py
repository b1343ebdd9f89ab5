"""Bundled digits: sizes, split, range, and the same pixels as scikit-learn's originals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import patternviz_widget as pv
from patternviz_widget.errors import InputError


def test_split_sizes_classes_and_range():
    train, test, every = (pv.datasets.digits(s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(every)) == (1347, 450, 1797)
    assert tuple(train.images.shape[1:]) == (1, 32, 32) and train.images.dtype == torch.float32
    assert train.masks is None and train.class_names == [str(i) for i in range(10)]
    assert float(every.images.min()) >= 0 and float(every.images.max()) <= 1
    # stratified: every class in both parts, about a quarter held out
    counts_test = np.bincount(test.labels.numpy(), minlength=10)
    counts_all = np.bincount(every.labels.numpy(), minlength=10)
    assert np.all(np.abs(counts_test - counts_all / 4) <= 1)
    # train and test are disjoint and together are the whole set
    key = lambda ds: {tuple(np.round(x.numpy().ravel(), 4)) for x in ds.images}  # noqa: E731
    assert not key(train) & key(test) and len(key(train) | key(test)) == len(key(every))
    image, label = train[0]
    assert image.shape == (1, 32, 32) and isinstance(label, int)


def test_pixels_are_the_resized_originals_and_the_seed_moves_the_split():
    from sklearn.datasets import load_digits

    raw = load_digits()
    ds = pv.datasets.digits("all", size=16)
    ref = F.interpolate(
        torch.from_numpy(raw.images[:3]).float().unsqueeze(1) / 16, size=(16, 16), mode="bilinear"
    )
    assert (
        torch.allclose(ds.images[:3], ref.clamp(0, 1))
        and ds.labels[:3].tolist() == raw.target[:3].tolist()
    )
    a, b = pv.datasets.digits("test", seed=0), pv.datasets.digits("test", seed=1)
    assert not torch.equal(a.images, b.images)
    assert torch.equal(a.images, pv.datasets.digits("test", seed=0).images)
    with pytest.raises(InputError, match="Unknown split 'val'"):
        pv.datasets.digits("val")


def test_read_without_importing_scikit_learn_and_equal_to_load_digits():
    """The digits come from scikit-learn's bundled file without importing scikit-learn (about a
    second of the quickstart's first cell), every image and label as load_digits() gives them."""
    import subprocess
    import sys

    code = (
        "import sys, patternviz_widget as pv; pv.datasets.digits('test');"
        " print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    from sklearn.datasets import load_digits

    from patternviz_widget.datasets.sklearn_digits import _digits_arrays

    raw = load_digits()
    images, target = _digits_arrays()
    assert images.shape == (1797, 8, 8) and np.array_equal(images, raw.images)
    assert np.array_equal(target, raw.target)
