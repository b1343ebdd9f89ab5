"""Procrustes alignment and the warm-start buffer (paper Sec. 3.2, per-checkpoint fit)."""

from __future__ import annotations

import numpy as np
import pytest

from patternviz_widget.engine.method.align import WeightBuffer, apply_rotation, procrustes_rotation
from patternviz_widget.errors import InputError


def _random_orthogonal(rng: np.random.Generator, det: float = 1.0) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.sign(np.linalg.det(q)) != det:
        q[:, 0] = -q[:, 0]
    return q


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2020)


def test_recovers_a_known_rotation(rng):
    previous = rng.normal(size=(200, 3)) * [3.0, 1.5, 0.5]
    q = _random_orthogonal(rng)
    current = previous @ q.T  # the new fit came out rotated by q
    r = procrustes_rotation(current, previous)
    np.testing.assert_allclose(r, q, atol=1e-10)
    np.testing.assert_allclose(current @ r, previous, atol=1e-10)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_reflection_undone_by_default_and_refused_when_proper(rng):
    previous = rng.normal(size=(100, 3)) * [3.0, 1.5, 0.5]
    mirror = _random_orthogonal(rng, det=-1.0)
    current = previous @ mirror.T  # a mirrored fit, which the objective cannot tell apart
    r = procrustes_rotation(current, previous)
    assert np.linalg.det(r) == pytest.approx(-1.0)
    np.testing.assert_allclose(current @ r, previous, atol=1e-10)

    rp = procrustes_rotation(current, previous, proper=True)
    assert np.linalg.det(rp) == pytest.approx(1.0)
    np.testing.assert_allclose(rp @ rp.T, np.eye(3), atol=1e-12)
    # the best rotation cannot undo a mirror: it leaves a real residual
    assert np.linalg.norm(current @ rp - previous) > 0.1 * np.linalg.norm(previous)


def test_second_pass_ignores_the_points_that_moved(rng):
    n = 200
    previous = rng.normal(size=(n, 3))
    q = _random_orthogonal(rng)
    current = previous @ q.T
    movers = rng.choice(n, size=n // 20, replace=False)  # 5 % of points jump far away
    current[movers] += rng.normal(size=(len(movers), 3)) * 20.0

    r_two_pass = procrustes_rotation(current, previous, drop_outliers=0.1)
    r_no_drop = procrustes_rotation(current, previous, drop_outliers=0.0)
    still = np.setdiff1d(np.arange(n), movers)
    err_two_pass = np.linalg.norm(current[still] @ r_two_pass - previous[still], axis=1).mean()
    err_no_drop = np.linalg.norm(current[still] @ r_no_drop - previous[still], axis=1).mean()
    # the unmoved points are put back (cosine pass without outliers => exact up to float error)
    assert err_two_pass < 1e-8
    assert err_no_drop > 100 * err_two_pass + 1e-3
    np.testing.assert_allclose(r_two_pass, q, atol=1e-8)


def test_norms_and_cosines_are_kept(rng):
    current = rng.normal(size=(60, 3))
    previous = rng.normal(size=(60, 3))
    mu = rng.normal(size=(5, 3))
    r = procrustes_rotation(current, previous)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    moved = apply_rotation(r, g=current, mu=mu)
    np.testing.assert_allclose(np.linalg.norm(moved["g"], axis=1), np.linalg.norm(current, axis=1))
    cos_before = (current / np.linalg.norm(current, axis=1, keepdims=True)) @ (
        mu / np.linalg.norm(mu, axis=1, keepdims=True)
    ).T
    g2, mu2 = moved["g"], moved["mu"]
    cos_after = (g2 / np.linalg.norm(g2, axis=1, keepdims=True)) @ (
        mu2 / np.linalg.norm(mu2, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(cos_after, cos_before, atol=1e-12)


def test_apply_rotation_keeps_projection_consistent(rng):
    features = rng.normal(size=(20, 7)).astype(np.float32)
    m = rng.normal(size=(3, 7)).astype(np.float32)
    r = _random_orthogonal(rng)
    out = apply_rotation(r, g=features @ m.T, M=m, h=None)
    assert out["h"] is None
    assert out["M"].dtype == np.float32
    # g = M f as rows: the rotated projection gives the rotated points
    np.testing.assert_allclose(features @ out["M"].T, out["g"], rtol=1e-4, atol=1e-4)


def test_degenerate_and_bad_input(rng):
    zeros = np.zeros((10, 3))
    np.testing.assert_array_equal(procrustes_rotation(zeros, zeros), np.eye(3))
    with pytest.raises(InputError, match="same shape"):
        procrustes_rotation(np.ones((4, 3)), np.ones((5, 3)))
    bad = np.ones((4, 3))
    bad[1, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        procrustes_rotation(bad, np.ones((4, 3)))
    with pytest.raises(InputError, match="drop_outliers"):
        procrustes_rotation(np.ones((4, 3)), np.ones((4, 3)), drop_outliers=1.0)


def test_weight_buffer_means_the_last_three():
    buf = WeightBuffer(3)
    assert buf.mean() is None
    for k in range(5):
        buf.push(np.full((3, 4), float(k)))
    assert len(buf) == 3
    np.testing.assert_array_equal(buf.mean(), np.full((3, 4), 3.0, dtype=np.float32))
    with pytest.raises(InputError, match="one buffer per layer"):
        buf.push(np.zeros((3, 5)))
    with pytest.raises(InputError, match="size"):
        WeightBuffer(0)
    first = np.ones((2, 2))
    buf2 = WeightBuffer(2)
    buf2.push(first)
    first[0, 0] = 99.0  # the buffer keeps a copy
    assert buf2.mean()[0, 0] == 1.0
