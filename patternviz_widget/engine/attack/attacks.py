"""FGSM and PGD adversarial inputs (the paper's adversarial-attack experiment), written for this package.

Why not ``torchattacks``: its wheel (3.5.1) requires ``torchvision`` and pins ``requests~=2.25.1``;
PyPI's torchvision does not import beside our CPU torch build, and the two attacks are ~100 lines.

Guarantees of both functions (tested in ``tests/engine/test_attacks.py``):

* gradients are taken with respect to the input only (``torch.autograd.grad``), so no parameter
  ``.grad`` is touched and ``requires_grad`` of the parameters is left as it was;
* the model runs in eval mode and gets its original train/eval mode back, even on error;
* the result lies in the ``eps`` ball around ``x`` (ℓ∞ or ℓ2) and inside ``bounds``;
* work happens on the model's device; the result comes back on the device of ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from patternviz_widget._validate import check_choice, check_positive_int
from patternviz_widget.engine.capture import hooks
from patternviz_widget.errors import CaptureError, InputError

NORMS = ("linf", "l2")

#: ``record(iteration, x_adv)`` — called with iteration 0 (the clean input) and after every step.
RecordFn = Callable[[int, torch.Tensor], None]


def fgsm(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "linf",
    bounds: tuple[float, float] = (0.0, 1.0),
    targeted: bool = False,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return FGSM adversarial inputs: one step of size ``eps`` along the loss gradient's sign.

    Args:
        model: a classifier returning logits N×K.
        x: inputs N×… inside ``bounds``.
        y: int64[N] true classes (the class to move away from when untargeted).
        eps: ε, the perturbation budget (ℓ∞: per pixel; ℓ2: per image), ``0 <= eps < span``.
        norm: "linf" (sign of the gradient) or "l2" (gradient scaled to length ε).
        bounds: (low, high) valid input range; the result is clipped to it.
        targeted: move towards ``target`` instead of away from ``y``.
        target: int64[N] target classes (required when ``targeted``).

    Returns:
        The adversarial inputs, same shape, dtype and device as ``x``.

    Example:
        >>> x_adv = fgsm(net, images, labels, eps=8 / 255)
    """
    return pgd(
        model, x, y, eps=eps, step_size=eps, steps=1, norm=norm, random_start=False,
        targeted=targeted, target=target, bounds=bounds,
    )  # fmt: skip


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step_size: float | None = None,
    steps: int = 20,
    norm: str = "linf",
    random_start: bool = False,
    targeted: bool = False,
    target: torch.Tensor | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    record: RecordFn | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Return PGD adversarial inputs (projected gradient ascent on the cross-entropy).

    Each step moves ``x_adv`` by ``step_size`` along sign(∇) (ℓ∞) or ∇/‖∇‖₂ (ℓ2), then projects
    back into the ε ball around ``x`` and into ``bounds``. The paper records 20 iterations
    (the official code's set-up ``pgd_inf_0.1_…``, ``max_adv_iter = 20``).

    Args:
        model: a classifier returning logits N×K.
        x: inputs N×… inside ``bounds``.
        y: int64[N] true classes.
        eps: ε, the budget (ℓ∞ per pixel, ℓ2 per image); paper: 0.1 (ℓ∞).
        step_size: α per iteration; None uses 2.5·ε/steps (Madry et al.).
        steps: number of iterations (paper: 20).
        norm: "linf" or "l2".
        random_start: start from a uniform point of the ε ball (ℓ∞) / a random direction (ℓ2).
            Off by default so that iteration 0 of a trajectory is the clean input.
        targeted: descend the loss of ``target`` instead of ascending the loss of ``y``.
        target: int64[N] target classes (required when ``targeted``).
        bounds: (low, high) valid input range.
        record: optional ``record(t, x_t)`` callback, t = 0 (clean / random start) … ``steps``;
            ``x_t`` is detached, on the model's device.
        seed: seeds the random start.

    Returns:
        The adversarial inputs, same shape, dtype and device as ``x``.

    Example:
        >>> x_adv = pgd(net, images, labels, eps=8 / 255, steps=20)
    """
    norm = check_choice(norm, NORMS, "norm")
    steps = check_positive_int(steps, "steps")
    lo, hi = _check_bounds(bounds)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise InputError(
            f"x must be a floating-point tensor of shape N×…, got {type(x).__name__} "
            f"{getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}."
        )
    per_sample = math.prod(x.shape[1:])
    eps = _check_eps(eps, norm, hi - lo, per_sample)
    step = 2.5 * eps / steps if step_size is None else float(step_size)
    if not step > 0 and eps > 0:
        raise InputError(f"step_size must be > 0, got {step_size!r}.")
    device = model_device(model)
    y = _check_labels(y, x.shape[0], "y")
    if targeted:
        if target is None:
            raise InputError("targeted=True needs target= (int64[N] classes to move towards).")
        target = _check_labels(target, x.shape[0], "target")
    elif target is not None:
        raise InputError(
            "target= is only used with targeted=True; pass targeted=True or drop target."
        )
    if float(x.min()) < lo - 1e-6 or float(x.max()) > hi + 1e-6:
        raise InputError(
            f"x lies outside bounds=({lo}, {hi}) (min {float(x.min()):.4g}, max "
            f"{float(x.max()):.4g}). Pass bounds= matching your input range, e.g. of normalised data."
        )

    x0 = x.detach().to(device)
    goal = (target if target is not None else y).to(device)
    gen = None
    if random_start:
        gen = torch.Generator(device=device)
        gen.manual_seed(0 if seed is None else int(seed))
    with eval_mode(model):
        x_adv = x0.clone()
        if random_start and eps > 0:
            x_adv = _project(x_adv + _random_delta(x0, eps, norm, gen), x0, eps, norm, lo, hi)
        if record is not None:
            record(0, x_adv.detach())
        for t in range(1, steps + 1):
            grad = input_gradient(model, x_adv, goal)
            direction = -grad if targeted else grad
            if norm == "linf":
                x_adv = x_adv + step * direction.sign()
            else:
                x_adv = x_adv + step * direction / _l2(direction).clamp_min(1e-12)
            x_adv = _project(x_adv, x0, eps, norm, lo, hi)
            if record is not None:
                record(t, x_adv.detach())
    return x_adv.detach().to(device=x.device, dtype=x.dtype)


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return ∂ CE(model(x), y) / ∂x (summed over the batch), touching no parameter gradient."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            raise CaptureError(
                f"The model must return logits N×K, got {type(logits).__name__} "
                f"{tuple(getattr(logits, 'shape', ()))}. Wrap it so forward() returns the logits."
            )
        if not logits.requires_grad:
            raise CaptureError(
                "The model's output does not depend differentiably on its input, so no attack "
                "gradient exists. Remove torch.no_grad()/.detach()/inference_mode from forward(), "
                "or attack a differentiable surrogate model."
            )
        loss = F.cross_entropy(logits.float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
    if grad is None:
        raise CaptureError(
            "The loss has no gradient with respect to the input (the graph is cut inside the "
            "model). Remove .detach()/argmax/round steps from forward(), or use a differentiable model."
        )
    if not torch.isfinite(grad).all():
        raise CaptureError(
            "The input gradient contains NaN/Inf. Check the model for log(0) or overflow."
        )
    return grad


def success(
    model: torch.nn.Module,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    targeted: bool = False,
    target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return bool[N]: the attack succeeded (prediction ≠ y, or = target when targeted)."""
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        pred = model(x_adv.to(device)).argmax(1).cpu()
    goal = (target if targeted and target is not None else y).to("cpu")
    return pred == goal if targeted else pred != goal


# -- helpers ------------------------------------------------------------------------------------
@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` in eval mode and give it back its train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: torch.nn.Module) -> torch.device:
    """Return the device of the model's first parameter or buffer (CPU for a stateless model)."""
    return hooks.model_device(model) or torch.device("cpu")


def _check_bounds(bounds: object) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (low, high), got {bounds!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"bounds must be finite with low < high, got {bounds!r}.")
    return lo, hi


def _check_eps(eps: object, norm: str, span: float, per_sample: int) -> float:
    try:
        e = float(eps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"eps must be a number, got {eps!r}.") from None
    limit = span if norm == "linf" else span * math.sqrt(per_sample)
    if not math.isfinite(e) or e < 0 or e >= limit:
        raise InputError(
            f"eps={eps!r} is out of range for norm={norm!r}: it must be in [0, {limit:.4g}) "
            f"(the bounds' span{'' if norm == 'linf' else ' × √(input size)'}). "
            "For images in [0, 1] typical values are 2/255 … 16/255 (ℓ∞) or 0.25 … 2 (ℓ2)."
        )
    return e


def _check_labels(y: object, n: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(y)
    if t.ndim != 1 or t.shape[0] != n or t.is_floating_point() or t.dtype == torch.bool:
        raise InputError(
            f"{what} must be integer class indices of shape ({n},), got {t.dtype} {tuple(t.shape)}."
        )
    return t.long()


def _l2(t: torch.Tensor) -> torch.Tensor:
    """Per-sample ℓ2 norm, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def _project(
    x_adv: torch.Tensor, x0: torch.Tensor, eps: float, norm: str, lo: float, hi: float
) -> torch.Tensor:
    delta = x_adv - x0
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _l2(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (x0 + delta).clamp(lo, hi)


def _random_delta(
    x0: torch.Tensor, eps: float, norm: str, gen: torch.Generator | None
) -> torch.Tensor:
    if norm == "linf":
        u = torch.rand(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        return (2 * u - 1) * eps
    d = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
    r = torch.rand(
        (x0.shape[0],) + (1,) * (x0.ndim - 1), generator=gen, device=x0.device, dtype=x0.dtype
    )
    return d / _l2(d).clamp_min(1e-12) * r * eps
