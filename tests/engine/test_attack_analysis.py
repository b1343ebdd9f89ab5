"""The paper's attack measurements on hand-made embeddings whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from patternviz_widget.engine.attack.analysis import (
    attacked_images,
    kp_shift,
    layer_shift,
    shift,
    trajectory_types,
)

MU = np.eye(3, dtype=np.float32)  # class c points along axis c


def _posterior(h: np.ndarray) -> np.ndarray:
    """softmax_c(κ(‖h‖) μ_cᵀ h/‖h‖) with κ(l) = min(10, 5 l)."""
    n = np.linalg.norm(h, axis=-1, keepdims=True)
    z = np.minimum(10.0, 5.0 * n) * (h @ MU.T) / np.maximum(n, 1e-12)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_shift_of_rotated_and_stretched_points():
    h_c = np.array([[1.0, 0, 0], [0, 2.0, 0]], np.float32)
    h_a = np.array([[0, 1.0, 0], [0, 3.0, 0]], np.float32)  # 90° turn; same direction, +1 length
    d_or, d_st = shift(h_c, h_a, mean_strength=2.0)
    np.testing.assert_allclose(d_or, [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(d_st, [0.0, 0.5], atol=1e-6)


def test_layer_shift_keeps_layer_order_and_rows():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(10, 3)).astype(np.float32)
    out = layer_shift(
        {"low": (h, h, 1.0), "high": (h, -h, 1.0)},
        rows={"high": np.arange(5)},
    )
    assert out.layers == ["low", "high"]
    np.testing.assert_allclose(out.orientation, [0.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(out.strength, [0.0, 0.0], atol=1e-6)
    assert out.per_region_orientation["high"].shape == (5,)


def test_kp_shift_counts_overlap_and_histogram():
    # two images, both class 0, attacked to class 1; 3 regions each
    labels, adv_pred = np.array([0, 0]), np.array([1, 1])
    attacked = attacked_images(labels, clean_pred=np.array([0, 0]), adv_pred=adv_pred)
    assert attacked.tolist() == [True, True]
    image = np.array([0, 0, 0, 1, 1, 1])
    h_clean = np.array(
        [[3, 0, 0], [0, 0.1, 0], [0, 0, 3], [3, 0, 0], [0.1, 0.1, 0.1], [0, 3, 0]], np.float32
    )
    h_adv = np.array([[3, 0, 0], [0, 3, 0], [0, 3, 0], [0, 3, 0], [0, 3, 0], [0, 3, 0]], np.float32)
    out = kp_shift(_posterior(h_clean), _posterior(h_adv), image, labels, adv_pred, attacked, 0.4)
    assert out.ori_before.tolist() == [True, False, False, True, False, False]
    assert out.adv_after.tolist() == [False, True, True, True, True, True]
    assert math.isclose(out.overlap, 1 / 6)
    assert math.isclose(out.adv_was_ori, 1 / 5)
    assert out.p_ori_before.shape == (5,) and out.hist_counts.sum() == 5
    assert math.isclose(out.mean_ori_before, 1.0) and math.isclose(out.mean_adv_after, 2.5)
    assert math.isclose(
        out.share_below_threshold, 4 / 5
    )  # only region 3 was a confident class-0 point


def test_kp_shift_ignores_images_the_attack_did_not_flip():
    labels = np.array([0, 0])
    attacked = attacked_images(labels, np.array([0, 0]), np.array([1, 0]))
    assert attacked.tolist() == [True, False]
    p = _posterior(np.array([[0, 3, 0], [0, 3, 0]], np.float32))
    out = kp_shift(p, p, np.array([0, 1]), labels, np.array([1, 0]), attacked)
    assert out.adv_after.tolist() == [True, False]


def test_trajectory_types_one_of_each():
    T = 5
    lin = np.linspace(0, 1, T)[:, None]
    x, y = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    paths = [
        (1 - lin) * 2 * x
        + lin * 2 * y
        + 0.9 * (lin * (1 - lin) * 4) * (x + y),  # 1: swings at r ≥ 1.4
        np.concatenate([2 * x * (1 - 2 * lin[:3]).clip(0.1), 2 * y * lin[3:]]),  # 2: via the origin
        0.1 * x + lin * 2 * y,  # 3: born from nothing
        (1 - lin) * 2 * x + lin * 0.1 * x,  # 4: vanishes
    ]
    h = np.stack(paths, axis=1).astype(np.float32)  # T×4×3
    out = trajectory_types(
        h, MU, _posterior, mean_strength=1.0,
        image=np.arange(4), labels=np.zeros(4, int), adv_pred=np.ones(4, int), attacked=np.ones(4, bool),
    )  # fmt: skip
    assert out.strength.shape == (T, 4)
    assert out.types.tolist() == [
        [True, False, False, False],
        [False, True, False, False],
        [False, False, True, False],
        [False, False, False, True],
    ]
    assert out.counts.tolist() == [1, 1, 1, 1]


def test_shift_rejects_unpaired_rows():
    with pytest.raises(ValueError, match="rows differ"):
        shift(np.zeros((3, 3)), np.zeros((4, 3)), 1.0)
