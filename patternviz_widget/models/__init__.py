"""Bundled demo models, sized for the bundled data and trained in seconds on CPU, ``train`` and
the bundled training recipes (``recipe``, ``train_recipe``)."""

from .cnn import BasicBlock, SmallResNet, SmallVGG
from .recipes import RECIPES, Recipe, TrainedRecipe, recipe, train_recipe
from .training import auto_threads, evaluate, macs_per_image, train
from .vit import SmallViT

__all__ = [
    "RECIPES",
    "BasicBlock",
    "Recipe",
    "SmallResNet",
    "SmallVGG",
    "SmallViT",
    "TrainedRecipe",
    "auto_threads",
    "evaluate",
    "macs_per_image",
    "recipe",
    "train",
    "train_recipe",
]
