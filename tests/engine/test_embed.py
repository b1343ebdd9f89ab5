"""Sample embedding g = M f (paper Sec. 3.2; claims 1-2 of docs/reproduction.md): fidelity on synthetic
class clusters, the strength/uncertainty correlation, the closed-form π and μ against numpy,
determinism, numerics at the edges, and the raw-array entry point ``pv.embed_features``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import patternviz_widget as pv
from patternviz_widget.engine.method import embed as E
from patternviz_widget.engine.method import kappa as kp
from patternviz_widget.engine.method.metrics import entropy, kl_rows, softmax_t
from patternviz_widget.errors import InputError


def clusters(n: int = 200, classes: int = 5, d: int = 24, seed: int = 0):
    """A stand-in for a trained network's penultimate layer: f_i = s_i·proto_{y_i} + noise with a
    per-sample strength s_i, and logits z = W f read from the features (W = the prototypes), so
    the network's certainty grows with s_i and P(Y|x) = softmax(z/4)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    proto = np.linalg.qr(rng.normal(size=(d, classes)))[0].T  # orthonormal class prototypes
    s = rng.uniform(0.3, 6.0, size=n)
    f = s[:, None] * proto[y] + 0.3 * rng.normal(size=(n, d))
    logits = 4.0 * f @ proto.T
    return f, logits, y


def uniform_kl(p: np.ndarray) -> float:
    return float(kl_rows(p, np.full_like(p, 1.0 / p.shape[1])).mean())


def numpy_posterior(g, mu, pi, kappa_max=10.0):
    """Q(y|g) = π_y exp(κ(‖g‖) μ_yᵀ g/‖g‖) / Σ (…), κ(l) = min(κ_max, l), written in numpy."""
    n = np.linalg.norm(g, axis=1)
    o = g / (n[:, None] + 1e-8)
    z = np.minimum(kappa_max, n)[:, None] * (o @ mu.T) + np.log(pi)[None, :]
    z -= z.max(1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(1, keepdims=True)


@pytest.fixture(scope="module")
def fitted():
    f, logits, y = clusters()
    p = softmax_t(logits, 4.0)
    emb = E.fit_sample_embedding(f, p, labels=y)  # the paper's defaults: 2000 SGD steps, s = 40
    return f, p, y, emb


def test_fit_reproduces_the_networks_posterior_on_separated_clusters(fitted):
    """Claim 1: argmax Q = argmax P for almost all samples, and the mean KL(P‖Q) is far below the
    uniform posterior's."""
    f, p, y, emb = fitted
    q = numpy_posterior(
        emb.g.astype(np.float64), emb.mu.astype(np.float64), emb.pi.astype(np.float64)
    )
    agree = float((q.argmax(1) == p.argmax(1)).mean())
    kl, kl_u = float(kl_rows(p, q).mean()), uniform_kl(p)
    print(f"argmax agreement {agree:.3f}, mean KL {kl:.4f} vs uniform {kl_u:.4f}")
    confident = p.max(1) > 2.0 / p.shape[1]  # P not near-uniform (its argmax is not noise)
    agree_confident = float((q.argmax(1) == p.argmax(1))[confident].mean())
    print(
        f"argmax agreement where max P > 2/K ({int(confident.sum())} samples): {agree_confident:.3f}"
    )
    assert agree >= 0.93  # measured 0.96: the misses are samples with near-uniform P
    assert agree_confident >= 0.98  # measured 0.994 (1 miss in 181)
    assert kl < 0.2 * kl_u
    # the record's own numbers are the same quantities
    assert emb.kl == pytest.approx(kl, rel=1e-3, abs=1e-5)
    m = emb.params["metrics"]
    assert m["argmax_agreement"] == pytest.approx(agree)
    assert m["kl_uniform"] == pytest.approx(kl_u)
    assert (
        emb.g.shape == (f.shape[0], 3) and emb.mu.shape == (5, 3) and emb.M.shape == (3, f.shape[1])
    )
    # M includes the controller: g = f @ M.T
    np.testing.assert_allclose(f @ emb.M.astype(np.float64).T, emb.g, rtol=1e-4, atol=1e-4)


def test_strength_tracks_certainty(fitted):
    """Claim 2: Pearson r(‖g‖, H(P)) is clearly negative (paper: −0.84 … −0.95)."""
    _, p, _, emb = fitted
    norms = np.linalg.norm(emb.g.astype(np.float64), axis=1)
    r = float(np.corrcoef(norms, entropy(p))[0, 1])
    print(f"r(|g|, H(P)) = {r:.3f}")
    assert r < -0.7
    assert emb.params["metrics"]["r_strength_entropy"] == pytest.approx(r, abs=1e-6)


def test_closed_form_pi_and_mu_match_numpy(fitted):
    """Paper Sec. 3.2: π_y = mean_x P(y|x); μ_y ∝ Σ_x P(y|x) κ(‖g_x‖) g_x/‖g_x‖ (unit rows)."""
    f, p, _, emb = fitted
    np.testing.assert_allclose(emb.pi, p.mean(0), rtol=1e-6)
    g = emb.g.astype(np.float64)
    n = np.linalg.norm(g, axis=1)
    raw = (p * np.minimum(10.0, n)[:, None]).T @ (g / n[:, None])
    mu = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(emb.mu, mu, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb.mu, axis=1), 1.0, atol=1e-6)
    # and inside the objective, at an arbitrary M: same μ, same π, same summed KL
    rng = np.random.default_rng(3)
    w = torch.as_tensor(rng.normal(size=(3, f.shape[1])))
    f_s = torch.as_tensor(f) / 40.0
    loss, g_t, mu_t, log_pi = E.sample_objective(w, f_s, torch.as_tensor(p), kp.LinearKappa(10.0))
    g2 = f_s.numpy() @ w.numpy().T
    n2 = np.linalg.norm(g2, axis=1)
    raw2 = (p * np.minimum(10.0, n2)[:, None]).T @ (g2 / n2[:, None])
    mu2 = raw2 / np.linalg.norm(raw2, axis=1, keepdims=True)
    np.testing.assert_allclose(mu_t.numpy(), mu2, atol=1e-7)  # eps 1e-8 in g/(‖g‖+eps)
    np.testing.assert_allclose(np.exp(log_pi.numpy()), p.mean(0), rtol=1e-12)
    q2 = numpy_posterior(g2, mu2, p.mean(0))
    assert float(loss) == pytest.approx(float(kl_rows(p, q2).sum()), rel=1e-9)


@pytest.mark.parametrize(
    "kappa",
    [kp.LinearKappa(10.0), kp.TableKappa(np.array([0.0, 1.0, 4.0]), np.array([0.0, 3.0, 5.0]))],
)
def test_closed_form_gradient_is_the_gradient_of_the_objective(kappa):
    """The fit's step uses ∂KL/∂M written out (no graph); it must be autograd's, κ table included,
    at an arbitrary M and on a row of zeros (κ = 0 there)."""
    f, logits, _ = clusters(n=90, seed=4)
    f[5] = 0.0
    p = torch.as_tensor(softmax_t(logits, 4.0))
    f_s = torch.as_tensor(f) / 40.0
    w = torch.as_tensor(np.random.default_rng(5).normal(size=(3, f.shape[1]))).requires_grad_(True)
    loss, *_ = E.sample_objective(w, f_s, p, kappa)
    loss.backward()
    with torch.no_grad():
        kl, grad = E.sample_loss_and_grad(w, f_s, p, kappa)
    assert float(kl) == pytest.approx(float(loss.detach()), rel=1e-13)
    assert torch.isfinite(grad).all()
    scale = float(w.grad.abs().max())
    assert scale > 0
    assert float((grad - w.grad).abs().max()) <= 1e-12 * scale


def test_fit_follows_torch_sgd_on_the_autograd_gradient():
    """The fit's own momentum SGD is torch.optim.SGD's update: 2000 steps of both from the same
    start give the same M (the loop before the closed-form step, written here as the reference)."""
    f, logits, y = clusters(n=150, seed=6)
    p = softmax_t(logits, 4.0)
    emb = E.fit_sample_embedding(f, p, steps=2000, seed=3)
    kfun = kp.LinearKappa(10.0)
    w = (
        torch.randn(3, f.shape[1], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        * 0.1
    )
    w.requires_grad_(True)
    f_s, p_t = torch.as_tensor(f) / 40.0, torch.as_tensor(p)
    opt = torch.optim.SGD([w], lr=1e-3, momentum=0.9, weight_decay=5e-4)
    for _ in range(2000):
        opt.zero_grad(set_to_none=True)
        loss, *_ = E.sample_objective(w, f_s, p_t, kfun)
        loss.backward()
        opt.step()
    m_ref = w.detach().numpy() / 40.0
    assert np.abs(m_ref).max() > 0.1  # it moved from its N(0, 0.1²/40²) start
    np.testing.assert_allclose(emb.M, m_ref, rtol=1e-5, atol=1e-6)  # M is stored as float32
    assert emb.kl == pytest.approx(float(loss) / len(f), rel=1e-3)


def test_fit_is_bit_identical_under_a_seed():
    f, logits, y = clusters(n=120, seed=1)
    p = softmax_t(logits, 4.0)
    a = E.fit_sample_embedding(f, p, steps=300, seed=7)
    b = E.fit_sample_embedding(f, p, steps=300, seed=7)
    c = E.fit_sample_embedding(f, p, steps=300, seed=8)
    for name in ("g", "mu", "pi", "M"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.kl == b.kl
    assert not np.array_equal(a.M, c.M)  # the seed is used


def _finite(emb) -> bool:
    return all(
        np.isfinite(np.asarray(getattr(emb, k))).all() for k in ("g", "mu", "pi", "M")
    ) and np.isfinite(emb.kl)


def test_numerics_huge_norms_zero_rows_one_class_and_wide_features():
    f, logits, y = clusters(n=60, seed=2)
    p = softmax_t(logits, 4.0)
    # huge norms: κ is capped, the direction is unchanged, nothing overflows
    huge = E.fit_sample_embedding(f * 1e6, p, steps=200)
    assert _finite(huge)
    assert (
        float(
            (
                numpy_posterior(
                    huge.g.astype(np.float64),
                    huge.mu.astype(np.float64),
                    huge.pi.astype(np.float64),
                ).argmax(1)
                == p.argmax(1)
            ).mean()
        )
        > 0.8
    )
    # zero rows (and an all-zero matrix): g = 0 there, everything finite
    fz = f.copy()
    fz[:7] = 0.0
    zero_rows = E.fit_sample_embedding(fz, p, steps=200)
    assert _finite(zero_rows) and np.all(zero_rows.g[:7] == 0)
    assert _finite(E.fit_sample_embedding(np.zeros_like(f), p, steps=50))
    # a single class present among K = 3 outputs, and K = 1
    one = np.zeros((40, 3))
    one[:, 0] = 5.0
    rng = np.random.default_rng(0)
    single = E.fit_sample_embedding(
        rng.normal(size=(40, 8)), softmax_t(one + rng.normal(size=(40, 3)), 4.0), steps=100
    )
    assert _finite(single)
    k1 = E.fit_sample_embedding(rng.normal(size=(40, 8)), np.ones((40, 1)), steps=50)
    assert _finite(k1) and k1.kl == pytest.approx(0.0, abs=1e-9)  # Q = P = 1
    # D much larger than N
    wide_f = rng.normal(size=(12, 500))
    wide = E.fit_sample_embedding(wide_f, softmax_t(rng.normal(size=(12, 4)) * 5, 4.0), steps=200)
    assert _finite(wide) and wide.M.shape == (3, 500)


def test_embed_features_on_raw_arrays():
    f, logits, y = clusters(n=100, classes=4, d=10, seed=4)
    emb = pv.embed_features(f, logits, y, steps=300)
    assert emb.method == "paper" and emb.g.shape == (100, 3) and emb.mu.shape == (4, 3)
    assert emb.params["temperature"] == 4.0
    assert emb.params["metrics"]["argmax_agreement"] > 0.9
    # probabilities are read as such: softmax(z) gives the same targets as z (P ∝ p^(1/T))
    probs = softmax_t(logits, 1.0)
    same = pv.embed_features(f, probs, y, steps=300)
    np.testing.assert_allclose(same.g, emb.g, rtol=1e-4, atol=1e-4)
    # another temperature changes the targets
    t1 = pv.embed_features(f, logits, y, steps=300, temperature=1.0)
    assert t1.params["temperature"] == 1.0
    assert not np.allclose(t1.pi, emb.pi, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "features, logits, labels, match",
    [
        (np.zeros(10), np.zeros((10, 3)), None, "N×D"),
        (np.zeros((10, 4)), np.zeros((9, 3)), None, "rows"),
        (np.zeros((10, 4)), np.zeros(10), None, "N×K"),
        (np.zeros((10, 4)), np.zeros((10, 3)), np.zeros(9), "labels"),
        (np.full((10, 4), np.nan), np.zeros((10, 3)), None, "NaN"),
        (np.zeros((10, 4)), np.full((10, 3), np.inf), None, "NaN or Inf"),
    ],
)
def test_embed_features_rejects_bad_input_with_a_clear_error(features, logits, labels, match):
    with pytest.raises(InputError, match=match):
        pv.embed_features(features, logits, labels, steps=5)


def test_bad_hyper_parameters_raise():
    f, logits, _ = clusters(n=20, seed=5)
    with pytest.raises(InputError, match="temperature"):
        pv.embed_features(f, logits, temperature=0.0, steps=5)
    with pytest.raises(InputError, match="controller"):
        pv.embed_features(f, logits, controller=-1.0, steps=5)
    with pytest.raises(InputError, match="init M"):
        pv.embed_features(f, logits, init=np.zeros((3, 2)), steps=5)
