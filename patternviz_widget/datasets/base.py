"""ImageDataset: images, labels, optional foreground masks and class names in memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError


class ImageDataset(Dataset):
    """A labelled image set held in memory.

    Attributes:
        images: float32 tensor N×C×H×W with values in [0, 1].
        labels: int64 tensor N.
        masks: uint8 tensor N×H×W (1 = object pixel), or None.
        class_names: K strings.
        name: a short description ("digits/train", "shapes", ...).

    ``ds[i]`` returns ``(image, label)`` or ``(image, label, mask)`` when masks exist, which is
    what :class:`~patternviz_widget.Study` and :func:`~patternviz_widget.models.train` read.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        class_names: Sequence[str],
        masks: torch.Tensor | None = None,
        name: str = "",
    ) -> None:
        if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise InputError(
                f"images must be N×C×H×W and labels N; got {tuple(images.shape)} and {tuple(labels.shape)}."
            )
        if masks is not None and tuple(masks.shape) != (images.shape[0], *images.shape[2:]):
            raise InputError(f"masks must be N×H×W matching the images; got {tuple(masks.shape)}.")
        self.images = images
        self.labels = labels
        self.masks = masks
        self.class_names = list(class_names)
        self.name = name

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        if self.masks is None:
            return self.images[i], int(self.labels[i])
        return self.images[i], int(self.labels[i]), self.masks[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(
        self, indices: Sequence[int] | np.ndarray | torch.Tensor, name: str | None = None
    ) -> ImageDataset:
        """Return a new ImageDataset with the items at ``indices`` (in that order)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageDataset(
            self.images[idx],
            self.labels[idx],
            self.class_names,
            None if self.masks is None else self.masks[idx],
            name or self.name,
        )

    def split(
        self, test_fraction: float = 0.25, seed: int = 0
    ) -> tuple[ImageDataset, ImageDataset]:
        """Return (train, test): a seeded split stratified by class."""
        if not 0.0 < test_fraction < 1.0:
            raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
        rng = np.random.default_rng(seed)
        labels = self.labels.numpy()
        test = []
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            test.extend(idx[: int(round(len(idx) * test_fraction))].tolist())
        is_test = np.zeros(len(labels), bool)
        is_test[test] = True
        return (
            self.subset(np.flatnonzero(~is_test), f"{self.name}/train"),
            self.subset(np.flatnonzero(is_test), f"{self.name}/test"),
        )

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        masks = ", masks" if self.masks is not None else ""
        return f"ImageDataset({self.name!r}, n={len(self)}, {c}×{h}×{w}, classes={self.num_classes}{masks})"
