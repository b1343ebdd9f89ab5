"""Bundled data, no downloads: ``digits`` (scikit-learn's handwritten digits, resized) and
``shapes`` (generated coloured shapes on cluttered backgrounds, with foreground masks)."""

from .base import ImageDataset
from .digits import digits
from .shapes import SHAPE_NAMES, shapes

__all__ = ["SHAPE_NAMES", "ImageDataset", "digits", "shapes"]
