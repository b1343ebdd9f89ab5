"""train() and evaluate() for the bundled models (or any classifier): AdamW with a one-cycle learning
rate by default (``schedule="constant"``: the plain Adam loop), with torch's thread count chosen for
the model's size while training on a CPU."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from patternviz_widget.engine.capture.data import (
    _split_item,
    as_probe_data,
    to_image_tensor,
    to_labels,
)

from .._validate import check_choice, check_positive_int
from ..engine.device import pick_device
from ..errors import InputError

#: Learning-rate schedules of :func:`train`.
SCHEDULES = ("onecycle", "constant")
#: Optimisers of :func:`train`.
OPTIMIZERS = ("adamw", "adam")
#: Multiply-accumulates per image (forward pass, conv and linear layers) up to which training on a
#: CPU uses one torch thread. Measured on a 2-core machine shared with other jobs (load average
#: 10-14), per step of 64 images, alternated runs, medians: 2 threads took 8.0x as long as 1 for
#: the digits net (9.6 M), 9.3x for the 32 px shapes net with widths 16-128 (13.5 M) and 2.8x for
#: the 64 px one with widths 16-64 (39.6 M); ``python -m benchmarks.run --sections training``
#: repeats this for every bundled recipe. On an idle 2-core AMD EPYC 2 threads take 0.61x
#: (digits), 0.69x (shapes), 0.73x (parts) the time of 1 per step, but the weights then differ
#: (the quickstart net's test accuracy 0.9867 vs 0.9844 after 3 epochs): a count chosen from the
#: load of the moment would make the same seed train a different net on a busy machine, so small
#: models keep one thread.
ONE_THREAD_MACS = 20_000_000


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


def _batches(
    data: Any, batch_size: int, gen: torch.Generator | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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


def macs_per_image(model: nn.Module, image: torch.Tensor) -> int:
    """Return the multiply-accumulates of one forward pass of ``image`` (C×H×W) through the
    ``Conv2d`` and ``Linear`` layers of ``model`` (the work that decides whether threads pay off)."""
    total = 0

    def count(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            total += out.numel() * k
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(image[None])
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return int(total)


def auto_threads(model: nn.Module, image: torch.Tensor) -> int:
    """Return the torch thread count :func:`train` uses on a CPU when ``threads`` is None.

    Small convolutions gain nothing from a second thread and lose much when the cores are busy
    (threads wait for each other on every layer), so models with at most :data:`ONE_THREAD_MACS`
    multiply-accumulates per ``image`` (C×H×W) train on 1 thread. Larger ones use the cores that
    are idle by the 1-minute load average, counting this process as one: ``min(torch's thread
    count, cores - load + 1)``, at least 1.
    """
    if macs_per_image(model, image.cpu()) <= ONE_THREAD_MACS:
        return 1
    cores = os.cpu_count() or 1
    try:
        idle = int(cores - os.getloadavg()[0] + 1)
    except (AttributeError, OSError):  # no load average (Windows): trust torch's default
        idle = cores
    return max(1, min(torch.get_num_threads(), cores, idle))


def evaluate(
    model: nn.Module, data: Any, batch_size: int = 256, device: str | torch.device | None = None
) -> float:
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


def _steps_per_epoch(xy: Any, batch_size: int) -> int:
    if isinstance(xy, DataLoader):
        try:
            return len(xy)
        except TypeError:
            raise InputError(
                "schedule='onecycle' needs to know the steps per epoch, but this DataLoader has no len() "
                "(an IterableDataset?). Pass schedule='constant', or a DataLoader over a map-style dataset."
            ) from None
    return math.ceil(len(xy[1]) / batch_size)


def _first_image(xy: Any) -> torch.Tensor:
    if isinstance(xy, DataLoader):
        for x, _ in _batches(xy, 1, None):
            return x[0]
        raise InputError("The DataLoader yielded no batch; train() needs at least one image.")
    if len(xy[1]) == 0:
        raise InputError("The training data hold no image; train() needs at least one.")
    return xy[0][0]


def train(
    model: nn.Module,
    data: Any,
    epochs: int = 5,
    lr: float | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module], Any] | None = None,
    seed: int = 0,
    weight_decay: float | None = None,
    test_data: Any = None,
    *,
    schedule: str = "onecycle",
    optimizer: str | None = None,
    threads: int | None = None,
    on_step_end: Callable[[int, nn.Module], Any] | None = None,
) -> dict[str, list[float]]:
    """Return the training history after training ``model`` with cross-entropy.

    By default the optimiser is AdamW with a one-cycle learning rate (``OneCycleLR``: warm-up to
    ``lr`` over the first 30 % of the steps, then cosine annealing to ``lr``/10⁵, with β₁ cycled
    0.95 → 0.85 → 0.95), which lets the bundled CNNs learn in a few epochs on a CPU.
    ``schedule="constant"`` is the plain loop: Adam at a fixed ``lr`` (default 1e-3) and no weight
    decay, the loop earlier versions ran. A call is one whole cycle, so calling
    ``train(..., epochs=1)`` four times is not the same as ``epochs=4`` (use ``on_epoch_end`` or
    ``on_step_end`` to look at the model during one run).

    The model is moved to ``device`` (None: CUDA when present, else CPU), stays there, and is left
    in eval mode. Shuffling and dropout are seeded with ``seed`` (the global torch RNG is restored).
    On a CPU, torch's thread count is set for the duration of the call (``threads``; by default 1
    for small models, see :func:`auto_threads`) and the caller's is restored afterwards.

    Args:
        model: a classifier returning N×K logits.
        data: training data in any form Study accepts (a DataLoader is used as is).
        epochs: passes over the data.
        lr: the peak learning rate of the one-cycle schedule (default 5e-3), or the fixed one of
            ``schedule="constant"`` (default 1e-3).
        batch_size: images per step (ignored for a DataLoader).
        progress: print one line per epoch.
        on_epoch_end: ``f(epoch, model)`` after each epoch (epochs count from 1), e.g.
            ``tracker.snapshot``-style hooks; the model is in eval mode during the call.
        seed: seeds shuffling and dropout.
        weight_decay: decoupled weight decay of AdamW (default 1e-2, torch's) or the L2 penalty of
            Adam (default 0).
        test_data: optional data whose accuracy is reported after every epoch.
        schedule: ``"onecycle"`` (default) or ``"constant"``.
        optimizer: ``"adamw"`` or ``"adam"``; None: AdamW for one-cycle, Adam for constant.
        threads: torch threads while training on a CPU; None picks by model size.
        on_step_end: ``f(step, model)`` after each optimiser step (steps count from 1 over the whole
            call), e.g. for checkpoints by iteration; the model is in eval mode during the call and
            back in train mode afterwards.

    Returns:
        ``{"epoch", "loss", "train_accuracy", "seconds", "train_seconds", "lr", "steps", "threads"}``,
        one entry per epoch (``seconds``: the epoch with its test evaluation, ``train_seconds``:
        without it; ``lr``: the learning rate of the epoch's last step; ``steps``: optimiser
        steps so far), plus ``"test_accuracy"`` when ``test_data`` is given.

    Example:
        >>> import patternviz_widget as pv
        >>> net = pv.models.SmallVGG(in_channels=1, num_classes=10)
        >>> hist = pv.models.train(net, pv.datasets.digits("train"), epochs=1, progress=False)
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_choice(schedule, SCHEDULES, "schedule")
    if optimizer is None:
        optimizer = "adamw" if schedule == "onecycle" else "adam"
    check_choice(optimizer, OPTIMIZERS, "optimizer")
    if lr is None:
        lr = 5e-3 if schedule == "onecycle" else 1e-3
    if not lr > 0:
        raise InputError(f"lr must be > 0, got {lr}.")
    if weight_decay is None:
        weight_decay = 1e-2 if optimizer == "adamw" else 0.0
    if not weight_decay >= 0:
        raise InputError(f"weight_decay must be >= 0, got {weight_decay}.")
    if threads is not None:
        threads = check_positive_int(threads, "threads")
    dev = pick_device(device)
    model.to(dev)
    xy = data if isinstance(data, DataLoader) else _tensors(data)
    steps_per_epoch = _steps_per_epoch(xy, batch_size) if schedule == "onecycle" else 0
    caller_threads = torch.get_num_threads()
    if dev.type == "cpu" and threads is None:
        threads = auto_threads(model, _first_image(xy))
    gen = torch.Generator().manual_seed(int(seed))
    opt_cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = None
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch)
        )
    hist: dict[str, list[float]] = {
        "epoch": [], "loss": [], "train_accuracy": [], "seconds": [], "train_seconds": [], "lr": [], "steps": [],
        "threads": [],
    }  # fmt: skip
    if test_data is not None:
        hist["test_accuracy"] = []
    step, lr_used = 0, float(lr)
    try:
        if dev.type == "cpu":
            torch.set_num_threads(int(threads))
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
                    lr_used = float(opt.param_groups[0]["lr"])
                    step += 1
                    if sched is not None and step < sched.total_steps:
                        sched.step()
                    losses.append(float(loss.detach()) * len(y))
                    correct += int((out.detach().argmax(1) == y).sum())
                    total += len(y)
                    if on_step_end is not None:
                        model.eval()
                        on_step_end(step, model)
                        model.train()
                model.eval()
                hist["epoch"].append(epoch)
                hist["loss"].append(float(np.sum(losses) / max(total, 1)))
                hist["train_accuracy"].append(correct / max(total, 1))
                hist["lr"].append(lr_used)
                hist["steps"].append(step)
                hist["threads"].append(torch.get_num_threads())
                hist["train_seconds"].append(time.perf_counter() - t0)
                if test_data is not None:
                    hist["test_accuracy"].append(evaluate(model, test_data, device=dev))
                hist["seconds"].append(time.perf_counter() - t0)
                if progress:
                    test = (
                        f", test acc {hist['test_accuracy'][-1]:.3f}"
                        if test_data is not None
                        else ""
                    )
                    print(
                        f"epoch {epoch}/{epochs}: loss {hist['loss'][-1]:.4f}, train acc "
                        f"{hist['train_accuracy'][-1]:.3f}{test} ({hist['seconds'][-1]:.1f} s)"
                    )
                if on_epoch_end is not None:
                    on_epoch_end(epoch, model)
    finally:
        torch.set_num_threads(caller_threads)
    model.eval()
    return hist
