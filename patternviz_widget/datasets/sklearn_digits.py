"""scikit-learn's bundled handwritten digits (1,797 images, 10 classes), resized for CNNs. No download."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._validate import check_choice, check_positive_int
from .base import ImageDataset


def digits(
    split: str = "train", size: int = 32, seed: int = 0, test_fraction: float = 0.25
) -> ImageDataset:
    """Return the digits as an :class:`ImageDataset` of 1-channel ``size×size`` float32 images in [0, 1].

    The 8×8 originals (grey levels 0..16) are divided by 16 and resized bilinearly. Masks are None.

    Args:
        split: "train", "test" or "all"; train/test is a seeded split stratified by class.
        size: output side length in pixels (32 suits the bundled CNNs).
        seed: seeds the train/test split.
        test_fraction: share of each class held out for "test" (default 0.25: 1,347 / 450 images).

    Example:
        >>> import patternviz_widget as pv
        >>> test = pv.datasets.digits("test")
        >>> len(test), tuple(test.images.shape[1:])
        (450, (1, 32, 32))
    """
    check_choice(split, ["train", "test", "all"], "split")
    size = check_positive_int(size, "size", minimum=8)
    images, target = _digits_arrays()
    x = torch.from_numpy(images).float().div_(16.0).unsqueeze(1)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(
            0.0, 1.0
        )
    y = torch.from_numpy(target).long()
    ds = ImageDataset(x.contiguous(), y, [str(i) for i in range(10)], name="digits")
    if split == "all":
        return ds
    train, test = ds.split(test_fraction, seed)
    return train if split == "train" else test


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 images (float64, 0..16) and labels of ``sklearn.datasets.load_digits()``, read
    from the file scikit-learn bundles without importing scikit-learn (about 1 s of a
    notebook's first cell that nothing else in it needs); ``load_digits`` where the file is not
    where scikit-learn keeps it."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            data = np.loadtxt(path, delimiter=",")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    from sklearn.datasets import load_digits

    raw = load_digits()
    return raw.images, raw.target
