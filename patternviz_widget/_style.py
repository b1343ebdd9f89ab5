"""Colours and glyphs shared by the widget (sent to JS in the catalog) and the matplotlib export,
so a figure and the live view of the same state look the same."""

from __future__ import annotations

#: Class colours (Tableau 10, then 10 more from tab20's light half); class c uses CLASS_COLORS[c % 20].
CLASS_COLORS = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]  # fmt: skip

#: Layer colours for forward-construction views (viridis-like, low layer = dark).
LAYER_COLORS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725", "#f89540", "#cc4778"]

#: The paper's glyphs (PAPER.md §4, lab overview figure): name -> (matplotlib marker, description).
GLYPHS = {
    "reliable": ("o", "reliable knowledge point (class = truth)"),
    "unreliable": ("^", "unreliable knowledge point (another class)"),
    "non_discriminative": ("s", "non-discriminative feature"),
}

#: Glyph codes on the wire (uint8), same order in JS.
GLYPH_CODES = {"non_discriminative": 0, "reliable": 1, "unreliable": 2}


def class_color(c: int) -> str:
    """Hex colour of class ``c``."""
    return CLASS_COLORS[int(c) % len(CLASS_COLORS)]


def palette(num_classes: int) -> list[str]:
    """Hex colours of classes ``0..num_classes-1``."""
    return [class_color(c) for c in range(num_classes)]
