"""Bundled demo models, sized for the bundled data and trained in seconds on CPU, and ``train``."""

from .cnn import BasicBlock, SmallResNet, SmallVGG
from .training import evaluate, train
from .vit import SmallViT

__all__ = ["BasicBlock", "SmallResNet", "SmallVGG", "SmallViT", "evaluate", "train"]
