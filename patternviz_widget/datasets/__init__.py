"""Bundled data, no downloads: ``digits`` (scikit-learn's handwritten digits, resized),
``shapes`` (generated coloured shapes on cluttered backgrounds, with foreground masks) and
``parts`` (generated arrangements of the same bars and dots on cluttered backgrounds, where only
the arrangement tells the class, with object masks)."""

from .base import ImageDataset
from .generated_parts import PART_NAMES, parts
from .generated_shapes import SHAPE_NAMES, shapes
from .sklearn_digits import digits

__all__ = ["PART_NAMES", "SHAPE_NAMES", "ImageDataset", "digits", "parts", "shapes"]
