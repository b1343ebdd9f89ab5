"""LayerRecorder: forward hooks on named layers that are always removed, and the model's mode restored.

The sample feature f (paper Sec. 3) is the flattened *input* of the classifier head, recorded by a
forward pre-hook. By default the head is found automatically (:func:`find_head`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from patternviz_widget._validate import did_you_mean
from patternviz_widget.errors import CaptureError, InputError, LayerNotFoundError


def module_names(model: nn.Module) -> list[str]:
    """Return the names ``model.named_modules()`` prints, without the root ("")."""
    return [name for name, _ in model.named_modules() if name]


def resolve(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """Return ``{name: module}`` for each name; raise LayerNotFoundError listing the closest names."""
    modules = dict(model.named_modules())
    out: dict[str, nn.Module] = {}
    for name in names:
        if not isinstance(name, str) or not name or name not in modules:
            valid = module_names(model)
            raise LayerNotFoundError(
                f"Layer {name!r} not found in {type(model).__name__}. {did_you_mean(str(name), valid, 'layer')} "
                "See model.named_modules() for every name."
            )
        out[name] = modules[name]
    return out


def find_head(model: nn.Module, num_classes: int) -> str:
    """Return the name of the classifier head: the last ``nn.Linear`` (in module order) whose
    ``out_features == num_classes``. Raise InputError naming the fix when there is none."""
    found = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and m.out_features == num_classes
    ]
    if not found:
        raise InputError(
            f"Could not find the classifier head of {type(model).__name__}: no nn.Linear with "
            f"out_features={num_classes}. Name the module whose input is the sample feature with "
            "sample_layer='...' (e.g. the final Linear layer)."
        )
    return found[-1]


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a hooked module produced: the output itself, or the first tensor of a tuple/list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer (None for a model without any)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return None


def same_device(a: torch.device, b: torch.device) -> bool:
    """True when ``a`` and ``b`` are the same device ("cuda" matches "cuda:0" etc.)."""
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index


@contextmanager
def on_device(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """Run the body with ``model`` on ``device``; move it back afterwards if it had to move."""
    before = model_device(model)
    moved = before is not None and not same_device(before, device)
    if moved:
        model.to(device)
    try:
        yield model
    finally:
        if moved:
            model.to(before)


class LayerRecorder:
    """Context manager that records the outputs of named layers (and the head's input).

    On enter it puts the model in eval mode and registers the hooks; on exit, whatever happened
    (exceptions and KeyboardInterrupt included), it removes every hook and restores
    ``model.training``. A recorded layer that runs twice within one forward pass of ``model`` (a
    module called at several places, e.g. a shared ReLU) raises CaptureError. While ``active`` is False the hooks record nothing (e.g. during an attack's
    own forward passes).

    Args:
        model: the network.
        layers: module names whose outputs are recorded into ``outputs[name]``.
        sample_layer: module name whose input (flattened to N×D) is recorded into ``sample``; None
            records no sample feature.
        on_output: optional ``f(name, tensor) -> value`` called inside the hook; ``outputs[name]``
            then holds its value instead of the tensor (capture uses it to keep only the sampled
            rows, before any later in-place operation can change the map).

    Example:
        >>> with LayerRecorder(net, ["features.3"], "classifier.3") as rec:
        ...     logits = net(x)
        ...     fmap, f = rec.outputs["features.3"], rec.sample
    """

    def __init__(
        self,
        model: nn.Module,
        layers: list[str],
        sample_layer: str | None = None,
        on_output: Callable[[str, torch.Tensor], Any] | None = None,
    ) -> None:
        self.model = model
        self.on_output = on_output
        self.modules = resolve(model, layers)
        self.sample_module = resolve(model, [sample_layer])[sample_layer] if sample_layer else None
        self.sample_layer = sample_layer
        self.outputs: dict[str, Any] = {}
        self.sample: torch.Tensor | None = None
        self.active = True
        self._handles: list[Any] = []
        self._fired: set[str] = set()  # layers that ran in the current forward pass of the model
        self._in_forward = False
        self._was_training = model.training

    def clear(self) -> None:
        """Forget the tensors of the last forward pass."""
        self.outputs = {}
        self.sample = None

    def _make_hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not self.active:
                return
            t = first_tensor(output)
            if t is None:
                raise CaptureError(
                    f"Layer {name!r} returned a {type(output).__name__}, not a tensor. Pick a layer "
                    "whose output is a tensor (N×C×H×W feature map or N×T×C tokens)."
                )
            if self._in_forward and name in self._fired:
                raise CaptureError(
                    f"Layer {name!r} ran more than once in one forward pass: the model calls this one "
                    "module at several places (e.g. one ReLU shared inside a block, as in "
                    "torchvision's BasicBlock), so no single output stands for it. Record a module "
                    "that runs once per forward pass (its block, or the conv / bn before it), or give "
                    "each call its own module."
                )
            self._fired.add(name)
            self.outputs[name] = t if self.on_output is None else self.on_output(name, t)

        return hook

    def _sample_hook(self, module: nn.Module, inputs: Any) -> None:
        if not self.active:
            return
        t = first_tensor(inputs)
        if t is None:
            raise CaptureError(f"The input of sample layer {self.sample_layer!r} is not a tensor.")
        self.sample = t.reshape(t.shape[0], -1)

    def __enter__(self) -> LayerRecorder:
        self._was_training = self.model.training
        try:
            self.model.eval()
            self._handles.append(self.model.register_forward_pre_hook(self._start_forward))
            self._handles.append(self.model.register_forward_hook(self._end_forward))
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
            if self.sample_module is not None:
                self._handles.append(
                    self.sample_module.register_forward_pre_hook(self._sample_hook)
                )
        except BaseException:
            self._restore()
            raise
        return self

    def _start_forward(self, module: nn.Module, inputs: Any) -> None:
        self._fired = set()
        self._in_forward = True

    def _end_forward(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self._in_forward = False

    def _restore(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.model.train(self._was_training)
        self.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()
