"""Probe data: every accepted form reads as the same images in the same order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from patternviz_widget.engine.capture.data import as_probe_data, to_image_tensor
from patternviz_widget.errors import InputError


def _all(probe, bs=3):
    bs_ = list(probe.batches(bs))
    assert [b.start for b in bs_] == list(range(0, probe.n, bs))
    return torch.cat([b.images for b in bs_]), torch.cat([b.labels for b in bs_])


def test_image_layouts():
    x = np.arange(2 * 5 * 6 * 3, dtype=np.uint8).reshape(2, 5, 6, 3)  # channels-last uint8
    t = to_image_tensor(x, batched=True)
    assert t.shape == (2, 3, 5, 6) and t.dtype == torch.float32
    assert t[1, 2, 4, 5] == pytest.approx(x[1, 4, 5, 2] / 255)
    assert to_image_tensor(np.zeros((2, 5, 6)), batched=True).shape == (2, 1, 5, 6)
    assert to_image_tensor(torch.zeros(3, 7, 7), batched=False).shape == (3, 7, 7)
    assert (
        to_image_tensor(torch.full((1, 4, 4), -2.5), batched=False).min() == -2.5
    )  # floats kept as given
    with pytest.raises(InputError, match="N×C×H×W or N×H×W"):
        to_image_tensor(np.zeros((2, 3)), batched=True)


class _Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        for i in range(0, len(self.y), 4):
            yield self.x[i : i + 4], self.y[i : i + 4]


def test_every_form_yields_the_same_images_in_order():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(10, 1, 4, 4, generator=g), torch.arange(10) % 3
    forms = [
        (x, y),
        (x.numpy(), y.numpy()),
        TensorDataset(x, y),
        DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True),  # read in index order
        DataLoader(_Stream(x, y), batch_size=None),
        [(x[i], int(y[i])) for i in range(10)],
    ]
    for form in forms:
        probe = as_probe_data(form)
        assert probe.n == 10
        xs, ys = _all(probe)
        assert torch.equal(xs, x) and torch.equal(ys, y)
    probe = as_probe_data((x, y), max_images=7)
    assert probe.n == 7 and _all(probe)[0].shape[0] == 7


def test_masks_travel_with_the_images():
    x, y, m = torch.rand(4, 3, 5, 5), torch.tensor([0, 1, 0, 1]), torch.zeros(4, 5, 5)
    m[2, 1:3, 1:3] = 1
    for form in [(x, y, m), TensorDataset(x, y, m)]:
        masks = torch.cat([b.masks for b in as_probe_data(form).batches(3)])
        assert masks.dtype == torch.uint8 and masks.sum() == 4 and masks[2, 1, 1] == 1
