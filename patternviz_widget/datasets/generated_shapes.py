"""Generated "shapes": coloured shapes on textured, cluttered backgrounds, with foreground masks.

Each image has one class shape (random position, size, rotation and colour) drawn over a background
of two-colour stripes (random angle and frequency), smooth colour noise and 2-4 distractor blobs
(elongated ellipses and soft Gaussian blobs, never a class shape), then pixel noise on top. The mask
is 1 exactly on the class shape's pixels. Colour carries no class information. Everything is
vectorised numpy, deterministic from ``seed`` for any ``n`` and ``size``: the same (seed, size,
num_classes) gives the same first images whatever ``n`` is, because images are made in chunks of
1,000 with per-chunk seeds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._validate import check_positive_int
from ..errors import InputError
from .base import ImageDataset

#: Class names in label order; ``num_classes`` takes the first ones.
SHAPE_NAMES = ("circle", "square", "triangle", "star", "cross", "ring", "crescent", "heart")
_CHUNK = 1000


def shapes(n: int = 2000, size: int = 64, num_classes: int = 6, seed: int = 0) -> ImageDataset:
    """Return ``n`` generated images as an :class:`ImageDataset` (3×size×size float32 in [0, 1],
    uint8 masks N×size×size; classes in random order, balanced to within one image per class
    in every 1,000).

    Args:
        n: number of images.
        size: side length in pixels (>= 16).
        num_classes: 5 to 8; the first names of :data:`SHAPE_NAMES`.
        seed: everything follows from it (use another seed for a test set).

    Example:
        >>> import patternviz_widget as pv
        >>> ds = pv.datasets.shapes(n=100, size=32, seed=1)
        >>> ds.class_names[:3], tuple(ds.masks.shape)
        (['circle', 'square', 'triangle'], (100, 32, 32))
    """
    n = check_positive_int(n, "n")
    size = check_positive_int(size, "size", minimum=16)
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or not 5 <= num_classes <= len(SHAPE_NAMES)
    ):
        raise InputError(
            f"num_classes must be an integer from 5 to {len(SHAPE_NAMES)}, got {num_classes!r}."
        )
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, size, size), np.uint8)
    labels = np.empty(n, np.int64)
    for c, s in enumerate(range(0, n, _CHUNK)):
        e = min(s + _CHUNK, n)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, size, num_classes, c])
        images[s:e], masks[s:e], labels[s:e] = _chunk(rng, _CHUNK, size, num_classes, e - s)
    return ImageDataset(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        list(SHAPE_NAMES[:num_classes]),
        torch.from_numpy(masks),
        name="shapes",
    )


def _chunk(
    rng: np.random.Generator, b_full: int, size: int, k: int, b: int
) -> tuple[np.ndarray, ...]:
    """Make one chunk; parameters are drawn for ``b_full`` images so prefixes do not depend on n."""
    # labels: a random permutation of the k classes for every run of k images, so any prefix is
    # balanced to within one image per class (per chunk)
    labels = np.argsort(rng.random((b_full // k + 1, k)), axis=1).ravel()[:b].astype(np.int64)
    params = rng.random((b_full, 32)).astype(np.float32)[:b]  # uniform draws for every parameter
    noise_seeds = rng.integers(2**31, size=2)
    extra = rng.random((4, b_full, 9)).astype(np.float32)[:, :b]  # distractor parameters
    yy, xx = np.meshgrid(
        np.arange(size, dtype=np.float32) + 0.5,
        np.arange(size, dtype=np.float32) + 0.5,
        indexing="ij",
    )
    yy, xx = yy[None] / size, xx[None] / size  # coordinates in [0, 1]
    P = [params[:, i, None, None] for i in range(params.shape[1])]

    # background: two-colour stripes + smooth colour noise
    c1 = _hsv(P[0], 0.2 + 0.5 * P[1], 0.25 + 0.45 * P[2])
    c2 = _hsv(P[3], 0.2 + 0.5 * P[4], 0.25 + 0.45 * P[5])
    ang = P[6] * np.pi
    freq = 2.0 + 6.0 * P[7]
    stripes = 0.5 + 0.5 * np.sin(
        2 * np.pi * freq * (xx * np.cos(ang) + yy * np.sin(ang)) + 2 * np.pi * P[8]
    )
    img = c2 + (c1 - c2) * stripes[:, None]
    coarse = np.random.default_rng(noise_seeds[0]).standard_normal((b, 3, 6, 6), dtype=np.float32)
    coarse = torch.from_numpy(coarse)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).numpy()
    img += 0.08 * smooth

    # distractors: elongated ellipses and soft blobs (never a class shape)
    for j in range(4):
        q = extra[j]
        Q = [q[:, i, None, None] for i in range(9)]
        active = (q[:, 0] < (0.5 + 0.5 * (j < 2)))[:, None, None]  # 2 always, up to 2 more
        u, v = _rotate(xx - Q[1], yy - Q[2], Q[3] * np.pi)
        a = 0.06 + 0.12 * Q[4]
        if j % 2 == 0:  # ellipse with axis ratio 2.5-4: clearly not a circle
            inside = (u / a) ** 2 + (v / (a / (2.5 + 1.5 * Q[5]))) ** 2 < 1
            alpha = inside.astype(np.float32) * (0.6 + 0.4 * Q[6])
        else:  # soft Gaussian blob
            alpha = np.exp(-((u**2 + v**2) / (2 * a**2))) * (0.5 + 0.4 * Q[6])
        alpha = (alpha * active)[:, None]
        col = _hsv(Q[7], 0.4 + 0.6 * Q[8], 0.5 + 0.5 * Q[6])
        img += alpha * (col - img)

    # the class shape
    r = (0.15 + 0.15 * P[9]).astype(np.float32)  # radius as a share of the side
    m = 1.15 * r  # margin: every shape stays inside the image
    cx = m + (1 - 2 * m) * P[10]
    cy = m + (1 - 2 * m) * P[11]
    u, v = _rotate(xx - cx, yy - cy, P[12] * 2 * np.pi)
    u, v = u / r, v / r
    mask = np.zeros((b, size, size), bool)
    for c in range(k):
        sel = labels == c
        if sel.any():
            mask[sel] = _inside(c, u[sel], v[sel])
    colour = _hsv(P[13], 0.6 + 0.4 * P[14], 0.7 + 0.3 * P[15])
    shade = 1.0 + 0.15 * (u * np.cos(P[16] * 6.28) + v * np.sin(P[16] * 6.28))[:, None]
    img = np.where(mask[:, None], colour * shade, img)
    pixel_noise = np.random.default_rng(noise_seeds[1]).standard_normal(img.shape, dtype=np.float32)
    img += (0.02 + 0.04 * P[17][:, None]) * pixel_noise
    np.clip(img, 0.0, 1.0, out=img)
    return img.astype(np.float32), mask.astype(np.uint8), labels


def _rotate(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(t), np.sin(t)
    return x * c + y * s, -x * s + y * c


def _inside(c: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test of class ``c`` in shape coordinates (unit radius, rotated)."""
    r = np.sqrt(u**2 + v**2)
    if c == 0:  # circle
        return r < 1
    if c == 1:  # square
        return np.maximum(abs(u), abs(v)) < 0.8
    if c == 2:  # equilateral triangle (outward edge normals at 270°, 30°, 150°)
        h = 0.62
        return (-v < h) & (0.866 * u + 0.5 * v < h) & (-0.866 * u + 0.5 * v < h)
    if c == 3:  # five-pointed star
        a = (np.arctan2(v, u) / (2 * np.pi) * 5) % 1.0
        return r < 0.42 + 0.58 * np.abs(2 * a - 1) ** 1.5
    if c == 4:  # plus-shaped cross
        return ((abs(u) < 0.3) & (abs(v) < 1)) | ((abs(v) < 0.3) & (abs(u) < 1))
    if c == 5:  # ring
        return (r < 1) & (r > 0.55)
    if c == 6:  # crescent
        return (r < 1) & ((u - 0.45) ** 2 + v**2 > 0.75**2)
    x, y = u * 1.4, v * 1.4 + 0.25  # heart: (x²+y²-1)³ - x²y³ < 0
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 < 0


def _hsv(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV -> RGB for arrays of shape (b, 1, 1); returns (b, 3, 1, 1) float32."""
    h6 = (h % 1.0) * 6.0
    rgb = [np.clip(np.abs(((h6 + o) % 6.0) - 3.0) - 1.0, 0.0, 1.0) for o in (0.0, 4.0, 2.0)]
    out = np.stack([v * (1 - s + s * ch) for ch in rgb], axis=1)
    return out.astype(np.float32)
