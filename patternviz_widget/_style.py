"""Colours and glyphs shared by the widget (sent to JS in the catalog) and the matplotlib export,
so a figure and the live view of the same state look the same."""

from __future__ import annotations

import numpy as np

#: Class colours, colour-blind safe: the Okabe–Ito palette (Okabe & Ito, "Color Universal Design",
#: 2008) for the first 8 classes (strong on white, the paper's figure background), then 12 from
#: tab20 that none of them resembles (the dark half first). Class c uses CLASS_COLORS[c % 20].
CLASS_COLORS = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#000000",
    "#8c564b", "#9467bd", "#bcbd22", "#17becf", "#e377c2", "#7f7f7f",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
]  # fmt: skip

#: Layer colours for forward-construction views (viridis-like, low layer = dark).
LAYER_COLORS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725", "#f89540", "#cc4778"]

#: The paper's glyphs (paper Sec. 3.4 and the authors' overview figure): name -> (matplotlib marker, description).
GLYPHS = {
    "reliable": ("o", "reliable knowledge point (class = truth)"),
    "unreliable": ("^", "unreliable knowledge point (another class)"),
    "non_discriminative": ("s", "non-discriminative feature"),
}

#: Glyph codes on the wire (uint8), same order in JS.
GLYPH_CODES = {"non_discriminative": 0, "reliable": 1, "unreliable": 2}

#: Radius of the per-class covariance ellipsoids (the paper's learning-process figure), in σ.
ELLIPSOID_SIGMA = 1.5


def glyph_codes(is_kp: np.ndarray, is_reliable: np.ndarray) -> np.ndarray:
    """uint8 glyph code per point (:data:`GLYPH_CODES`): reliable knowledge point, unreliable
    knowledge point, or non-discriminative."""
    is_kp = np.asarray(is_kp, bool)
    is_reliable = np.asarray(is_reliable, bool)
    codes = np.full(is_kp.shape[0], GLYPH_CODES["non_discriminative"], dtype=np.uint8)
    codes[is_kp & is_reliable] = GLYPH_CODES["reliable"]
    codes[is_kp & ~is_reliable] = GLYPH_CODES["unreliable"]
    return codes


def class_color(c: int) -> str:
    """Hex colour of class ``c``."""
    return CLASS_COLORS[int(c) % len(CLASS_COLORS)]


def palette(num_classes: int) -> list[str]:
    """Hex colours of classes ``0..num_classes-1``."""
    return [class_color(c) for c in range(num_classes)]


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio (1–21) of two hex colours."""
    la, lb = (0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(bl)
              for r, g, bl in (_rgb(a), _rgb(b)))  # fmt: skip
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def _rgb(hex_color: str) -> tuple[float, float, float]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255


def readable(color: str, background: str = "#ffffff", ratio: float = 3.0) -> str:
    """``color`` darkened (on a light background) or lightened (on a dark one) just enough to reach
    a WCAG contrast ``ratio`` on ``background``: class-direction labels are text in class colour.
    js/src/lib/colors.ts ``readable`` is the same rule."""
    if contrast(color, background) >= ratio:
        return color.lower()
    target = (
        (0.0, 0.0, 0.0)
        if contrast("#000000", background) >= contrast("#ffffff", background)
        else (1.0, 1.0, 1.0)
    )
    rgb = _rgb(color)
    out = color
    for step in range(1, 21):
        t = step / 20
        mixed = tuple(c + (g - c) * t for c, g in zip(rgb, target))
        out = "#" + "".join(f"{round(v * 255):02x}" for v in mixed)
        if contrast(out, background) >= ratio:
            break
    return out
