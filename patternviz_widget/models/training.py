"""train() and evaluate(): a plain Adam loop for the bundled models (or any classifier)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .._validate import check_positive_int
from ..engine.data import _split_item, as_probe_data, to_image_tensor, to_labels
from ..engine.device import pick_device
from ..errors import InputError


def _tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of ``data`` as CPU tensors."""
    images = getattr(data, "images", None)
    labels = getattr(data, "labels", None)
    if isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor):
        return images, labels
    probe = as_probe_data(data)
    xs, ys = [], []
    for b in probe.batches(512):
        xs.append(b.images)
        ys.append(b.labels)
    return torch.cat(xs), torch.cat(ys)


def _batches(data: Any, batch_size: int, gen: torch.Generator | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, DataLoader):  # the user's loader decides order and batch size
        for item in data:
            x, y, _ = _split_item(item)
            yield to_image_tensor(x, batched=True), to_labels(y)
        return
    x, y = data
    order = torch.randperm(len(y), generator=gen) if gen is not None else torch.arange(len(y))
    for s in range(0, len(y), batch_size):
        idx = order[s : s + batch_size]
        yield x[idx], y[idx]


def evaluate(model: nn.Module, data: Any, batch_size: int = 256, device: str | torch.device | None = None) -> float:
    """Return the accuracy (0..1) of ``model`` on ``data`` (any form :class:`~patternviz_widget.Study`
    accepts). The model's train/eval mode is restored afterwards."""
    dev = pick_device(device)
    xy = data if isinstance(data, DataLoader) else _tensors(data)
    was = model.training
    model.eval()
    correct = total = 0
    try:
        with torch.inference_mode():
            for x, y in _batches(xy, batch_size, None):
                pred = model(x.to(dev)).argmax(1).cpu()
                correct += int((pred == y).sum())
                total += len(y)
    finally:
        model.train(was)
    return correct / max(total, 1)


def train(
    model: nn.Module,
    data: Any,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module], Any] | None = None,
    seed: int = 0,
    weight_decay: float = 0.0,
    test_data: Any = None,
) -> dict[str, list[float]]:
    """Return the training history after training ``model`` with Adam and cross-entropy.

    The model is moved to ``device`` (None: CUDA when present, else CPU), stays there, and is left
    in eval mode. Shuffling and dropout are seeded with ``seed`` (the global torch RNG is restored).

    Args:
        model: a classifier returning N×K logits.
        data: training data in any form Study accepts (a DataLoader is used as is).
        epochs: passes over the data.
        lr, weight_decay: Adam's learning rate and weight decay.
        batch_size: images per step (ignored for a DataLoader).
        progress: print one line per epoch.
        on_epoch_end: ``f(epoch, model)`` after each epoch (epochs count from 1), e.g.
            ``tracker.snapshot``-style hooks; the model is in eval mode during the call.
        seed: seeds shuffling and dropout.
        test_data: optional data whose accuracy is reported after every epoch.

    Returns:
        ``{"epoch": [...], "loss": [...], "train_accuracy": [...], "seconds": [...]}`` plus
        ``"test_accuracy"`` when ``test_data`` is given.

    Example:
        >>> import patternviz_widget as pv
        >>> net = pv.models.SmallVGG(in_channels=1, num_classes=10)
        >>> hist = pv.models.train(net, pv.datasets.digits("train"), epochs=1, progress=False)
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise InputError(f"lr must be > 0, got {lr}.")
    dev = pick_device(device)
    model.to(dev)
    xy = data if isinstance(data, DataLoader) else _tensors(data)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    hist: dict[str, list[float]] = {"epoch": [], "loss": [], "train_accuracy": [], "seconds": []}
    if test_data is not None:
        hist["test_accuracy"] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            losses, correct, total = [], 0, 0
            for x, y in _batches(xy, batch_size, gen):
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                out = model(x)
                loss = F.cross_entropy(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()) * len(y))
                correct += int((out.detach().argmax(1) == y).sum())
                total += len(y)
            model.eval()
            hist["epoch"].append(epoch)
            hist["loss"].append(float(np.sum(losses) / max(total, 1)))
            hist["train_accuracy"].append(correct / max(total, 1))
            if test_data is not None:
                hist["test_accuracy"].append(evaluate(model, test_data, device=dev))
            hist["seconds"].append(time.perf_counter() - t0)
            if progress:
                test = f", test acc {hist['test_accuracy'][-1]:.3f}" if test_data is not None else ""
                print(
                    f"epoch {epoch}/{epochs}: loss {hist['loss'][-1]:.4f}, train acc "
                    f"{hist['train_accuracy'][-1]:.3f}{test} ({hist['seconds'][-1]:.1f} s)"
                )
            if on_epoch_end is not None:
                on_epoch_end(epoch, model)
    model.eval()
    return hist
