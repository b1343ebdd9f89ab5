"""Knowledge distillation (the paper's distillation experiment): train a student from a frozen teacher.

Two students as in the paper:

* **logit KD** (``feature_layer=None``, the paper's "distilled using the FC layer"): Hinton et al.'s
  loss ``α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(z_s, y)``;
* **feature mimicking** (``feature_layer="…"``, the paper's "distilled using conv_53"):
  ``α·MSE(φ(a_s), a_t) + (1−α)·CE(z_s, y)`` where ``a_t``/``a_s`` are the outputs of the teacher's
  and the student's layer and φ is the identity when their shapes match. When only the channel
  count differs, φ is a trainable 1×1 convolution (``nn.Linear`` for N×D outputs) from the student's
  to the teacher's channels; it is returned in ``history.adapter`` and is not part of the student,
  so comparing the student with the teacher's Λ (the paper's distillation experiment) needs equal channel counts.
  The paper does not give the loss, temperature or epochs: these are our defaults.

The teacher runs in eval mode under ``torch.no_grad()`` and gets its mode back afterwards; its
parameters are never handed to the optimiser.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from patternviz_widget._validate import check_positive_int, check_probability, did_you_mean
from patternviz_widget.defaults import SEED, TEMPERATURE
from patternviz_widget.engine.attack.attacks import eval_mode, model_device
from patternviz_widget.engine.device import pick_device
from patternviz_widget.errors import InputError, LayerNotFoundError


@dataclass
class DistillHistory:
    """Per-epoch training record of :func:`distill` (epoch 1 … ``epochs``).

    loss: the total loss; distill_loss: the α-weighted term before weighting (KL·T² for logits,
    MSE for features); ce_loss: the cross-entropy with the labels; accuracy: training accuracy;
    agreement: share of training images where the student's argmax equals the teacher's.
    """

    mode: str
    temperature: float
    alpha: float
    feature_layer: str | None
    student_layer: str | None
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    distill_loss: list[float] = field(default_factory=list)
    ce_loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    agreement: list[float] = field(default_factory=list)
    adapter: nn.Module | None = None

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The per-epoch lists as float32 numpy arrays (``epoch`` as int64)."""
        out = {
            k: np.asarray(getattr(self, k), np.float32)
            for k in ("loss", "distill_loss", "ce_loss", "accuracy", "agreement")
        }
        out["epoch"] = np.asarray(self.epoch, np.int64)
        return out


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = TEMPERATURE,
    alpha: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, T²·KL soft term, CE) of Hinton's KD loss, batch means.

    Args:
        temperature: T (the paper uses T = 4 for P(Y|X) and gives no KD temperature).
        alpha: α, the weight of the soft term.
    """
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    p_t = F.softmax(teacher_logits / t, dim=1)
    soft = F.kl_div(log_p_s, p_t, reduction="batchmean") * t * t
    ce = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * ce, soft, ce


def distill(
    teacher: nn.Module,
    student: nn.Module,
    data: Any,
    epochs: int,
    temperature: float = TEMPERATURE,
    alpha: float = 0.9,
    feature_layer: str | None = None,
    student_layer: str | None = None,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
    tracker: Any = None,
    progress: bool = True,
    seed: int = SEED,
) -> DistillHistory:
    """Return the training history of ``student`` distilled from ``teacher`` (trained in place).

    Args:
        teacher: the trained classifier (frozen: eval mode, no gradients, not optimised).
        student: the classifier to train (Adam, in place).
        data: a ``Dataset`` of ``(image, label[, mask])``, a ``DataLoader``, or ``(images, labels)``.
        epochs: passes over ``data``.
        temperature: T of the soft targets (default 4, the paper's T for P(Y|X)).
        alpha: α, weight of the distillation term; 1 − α weights the label cross-entropy.
        feature_layer: teacher module name to mimic; None distils the logits.
        student_layer: student module name matched to ``feature_layer`` (default: the same name).
        lr, batch_size, weight_decay: Adam settings and batch size (ignored for a DataLoader).
        device: where to train; None uses the student's device. Both models are moved there.
        tracker: optional :class:`~patternviz_widget.pipeline.tracking.Tracker` of a study of the
            student; ``tracker.snapshot(e)`` is called before training (e = 0) and after epoch e.
        progress: show a tqdm bar over epochs.
        seed: seeds the data order and the adapter's initialisation.

    Returns:
        A :class:`DistillHistory` (per-epoch losses, accuracy, agreement with the teacher).

    Example:
        >>> hist = pv.distill(teacher, student, train_set, epochs=5)
        >>> hist = pv.distill(teacher, student2, train_set, epochs=5, feature_layer="features.7")
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    alpha = check_probability(alpha, "alpha")
    if not float(temperature) > 0:
        raise InputError(f"temperature must be > 0, got {temperature!r}.")
    if teacher is student:
        raise InputError("teacher and student are the same module; distil into a fresh copy.")
    dev = pick_device(device) if device is not None else model_device(student)
    teacher.to(dev)
    student.to(dev)
    torch.manual_seed(seed)
    loader = _loader(data, batch_size, seed)
    mode = "logit" if feature_layer is None else "feature"
    s_name = student_layer if student_layer is not None else feature_layer
    hist = DistillHistory(
        mode, float(temperature), alpha, feature_layer, s_name if mode == "feature" else None
    )

    with (
        _taps(teacher, feature_layer) as t_tap,
        _taps(student, s_name) as s_tap,
        eval_mode(teacher),
    ):
        params = list(student.parameters())
        if mode == "feature":
            hist.adapter = _make_adapter(teacher, student, loader, t_tap, s_tap, dev)
            if hist.adapter is not None:
                params += list(hist.adapter.parameters())
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        if tracker is not None:
            tracker.snapshot(0)
        was_training = student.training
        try:
            for epoch in _epochs(epochs, progress):
                student.train()
                sums = np.zeros(5)
                n = 0
                for x, y in _batches(loader):
                    x, y = x.to(dev), y.to(dev)
                    with torch.no_grad():
                        z_t = teacher(x)
                    z_s = student(x)
                    if mode == "logit":
                        total, term, ce = kd_loss(z_s, z_t, y, temperature, alpha)
                    else:
                        a_s = s_tap.out if hist.adapter is None else hist.adapter(s_tap.out)
                        term = F.mse_loss(a_s, t_tap.out)
                        ce = F.cross_entropy(z_s, y)
                        total = alpha * term + (1 - alpha) * ce
                    opt.zero_grad(set_to_none=True)
                    total.backward()
                    opt.step()
                    b = x.shape[0]
                    pred = z_s.detach().argmax(1)
                    sums += b * np.array([
                        float(total.detach()), float(term.detach()), float(ce.detach()),
                        float((pred == y).float().mean()), float((pred == z_t.argmax(1)).float().mean()),
                    ])  # fmt: skip
                    n += b
                means = sums / max(n, 1)
                hist.epoch.append(epoch)
                for name, v in zip(
                    ("loss", "distill_loss", "ce_loss", "accuracy", "agreement"), means
                ):
                    getattr(hist, name).append(float(v))
                if tracker is not None:
                    student.eval()
                    tracker.snapshot(epoch)
        finally:
            student.train(was_training)
    return hist


# -- helpers ------------------------------------------------------------------------------------
class _Tap:
    """Holds the last output of a hooked module (first tensor of a tuple output)."""

    out: torch.Tensor


@contextmanager
def _taps(model: nn.Module, name: str | None) -> Iterator[_Tap]:
    tap = _Tap()
    if name is None:
        yield tap
        return
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        names = [n for n in modules if n]
        raise LayerNotFoundError(
            f"Layer {name!r} not found in {type(model).__name__}. "
            f"{did_you_mean(name, names, 'layer')} See model.named_modules()."
        )

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        tap.out = out[0] if isinstance(out, (tuple, list)) else out

    handle = modules[name].register_forward_hook(hook)
    try:
        yield tap
    finally:
        handle.remove()


def _make_adapter(
    teacher: nn.Module, student: nn.Module, loader: Any, t_tap: _Tap, s_tap: _Tap, dev: torch.device
) -> nn.Module | None:
    """Return None when the two layers' outputs have one shape, a channel adapter, or raise."""
    x, _ = next(iter(_batches(loader)))
    with torch.no_grad(), eval_mode(student):
        teacher(x[:2].to(dev))
        student(x[:2].to(dev))
    ts, ss = tuple(t_tap.out.shape[1:]), tuple(s_tap.out.shape[1:])
    if ts == ss:
        return None
    if len(ts) == len(ss) and ts[1:] == ss[1:] and len(ts) in (1, 3):
        layer = nn.Conv2d(ss[0], ts[0], 1) if len(ts) == 3 else nn.Linear(ss[0], ts[0])
        return layer.to(dev)
    raise InputError(
        f"Cannot mimic the teacher's layer: its output is {ts} per image but the student's is {ss}. "
        "Pick a student_layer with the same spatial size (channels may differ: a 1×1 adapter is added)."
    )


def _loader(data: Any, batch_size: int, seed: int) -> Any:
    if isinstance(data, torch.utils.data.DataLoader):
        return data
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and not isinstance(data, torch.utils.data.Dataset)
    ):
        x, y = (
            torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a for a in data
        )
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise InputError(
                f"images and labels must have the same non-zero length, got {x.shape[0]} and {y.shape[0]}."
            )
        data = torch.utils.data.TensorDataset(x.float(), y.long())
    if not isinstance(data, torch.utils.data.Dataset):
        raise InputError(
            f"data must be a Dataset, a DataLoader or an (images, labels) pair, got {type(data).__name__}."
        )
    if len(data) == 0:  # type: ignore[arg-type]
        raise InputError("data is empty; pass the training images the student should learn from.")
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, generator=g)


def _batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for item in loader:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InputError(
                "Each batch must be (images, labels[, masks]); got " + type(item).__name__ + "."
            )
        yield item[0].float(), torch.as_tensor(item[1]).long()


def _epochs(epochs: int, progress: bool) -> Iterator[int]:
    rng = range(1, epochs + 1)
    if not progress:
        yield from rng
        return
    from tqdm.auto import tqdm

    yield from tqdm(rng, desc="distil", unit="epoch")
