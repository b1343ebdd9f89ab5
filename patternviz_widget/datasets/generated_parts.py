"""Generated "parts": the class lives in the arrangement of parts, not in colour, texture or edges.

Every object is made of the same three parts — two bars of equal length and one dot — and the six
classes differ only in how the parts are placed relative to each other:

========  ===================================================================
tee       a bar standing on the middle of the other (a "T"), the dot beyond its foot
corner    the bars meet at a right angle (an "L"), the dot inside the corner
cross     the bars cross at their middles (a "+"), the dot in one quadrant
rails     the bars parallel side by side (a "="), the dot between them
hat       the bars as in "tee", the dot above the middle of the crossbar
elbow     the bars meet at a right angle, the dot outside the corner
========  ===================================================================

Each object is rotated by a uniform random angle, mirrored half of the time, scaled by ±9 %,
placed at random and painted in one random colour. The background is the cluttered one of
:func:`~patternviz_widget.datasets.shapes` (two-colour stripes, smooth colour noise, pixel noise)
plus 1-3 distractor parts (where they fit) — bars and dots of the same size, each in its own
random colour, kept clear of the object — so the image holds up to 6 parts in all. The mask is 1 exactly on the object's
three parts.

Why this set exists, beside ``shapes``: in ``shapes`` the class is a silhouette, which a network's
lowest layers can already pick out from local edges and curvature, so its regional features can
be discriminative from the first layer on. Here every class has the same parts, the same colours,
the same edges in every orientation and (up to the small overlaps where bars touch) the same
area, so the statistics a low layer sees are the same for every class: a linear classifier on
colour histograms or on per-pixel statistics stays near chance (the tests check this). The class
only appears once a layer's receptive field spans several parts and relates them, which is where
Li, Wang, Zhang (NeurIPS 2021, §4) expect knowledge points to emerge: in middle and high layers,
more with depth.

Everything is vectorised numpy, deterministic from ``seed`` for any ``n`` and ``size`` in the
same way as ``shapes``: images are made in chunks of 1,000 with per-chunk seeds, so the same
(seed, size, num_classes) gives the same first images whatever ``n`` is.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._validate import check_positive_int
from ..errors import InputError
from .base import ImageDataset
from .generated_shapes import _hsv, _rotate

#: Class names in label order; ``num_classes`` takes the first ones.
PART_NAMES = ("tee", "corner", "cross", "rails", "hat", "elbow")
_CHUNK = 1000
_TAG = 0x70617274  # "part": keeps parts(seed=s) and shapes(seed=s) independent

# Part layout of every class in the object's frame, in units of the bar length: rows are
# (x, y, angle) of bar 1, bar 2 and the dot (angle unused), then re-centred on the parts' mean.
_HALF_T = 0.11  # bar half-thickness
_DOT_R = 0.2  # dot radius
_LAYOUTS = np.array(
    [
        [[0.0, 0.5, 0.0], [0.0, 0.0, np.pi / 2], [0.0, -0.9, 0.0]],  # tee
        [[0.5, 0.0, 0.0], [0.0, 0.5, np.pi / 2], [0.45, 0.45, 0.0]],  # corner
        [[0.0, 0.0, 0.0], [0.0, 0.0, np.pi / 2], [0.42, 0.42, 0.0]],  # cross
        [[0.0, 0.45, 0.0], [0.0, -0.45, 0.0], [0.0, 0.0, 0.0]],  # rails
        [[0.0, 0.5, 0.0], [0.0, 0.0, np.pi / 2], [0.0, 1.03, 0.0]],  # hat
        [[0.5, 0.0, 0.0], [0.0, 0.5, np.pi / 2], [-0.4, -0.4, 0.0]],  # elbow
    ],
    np.float32,
)
_LAYOUTS[:, :, :2] -= _LAYOUTS[:, :, :2].mean(axis=1, keepdims=True)
_EXTENT = 1.1  # radius (bar lengths) that holds every class's parts around their mean
_SCALE = (0.26, 0.31)  # bar length as a share of the side
_DISTRACTORS = (1, 3)  # fewest and most distractor parts


def parts(n: int = 2000, size: int = 32, num_classes: int = 6, seed: int = 0) -> ImageDataset:
    """Return ``n`` generated images as an :class:`ImageDataset` (3×size×size float32 in [0, 1],
    uint8 masks N×size×size that mark the object's three parts; classes in random order, balanced
    to within one image per class in every 1,000).

    Args:
        n: number of images.
        size: side length in pixels, 32 to 64 (the parts are about 2 px thick at 32).
        num_classes: 2 to 6; the first names of :data:`PART_NAMES`.
        seed: everything follows from it (use another seed for a test set).

    Example:
        >>> import patternviz_widget as pv
        >>> ds = pv.datasets.parts(n=60, seed=1)
        >>> ds.class_names[:3], tuple(ds.masks.shape)
        (['tee', 'corner', 'cross'], (60, 32, 32))
    """
    n = check_positive_int(n, "n")
    size = check_positive_int(size, "size", minimum=32)
    if size > 64:
        raise InputError(
            f"size must be from 32 to 64 (the parts are drawn for that range), got {size}."
        )
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or not 2 <= num_classes <= len(PART_NAMES)
    ):
        raise InputError(
            f"num_classes must be an integer from 2 to {len(PART_NAMES)}, got {num_classes!r}."
        )
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, size, size), np.uint8)
    labels = np.empty(n, np.int64)
    for c, s in enumerate(range(0, n, _CHUNK)):
        e = min(s + _CHUNK, n)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, size, num_classes, c, _TAG])
        images[s:e], masks[s:e], labels[s:e] = _chunk(rng, _CHUNK, size, num_classes, e - s)
    return ImageDataset(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        list(PART_NAMES[:num_classes]),
        torch.from_numpy(masks),
        name="parts",
    )


def _alpha(kind: str, xx, yy, cx, cy, ang, length, size: int) -> np.ndarray:
    """Anti-aliased coverage (b, size, size) of a bar or a dot from its signed distance."""
    if kind == "bar":
        u, v = _rotate(xx - cx, yy - cy, ang)
        d = np.maximum(np.abs(u) - 0.5 * length, np.abs(v) - _HALF_T * length)
    else:
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) - _DOT_R * length
    return np.clip(0.5 - d * size, 0.0, 1.0).astype(np.float32)


def _chunk(
    rng: np.random.Generator, b_full: int, size: int, k: int, b: int
) -> tuple[np.ndarray, ...]:
    """Make one chunk; parameters are drawn for ``b_full`` images so prefixes do not depend on n."""
    labels = np.argsort(rng.random((b_full // k + 1, k)), axis=1).ravel()[:b].astype(np.int64)
    params = rng.random((b_full, 24)).astype(np.float32)[:b]
    noise_seeds = rng.integers(2**31, size=2)
    extra = rng.random((4, b_full, 8, 6)).astype(np.float32)[
        :, :b
    ]  # distractors: 8 candidate spots each
    yy, xx = np.meshgrid(
        np.arange(size, dtype=np.float32) + 0.5,
        np.arange(size, dtype=np.float32) + 0.5,
        indexing="ij",
    )
    yy, xx = yy[None] / size, xx[None] / size
    P = [params[:, i, None, None] for i in range(params.shape[1])]

    # background: the cluttered one of shapes
    c1 = _hsv(P[0], 0.2 + 0.5 * P[1], 0.25 + 0.45 * P[2])
    c2 = _hsv(P[3], 0.2 + 0.5 * P[4], 0.25 + 0.45 * P[5])
    ang = P[6] * np.pi
    freq = 2.0 + 6.0 * P[7]
    stripes = 0.5 + 0.5 * np.sin(
        2 * np.pi * freq * (xx * np.cos(ang) + yy * np.sin(ang)) + 2 * np.pi * P[8]
    )
    img = c2 + (c1 - c2) * stripes[:, None]
    coarse = np.random.default_rng(noise_seeds[0]).standard_normal((b, 3, 6, 6), dtype=np.float32)
    img += (
        0.08
        * F.interpolate(
            torch.from_numpy(coarse), size=(size, size), mode="bicubic", align_corners=False
        ).numpy()
    )

    # the object's pose: scale, rotation, mirror, centre
    length = (_SCALE[0] + (_SCALE[1] - _SCALE[0]) * params[:, 9]).astype(np.float32)  # (b,)
    theta = params[:, 10] * 2 * np.pi
    mirror = np.where(params[:, 11] < 0.5, -1.0, 1.0).astype(np.float32)
    margin = _EXTENT * length + 0.02
    cx = margin + (1 - 2 * margin) * params[:, 12]
    cy = margin + (1 - 2 * margin) * params[:, 13]
    layout = _LAYOUTS[labels].copy()  # (b, 3, 3)
    layout[:, :, 1] *= mirror[:, None]
    layout[:, :, 2] *= mirror[:, None]
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    px = cx[:, None] + length[:, None] * (layout[:, :, 0] * cos - layout[:, :, 1] * sin)
    py = cy[:, None] + length[:, None] * (layout[:, :, 0] * sin + layout[:, :, 1] * cos)
    pang = theta[:, None] + layout[:, :, 2]

    def col(h, s, v):
        return _hsv(
            h[:, None, None], (0.55 + 0.45 * s)[:, None, None], (0.75 + 0.25 * v)[:, None, None]
        )

    # distractors: 1 wherever it fits, up to 2 more; bars or dots in their own colours, clear of the object
    L = length[:, None, None]
    for j in range(_DISTRACTORS[1]):
        q = extra[j]  # (b, 8, 6): x, y, angle, kind+active, hue, saturation/value
        qx = 0.04 + 0.92 * q[:, :, 0]
        qy = 0.04 + 0.92 * q[:, :, 1]
        clear = np.hypot(qx - cx[:, None], qy - cy[:, None]) > (_EXTENT + 0.55) * length[:, None]
        first = np.argmax(clear, axis=1)
        pick = np.arange(b)
        dx, dy = qx[pick, first], qy[pick, first]
        active = clear[pick, first] & ((q[pick, 0, 3] < 0.5) | (j < _DISTRACTORS[0]))
        kind_bar = (q[pick, 0, 3] * 2) % 1.0 < 0.5
        a_bar = _alpha(
            "bar",
            xx,
            yy,
            dx[:, None, None],
            dy[:, None, None],
            (q[pick, first, 2] * np.pi)[:, None, None],
            L,
            size,
        )
        a_dot = _alpha("dot", xx, yy, dx[:, None, None], dy[:, None, None], 0.0, L, size)
        alpha = np.where(kind_bar[:, None, None], a_bar, a_dot) * active[:, None, None]
        colour = col(q[pick, 0, 4], q[pick, 0, 5], q[pick, 1, 5])
        img += alpha[:, None] * (colour - img)

    # the object: three parts in one colour
    cover = np.zeros((b, size, size), np.float32)
    for i, kind in enumerate(("bar", "bar", "dot")):
        a = _alpha(
            kind,
            xx,
            yy,
            px[:, i, None, None],
            py[:, i, None, None],
            pang[:, i, None, None],
            L,
            size,
        )
        cover = np.maximum(cover, a)
    colour = col(params[:, 14], params[:, 15], params[:, 16])
    img += cover[:, None] * (colour - img)
    pixel_noise = np.random.default_rng(noise_seeds[1]).standard_normal(img.shape, dtype=np.float32)
    img += (0.02 + 0.04 * P[17][:, None]) * pixel_noise
    np.clip(img, 0.0, 1.0, out=img)
    return img.astype(np.float32), (cover >= 0.5).astype(np.uint8), labels
