"""Bundled data, no downloads: ``digits`` (scikit-learn's handwritten digits, resized) and
``shapes`` (generated coloured shapes on cluttered backgrounds, with foreground masks)."""

from .base import ImageDataset
from .generated_shapes import SHAPE_NAMES, shapes
from .sklearn_digits import digits

__all__ = ["SHAPE_NAMES", "ImageDataset", "digits", "shapes"]
