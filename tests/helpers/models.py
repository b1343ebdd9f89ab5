"""Hand-computable networks for engine tests (captum's basic_models habit): fixed weights, known
answers, and a few deliberately broken models for the bad-input cases."""

from __future__ import annotations

import torch
from torch import nn


class TinyConvNet(nn.Module):
    """conv1 (3×3, stride 1, pad 1) -> relu1 -> conv2 (3×3, stride 2, pad 1) -> relu2 -> pool2
    (2×2 max) -> global mean -> head. Receptive fields by hand (pixel p spans [p, p+1)):

    * conv1 cell i sees pixels i-1 .. i+1            -> box [i-1, i+2)
    * conv2 cell i sees conv1 cells 2i-1 .. 2i+1     -> pixels 2i-2 .. 2i+2 -> box [2i-2, 2i+3)
    * pool2 cell i sees conv2 cells 2i .. 2i+1       -> pixels 4i-2 .. 4i+4 -> box [4i-2, 4i+5)
    (all clipped to the image).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.head = nn.Linear(8, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.head(x.mean(dim=(2, 3)))


class DoubleNet(nn.Module):
    """Fixed weights with literal answers: ``scale`` is a 1×1 conv with weight 2 and bias 0, so its
    regional feature at (i, j) is 2·x[i, j]; the sample feature (input of ``head``) is the mean of
    that map, 2·mean(x); ``head`` has weights [[1], [-1]], so logits = (f, -f)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Conv2d(1, 1, 1)
        self.head = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.scale.weight.fill_(2.0)
            self.scale.bias.zero_()
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.scale(x).mean(dim=(2, 3)))


class ResidualNet(nn.Module):
    """conv -> (conv + identity): the residual addition is a functional op, so the receptive field
    of ``block`` cannot be derived from a plain chain and boxes fall back to grid cells."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.block = Residual(nn.Conv2d(4, 4, 3, padding=1))
        self.head = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.stem(x)).mean(dim=(2, 3)))


class Residual(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class TokenNet(nn.Module):
    """Patch tokens with a class token: ``embed`` (4×4 patches) -> ``tokens`` (N×(1+h·w)×C, class
    token first) -> ``head`` on the class token."""

    def __init__(self, num_classes: int = 3, dim: int = 6, cls: bool = True) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, dim, 4, stride=4)
        self.tokens = nn.Identity()
        self.cls = cls
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        if self.cls:
            t = torch.cat([t.mean(1, keepdim=True), t], dim=1)
        t = self.tokens(t)
        return self.head(t[:, 0] if self.cls else t.mean(1))


class BrokenNet(TinyConvNet):
    """TinyConvNet that misbehaves on demand: ``fail_at`` raises on that forward call (0-based),
    ``nan_at`` puts NaN into conv2's output from that call on, ``interrupt_at`` raises
    KeyboardInterrupt on that call."""

    def __init__(
        self, fail_at: int | None = None, nan_at: int | None = None, interrupt_at: int | None = None
    ) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at, self.nan_at, self.interrupt_at = fail_at, nan_at, interrupt_at
        self.conv2.register_forward_hook(self._poison)

    def _poison(self, module: nn.Module, inputs: object, out: torch.Tensor) -> torch.Tensor:
        if self.nan_at is not None and self.calls - 1 >= self.nan_at:
            out = out.clone()
            out[:, 0, 0, 0] = float("nan")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        call = self.calls
        self.calls += 1
        if call == self.fail_at:
            raise RuntimeError("boom")
        if call == self.interrupt_at:
            raise KeyboardInterrupt
        return super().forward(x)


class DictNet(nn.Module):
    """A model that returns a dict instead of logits (not a classifier output)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.head = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(self.conv(x).mean(dim=(2, 3)))}


class MapNet(nn.Module):
    """Returns a feature map N×C×H×W instead of N×K scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def toy_data(n: int = 12, size: int = 8, channels: int = 1, classes: int = 3, seed: int = 0):
    """Return ``(images N×C×H×W float32, labels int64)`` with every class present."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g), torch.arange(n) % classes
