"""Small VGG- and ResNet-style CNNs sized for the bundled data (32×32 digits, 64×64 shapes)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SmallVGG(nn.Module):
    """A VGG-style CNN: stages of two 3×3 conv-BN-ReLU and a 2×2 max-pool, then an MLP head.

    Module names (``model.named_modules()``): ``features.0`` … ``features.N`` (the conv stack),
    ``pool`` (adaptive average pooling to 2×2), ``classifier.1`` (Linear), ``classifier.4`` (the
    head, Linear hidden→K; its input is the sample feature f). :attr:`default_layers` lists the last
    ReLU of every stage (the analogue of VGG-16's conv_12 … conv_53 used in the paper).

    Args:
        in_channels: image channels (1 for digits, 3 for shapes).
        num_classes: K.
        widths: output channels of each stage.
        hidden: width of the hidden layer of the head (the sample feature dimension D).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        hidden: int = 128,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self.default_layers: list[str] = []
        c = in_channels
        for w in widths:
            layers += _conv_bn_relu(c, w) + _conv_bn_relu(w, w)
            self.default_layers.append(f"features.{len(layers) - 1}")
            layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * 4, hidden),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with a residual connection (1×1 conv shortcut when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-style CNN: a 3×3 stem, residual stages ``layer1`` … ``layer3`` (strides 1, 2, 2),
    global average pooling and the head ``fc`` (its input is the sample feature f).

    Args:
        in_channels: image channels.
        num_classes: K.
        widths: channels of the three stages.
        blocks: residual blocks per stage.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        blocks: int = 1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, widths[0]))
        c = widths[0]
        for i, (w, s) in enumerate(zip(widths, (1, 2, 2))):
            stage = [BasicBlock(c, w, s)] + [BasicBlock(w, w) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            c = w
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        self.default_layers = [f"layer{i + 1}" for i in range(len(widths))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(len(self.default_layers)):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.pool(x), 1))
