"""The study's probe data: the user's images read in a fixed order, one batch at a time.

Accepted forms (checked at the door by :func:`as_probe_data`):

* a map-style ``torch.utils.data.Dataset`` whose items are ``(image, label)`` or
  ``(image, label, mask)``;
* a ``DataLoader``: read through its ``dataset`` in index order (its sampler and shuffling are
  ignored, so every capture sees the same images in the same order); a loader over an iterable-style
  dataset is iterated as is and must yield the same images in the same order every time (it is
  read no further than ``max_images``; an endless stream needs that cap);
* an ``(images, labels)`` or ``(images, labels, masks)`` tuple of tensors or numpy arrays.

Image layouts: ``N×C×H×W`` (channels first, the PyTorch convention) or ``N×H×W`` (one channel).
A 4-D array whose last axis has 1 to 4 entries while its second axis does not is read as
channels-last ``N×H×W×C`` and transposed. ``uint8`` images are scaled to [0, 1]; every other dtype
is cast to float32 unchanged (normalise them the way your model expects). A single item of a
Dataset follows the same rules without the N axis. Masks are ``H×W`` per image, non-zero = object.

Nothing here copies the whole data set: :meth:`ProbeData.batches` reads one batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from patternviz_widget.errors import InputError


def to_image_tensor(x: Any, batched: bool) -> torch.Tensor:
    """Return ``x`` as a float32 channels-first tensor (``N×C×H×W`` if ``batched`` else ``C×H×W``)."""
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise InputError("Images must be numeric arrays, got dtype=object.")
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:  # PIL images and nested lists
            t = torch.from_numpy(np.asarray(x))
        except (TypeError, ValueError) as e:
            raise InputError(f"Cannot read an image of type {type(x).__name__}.") from e
    spatial = t.ndim - (1 if batched else 0)
    if spatial == 2:  # H×W: one channel
        t = t.unsqueeze(1 if batched else 0)
    elif spatial == 3:
        c_axis, last = (1, 3) if batched else (0, 2)
        if t.shape[last] in (1, 2, 3, 4) and t.shape[c_axis] not in (1, 2, 3, 4):
            t = t.movedim(last, c_axis)  # channels-last -> channels-first
    else:
        want = "N×C×H×W or N×H×W" if batched else "C×H×W or H×W"
        raise InputError(f"Images must be {want}; got shape {tuple(t.shape)}.")
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    if t.dtype == torch.bool or t.is_complex():
        raise InputError(f"Images must be real numbers, got dtype {t.dtype}.")
    return t.float()


def to_labels(y: Any) -> torch.Tensor:
    """Return labels as an int64 tensor; raise if they are not whole numbers."""
    if not isinstance(y, torch.Tensor):
        y = np.asarray(y)
        flat = y.reshape(-1)
        if y.dtype.kind in "US" or (
            y.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in flat)
        ):
            shown = ", ".join(repr(v) for v in dict.fromkeys(flat[:50].tolist()))
            raise InputError(
                f"Labels must be integer class indices 0..K-1, got text ({shown[:120]}). Map them "
                "to indices, e.g. names = sorted(set(labels)); labels = [names.index(v) for v in "
                "labels], and pass class_names=names to pv.Study."
            )
    t = torch.as_tensor(y if not isinstance(y, torch.Tensor) else y.detach().cpu())
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise InputError("Labels must be whole class indices 0..K-1, got fractional values.")
    elif t.dtype == torch.bool or t.is_complex():
        raise InputError(f"Labels must be integer class indices, got dtype {t.dtype}.")
    return t.reshape(-1).long()


def to_mask(m: Any, batched: bool) -> torch.Tensor:
    """Return foreground masks as uint8 0/1 (``N×H×W`` or ``H×W``)."""
    t = torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m.detach().cpu())
    want = 3 if batched else 2
    if t.ndim == want + 1 and t.shape[1 if batched else 0] == 1:
        t = t.squeeze(1 if batched else 0)
    if t.ndim != want:
        raise InputError(
            f"Masks must be {'N×H×W' if batched else 'H×W'}; got shape {tuple(t.shape)}."
        )
    return (t != 0).to(torch.uint8)


@dataclass
class Batch:
    """One batch of probe images: ``start`` is the index of its first image in the probe set."""

    start: int
    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None


class ProbeData:
    """The study's fixed probe images, read one batch at a time in the same order every time.

    ``source`` is what the user passed; ``n`` the number of images (the first ``n`` of the data).
    """

    def __init__(self, source: Any, n: int, kind: str) -> None:
        self.source = source
        self.n = n
        self.kind = kind  # "tensors" | "dataset" | "iterable"

    def __len__(self) -> int:
        return self.n

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield :class:`Batch` objects (CPU tensors) covering images ``0..n-1`` in order."""
        if self.kind == "tensors":
            images, labels, masks = self.source
            for s in range(0, self.n, batch_size):
                e = min(s + batch_size, self.n)
                yield Batch(
                    s,
                    to_image_tensor(images[s:e], batched=True),
                    to_labels(labels[s:e]),
                    None if masks is None else to_mask(masks[s:e], batched=True),
                )
        elif self.kind == "dataset":
            for s in range(0, self.n, batch_size):
                yield _stack_items(
                    s, [self.source[i] for i in range(s, min(s + batch_size, self.n))]
                )
        else:
            yield from _iterate_loader(self.source, self.n, batch_size)


def _split_item(item: Any) -> tuple[Any, Any, Any]:
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        got = type(item).__name__ + (
            f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""
        )
        raise InputError(
            f"Each data item must be (image, label) or (image, label, mask); got a {got}. "
            "Wrap your dataset so __getitem__ returns such a tuple."
        )
    return item[0], item[1], item[2] if len(item) == 3 else None


def _one_label(y: Any, index: int) -> int:
    t = to_labels(y)
    if t.numel() != 1:
        raise InputError(
            f"Item {index} has a label of {t.numel()} values; each item needs one class index "
            "(use label.argmax() for one-hot labels)."
        )
    return int(t[0])


def _stack_items(start: int, items: list[Any]) -> Batch:
    parts = [_split_item(it) for it in items]
    try:
        images = torch.stack([to_image_tensor(p[0], batched=False) for p in parts])
    except RuntimeError as e:
        raise InputError(
            f"Images near index {start} differ in size; resize them to one size. ({e})"
        ) from e
    labels = to_labels([_one_label(p[1], start + i) for i, p in enumerate(parts)])
    masks = None
    if parts[0][2] is not None:
        masks = torch.stack([to_mask(p[2], batched=False) for p in parts])
    return Batch(start, images, labels, masks)


def _iterate_loader(loader: Any, n: int, batch_size: int) -> Iterator[Batch]:
    """Re-batch whatever an iterable loader yields into batches of ``batch_size`` (first n images)."""
    pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
    have = done = 0

    def flush(count: int) -> Batch:
        nonlocal pending, have, done
        xs = torch.cat([p[0] for p in pending])
        ys = torch.cat([p[1] for p in pending])
        ms = None if pending[0][2] is None else torch.cat([p[2] for p in pending])  # type: ignore[misc]
        out = Batch(done, xs[:count], ys[:count], None if ms is None else ms[:count])
        rest = (xs[count:], ys[count:], None if ms is None else ms[count:])
        pending = [rest] if rest[0].shape[0] else []
        have -= count
        done += count
        return out

    for item in loader:
        x, y, m = _split_item(item)
        xb = to_image_tensor(x, batched=True)
        pending.append((xb, to_labels(y), None if m is None else to_mask(m, batched=True)))
        have += xb.shape[0]
        while have >= batch_size and done + batch_size <= n:
            yield flush(batch_size)
        if done + have >= n:
            break
    while have > 0 and done < n:
        yield flush(min(batch_size, have, n - done))


def as_probe_data(data: Any, max_images: int | None = None) -> ProbeData:
    """Return a :class:`ProbeData` over the first ``max_images`` images of ``data`` (all when None).

    Raises InputError for an unsupported type or empty data.
    """
    if isinstance(data, DataLoader):
        ds = data.dataset
        if (
            not isinstance(ds, IterableDataset)
            and hasattr(ds, "__len__")
            and hasattr(ds, "__getitem__")
        ):
            return as_probe_data(ds, max_images)
        n = _count_stream(data, max_images)
        probe = ProbeData(data, n, "iterable")
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3) and not _is_item_list(data):
        images, labels = data[0], data[1]
        masks = data[2] if len(data) == 3 else None
        if not hasattr(images, "shape") or not hasattr(labels, "__len__"):
            raise InputError(
                "data=(images, labels) needs an array/tensor of images (N×C×H×W) and a sequence of "
                f"labels; got ({type(images).__name__}, {type(labels).__name__})."
            )
        n = int(images.shape[0]) if len(images.shape) >= 3 else 0
        if len(images.shape) < 3:
            raise InputError(f"Images must be N×C×H×W or N×H×W; got shape {tuple(images.shape)}.")
        lshape = tuple(labels.shape) if hasattr(labels, "shape") else (len(labels),)
        if len(lshape) > 1 and int(np.prod(lshape[1:])) != 1:
            raise InputError(
                f"labels must be class indices of shape (N,), got shape {lshape} (one-hot?). "
                "Pass labels.argmax(1)."
            )
        if len(labels) != n:
            raise InputError(f"Got {n} images but {len(labels)} labels; pass one label per image.")
        if masks is not None and len(masks) != n:
            raise InputError(f"Got {n} images but {len(masks)} masks; pass one mask per image.")
        probe = ProbeData((images, labels, masks), n, "tensors")
    elif isinstance(data, IterableDataset):
        return as_probe_data(DataLoader(data, batch_size=None), max_images)
    elif isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        probe = ProbeData(data, len(data), "dataset")
    else:
        raise InputError(
            f"data must be a torch Dataset, a DataLoader or an (images, labels) pair; got "
            f"{type(data).__name__}."
        )
    if probe.n == 0:
        raise InputError("data is empty: pass at least two images of two different classes.")
    if max_images is not None:
        probe.n = min(probe.n, max_images)
    return probe


def _count_stream(loader: Any, max_images: int | None) -> int:
    """Images an iterable loader yields, reading no further than ``max_images`` (an endless stream
    is fine with a cap; without one it is read to its end)."""
    n = 0
    for item in loader:
        n += to_labels(_split_item(item)[1]).numel()
        if max_images is not None and n >= max_images:
            break
    return n


def _is_item_list(data: Any) -> bool:
    """True for a plain list of (image, label) items rather than an (images, labels) pair."""
    return isinstance(data, list) and len(data) > 0 and isinstance(data[0], (tuple, list))
