"""Low-level image features for baselines: what a network's first layer could read off pixels."""

from __future__ import annotations

import numpy as np


def colour_histogram(x: np.ndarray) -> np.ndarray:
    """N×64: the share of pixels in each cell of a 4×4×4 RGB grid."""
    q = np.clip((x * 4).astype(int), 0, 3)
    idx = q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]
    return np.stack([np.bincount(i.ravel(), minlength=64) for i in idx]) / idx[0].size


def pixel_statistics(x: np.ndarray) -> np.ndarray:
    """N×26: channel means and spreads, gradient-magnitude and edge-orientation histograms, mean
    |Laplacian| and the share of edge pixels."""
    g = x.mean(1)
    gy, gx = np.gradient(g, axis=(1, 2))
    mag, ori = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)
    mag_hist = np.stack([np.histogram(m, bins=8, range=(0, 0.5))[0] for m in mag]) / g[0].size
    ori_hist = np.stack(
        [np.bincount(np.minimum((o * 8 / np.pi).astype(int), 7).ravel(), weights=m.ravel(), minlength=8)
         for o, m in zip(ori, mag)]
    )  # fmt: skip
    ori_hist /= ori_hist.sum(1, keepdims=True) + 1e-9
    lap = np.abs(
        g[:, 2:, 1:-1] + g[:, :-2, 1:-1] + g[:, 1:-1, 2:] + g[:, 1:-1, :-2] - 4 * g[:, 1:-1, 1:-1]
    )
    return np.concatenate(
        [
            x.mean((2, 3)),
            x.std((2, 3)),
            mag_hist,
            ori_hist,
            lap.mean((1, 2))[:, None],
            (mag > 0.1).mean((1, 2))[:, None],
        ],
        axis=1,
    )


def lowlevel_features(x: np.ndarray) -> np.ndarray:
    """Colour histogram and pixel statistics side by side (N×90)."""
    return np.concatenate([colour_histogram(x), pixel_statistics(x)], axis=1)


def object_hue_bins(ds) -> np.ndarray:
    """The object's mean colour (under its mask) as one of 3 hue bins: red, green or blue is largest."""
    x, m = ds.images.numpy(), ds.masks.numpy().astype(bool)
    return np.array([x[i][:, m[i]].mean(axis=1).argmax() for i in range(len(x))])
