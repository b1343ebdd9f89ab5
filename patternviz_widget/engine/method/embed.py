"""The paper's sample embedding g = M f (paper Sec. 3.2) and the public ``embed_features``.

Model: Q_M(y|x) = π_y exp(κ(‖g‖) μ_yᵀ g/‖g‖) / Σ_y' (…), with π and μ recomputed in closed form
at every step from the targets P(Y|x) = softmax(z/T), and M fitted by minimising the summed
KL(P ‖ Q_M). As in the official code the norm in g/‖g‖ and in κ is detached (with the capped
linear κ this makes the gradient exactly that of softmax(a·μᵀg + log π)).

Convention of the stored matrix: ``SampleEmbedding.M`` already includes the controller s, so
``g = f @ M.T`` (i.e. M_stored = M_paper / s). Warm starts (``init=``) use the same convention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from patternviz_widget.engine.method import kappa as kp
from patternviz_widget.engine.method.metrics import sample_report, softmax_t
from patternviz_widget.errors import InputError
from patternviz_widget.results.records import SampleEmbedding

_EPS = 1e-8


@contextlib.contextmanager
def limited_threads(device: torch.device, work: float, small: float = 5e7) -> Iterator[None]:
    """Run small CPU work on one thread (restored after): per-op thread start-up dominates tiny
    matrix products, and on a busy 2-core machine two threads made a sample fit ~30× slower."""
    if device.type != "cpu" or work > small or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_target_probs(
    probs_or_logits: np.ndarray, temperature: float = 4.0, kind: str = "auto"
) -> np.ndarray:
    """Return P(Y|x) = softmax(z/T) as float64 [N, K] from logits, or from probabilities p (then
    P ∝ p^(1/T), the same thing). ``kind``: "auto" (rows ≥ 0 summing to 1 are probabilities),
    "logits" or "probs". T: the paper's temperature (default 4)."""
    a = np.asarray(probs_or_logits, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 1:
        raise InputError(f"probs_or_logits must be N×K, got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise InputError("probs_or_logits contain NaN or Inf. Check the model's outputs.")
    if not (np.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature T must be > 0 (paper: 4), got {temperature!r}.")
    if kind == "auto":
        kind = (
            "probs"
            if a.size and a.min() >= 0 and np.allclose(a.sum(1), 1.0, atol=1e-4)
            else "logits"
        )
    if kind == "probs":
        if a.min() < 0:
            raise InputError("probs must be non-negative; pass kind='logits' for raw scores.")
        a = np.log(np.maximum(a, 1e-300))
    elif kind != "logits":
        raise InputError(f"kind must be 'auto', 'logits' or 'probs', got {kind!r}.")
    return softmax_t(a, temperature)


def check_features(features: np.ndarray, what: str = "features") -> np.ndarray:
    """Return ``features`` as a finite float64 N×D array or raise naming the problem."""
    f = np.asarray(features)
    if f.ndim != 2 or f.shape[0] < 1 or f.shape[1] < 1:
        raise InputError(f"{what} must be an N×D array with N, D >= 1; got shape {f.shape}.")
    f = f.astype(np.float64, copy=False)
    if not np.isfinite(f).all():
        raise InputError(f"{what} contain NaN or Inf. Check the captured activations.")
    return f


def class_directions(o: torch.Tensor, p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Return μ (K×d): μ_c ∝ Σ_x P(c|x) κ(l_x) o_x, unit rows (paper Sec. 3.2 closed form)."""
    raw = (p * k[:, None]).T @ o
    return raw / (raw.norm(dim=1, keepdim=True) + _EPS)


def posterior_logits(
    g: torch.Tensor, mu: torch.Tensor, log_pi: torch.Tensor | None, kappa
) -> torch.Tensor:
    """Return log-unnormalised Q(y|g) = κ(‖g‖)·μ_yᵀ g/‖g‖ (+ log π_y), norms detached as in the official code."""
    n = g.norm(dim=1).detach()
    o = g / (n[:, None] + _EPS)
    logits = kp.evaluate(kappa, n)[:, None] * (o @ mu.T)
    return logits if log_pi is None else logits + log_pi[None, :]


def sample_objective(
    w: torch.Tensor, f_s: torch.Tensor, p: torch.Tensor, kappa
) -> tuple[torch.Tensor, ...]:
    """Return (summed KL(P‖Q_M), g, μ, log π) for projection ``w`` (d×D) of ``f_s`` = f/s."""
    g = f_s @ w.T
    n = g.norm(dim=1).detach()
    o = g / (n[:, None] + _EPS)
    k = kp.evaluate(kappa, n)
    mu = class_directions(o, p, k)
    log_pi = torch.log(p.mean(0).clamp(min=1e-12))
    log_q = torch.log_softmax(k[:, None] * (o @ mu.T) + log_pi[None, :], dim=1)
    kl = (torch.special.xlogy(p, p) - p * log_q).sum()
    return kl, g, mu, log_pi


def fit_sample_embedding(
    features: np.ndarray,
    probs: np.ndarray,
    *,
    steps: int = 2000,
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    controller: float = 40.0,
    kappa: kp.KappaLike = None,
    dim: int = 3,
    init: np.ndarray | None = None,
    init_std: float = 0.1,
    seed: int = 2020,
    device: str | torch.device | None = "cpu",
    labels: np.ndarray | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> SampleEmbedding:
    """Return the paper's :class:`SampleEmbedding` (g, μ, π, M, KL) fitted on raw arrays.

    Args:
        features: float[N, D] sample features f (paper Sec. 3).
        probs: float[N, K] targets P(Y|x) (already softmax(z/T); see :func:`as_target_probs`).
        steps: full-batch SGD steps (paper: 2000).
        lr: SGD learning rate (paper: 1e-3; 1e-4 for warm starts across checkpoints).
        momentum: SGD momentum (paper: 0.9).
        weight_decay: SGD weight decay (paper: 5e-4).
        controller: s in g = M(f/s) (paper: 40).
        kappa: κ(l) (paper Sec. 3.2): None = capped linear with κ_max = 10, a number = κ_max, or a
            callable (see :mod:`patternviz_widget.engine.method.kappa`).
        dim: d, the embedding dimension (paper: 3).
        init: warm-start M (d×D, stored convention g = f @ M.T); None draws M ~ N(0, init_std²).
        init_std: the std of the initial M entries (paper: 0.1, on the unscaled M of g = M(f/s)).
        seed: seeds the initial M (paper: 2020).
        device: where to fit (float64 throughout; N×D is small).
        labels: int[N] true classes, only for the reported ``label_agreement``.
        callback: called as ``callback(step, loss)`` after every step (progress bars).

    Returns:
        SampleEmbedding with ``kl`` = the final mean KL(P‖Q_M) per sample and ``params`` holding
        the hyper-parameters and the metrics of :func:`~.metrics.sample_report`.
    """
    f = check_features(features)
    p_np = np.asarray(probs, dtype=np.float64)
    if p_np.ndim != 2 or p_np.shape[0] != f.shape[0]:
        raise InputError(
            f"probs must be N×K with N = {f.shape[0]} rows (one per feature row); got {p_np.shape}."
        )
    for name, val in (("steps", steps), ("dim", dim)):
        if (
            isinstance(val, bool)
            or not isinstance(val, (int, np.integer))
            or val < (0 if name == "steps" else 1)
        ):
            raise InputError(f"{name} must be a non-negative integer (dim >= 1), got {val!r}.")
    if not (np.isfinite(controller) and controller > 0):
        raise InputError(f"controller s must be > 0 (paper: 40), got {controller!r}.")
    kfun = kp.make_kappa(kappa, kp.SAMPLE_KAPPA_MAX)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    n_dim = f.shape[1]
    if init is None:
        gen = torch.Generator().manual_seed(int(seed))
        w0 = torch.randn(dim, n_dim, generator=gen, dtype=torch.float64) * float(init_std)
    else:
        w0 = torch.as_tensor(np.asarray(init, dtype=np.float64) * controller)
        if w0.shape != (dim, n_dim) or not torch.isfinite(w0).all():
            raise InputError(
                f"init M must be a finite {dim}×{n_dim} array (d×D), got shape {tuple(w0.shape)}."
            )
    w = w0.to(dev).clone()
    f_s = torch.as_tensor(f, device=dev) / float(controller)
    p = torch.as_tensor(p_np, device=dev)
    with torch.no_grad(), limited_threads(dev, f.shape[0] * n_dim * dim):
        _run_sgd(w, f_s, p, kfun, int(steps), lr, momentum, weight_decay, callback)
        loss, g, mu, log_pi = sample_objective(w, f_s, p, kfun)
        q = torch.softmax(posterior_logits(g, mu, log_pi, kfun), dim=1)
    g_np, mu_np, q_np = g.cpu().numpy(), mu.cpu().numpy(), q.cpu().numpy()
    params = {
        "steps": int(steps),
        "lr": float(lr),
        "momentum": float(momentum),
        "weight_decay": float(weight_decay),
        "controller": float(controller),
        "dim": int(dim),
        "init_std": float(init_std),
        "seed": int(seed),
        "warm_start": init is not None,
        "kappa": kp.describe(kfun),
        "M_includes_controller": True,
        "metrics": sample_report(g_np, p_np, q_np, labels=labels, mu=mu_np),
    }
    return SampleEmbedding(
        g=g_np.astype(np.float32),
        mu=mu_np.astype(np.float32),
        pi=np.exp(log_pi.cpu().numpy()).astype(np.float32),
        M=(w.cpu().numpy() / controller).astype(np.float32),
        kl=float(loss) / f.shape[0],
        method="paper",
        params=params,
    )


def sample_loss_and_grad(
    w: torch.Tensor, f_s: torch.Tensor, p: torch.Tensor, kappa, xlogx: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (summed KL(P‖Q_M), its gradient in ``w``) in closed form, equal to autograd of
    :func:`sample_objective` (norms detached, μ differentiated through its normalisation).

    With a_xy = κ_x μ_yᵀ o_x + log π_y, o_x = g_x / ‖g_x‖ and E = (Q − P)·κ: ∂/∂μ = Eᵀ o, back
    through μ = raw/‖raw‖ with raw = (P·κ)ᵀ o, then ∂/∂o = E μ + (P·κ) ∂/∂raw and ∂/∂w = (∂/∂g)ᵀ f/s.
    Without a graph a step is a dozen small products, several times cheaper than a backward pass.
    ``xlogx``: Σ P log P, constant over a fit (computed when None).
    """
    g = f_s @ w.T
    n = torch.linalg.vector_norm(g, dim=1)
    k = kp.evaluate(kappa, n)[:, None]
    c = (n[:, None] + _EPS).reciprocal_()
    o = g * c
    pk = p * k
    raw = pk.T @ o
    nu = torch.linalg.vector_norm(raw, dim=1, keepdim=True)
    inv = (nu + _EPS).reciprocal_()
    mu = raw * inv
    log_pi = torch.log(p.mean(0).clamp(min=1e-12))
    log_q = torch.log_softmax((o @ mu.T).mul_(k).add_(log_pi), dim=1)
    if xlogx is None:
        xlogx = torch.special.xlogy(p, p).sum()
    kl = xlogx - (p * log_q).sum()
    e = log_q.exp_().sub_(p).mul_(k)
    g_mu = e.T @ o
    g_raw = g_mu * inv - raw * (
        (raw * g_mu).sum(1, keepdim=True) * (inv * inv / nu.clamp(min=1e-300))
    )
    g_o = torch.addmm(e @ mu, pk, g_raw).mul_(c)
    return kl, g_o.T @ f_s


def _run_sgd(w, f_s, p, kfun, steps: int, lr, momentum, weight_decay, callback) -> None:
    """Full-batch SGD with momentum and L2 weight decay on ``w`` in place: the update of
    ``torch.optim.SGD`` (d = ∇ + λw; b = m·b + d, b = d at the first step; w −= lr·b)."""
    xlogx = torch.special.xlogy(p, p).sum()
    buf = None
    for step in range(steps):
        loss, grad = sample_loss_and_grad(w, f_s, p, kfun, xlogx)
        grad = grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)  # a guard with no host sync
        if weight_decay:
            grad = grad.add_(w, alpha=weight_decay)
        buf = grad if buf is None else buf.mul_(momentum).add_(grad)
        w.add_(buf, alpha=-lr)
        if callback is not None:
            callback(step, float(loss))


def project_samples(
    features: np.ndarray,
    emb: SampleEmbedding,
    probs: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    temperature: float | None = None,
) -> SampleEmbedding:
    """Return a SampleEmbedding of new features projected with a fitted one's M, μ and π (no fit;
    adversarial inputs and students, as in the paper's attack and distillation experiments).

    Args:
        features: float[N, D] sample features of the new inputs.
        emb: the fitted SampleEmbedding (its M includes the controller: g = f @ M.T).
        probs: the new inputs' network outputs — logits or probabilities, read as in
            :func:`as_target_probs` with temperature T — for the reported KL and agreement.
        labels: int[N] true classes (reported only).
        temperature: T; None uses the embedding's (paper: 4).
    """
    f = check_features(features)
    m = np.asarray(emb.M, dtype=np.float64)
    if m.shape[1] != f.shape[1]:
        raise InputError(f"features have D = {f.shape[1]} but the embedding's M is {m.shape}.")
    g = f @ m.T
    if emb.params.get("offset") is not None:  # centred linear baselines (PCA)
        g = g - np.asarray(emb.params["offset"], np.float64)[None, :]
    params = dict(emb.params, projected=True)
    kl = float("nan")
    if probs is not None:
        t = float(temperature if temperature is not None else emb.params.get("temperature", 4.0))
        p = as_target_probs(probs, t)
        if p.shape[0] != f.shape[0]:
            raise InputError(f"probs have {p.shape[0]} rows, features {f.shape[0]}.")
        q = None
        if emb.method == "paper":
            kfun = kp.from_description(emb.params.get("kappa"), kp.SAMPLE_KAPPA_MAX)
            log_pi = torch.log(torch.as_tensor(np.asarray(emb.pi, np.float64)).clamp(min=1e-12))
            mu = torch.as_tensor(np.asarray(emb.mu, np.float64))
            q = torch.softmax(posterior_logits(torch.as_tensor(g), mu, log_pi, kfun), 1).numpy()
        rep = sample_report(g, p, q, labels=labels, center=emb.method != "paper")
        kl_rep = rep.get("kl")
        kl = float(kl_rep) if isinstance(kl_rep, (int, float)) else float("nan")
        params["metrics"] = rep
    return SampleEmbedding(
        g=g.astype(np.float32),
        mu=np.asarray(emb.mu, np.float32),
        pi=np.asarray(emb.pi, np.float32),
        M=np.asarray(emb.M, np.float32),
        kl=kl,
        method=emb.method,
        params=params,
    )


def embed_features(
    features: np.ndarray,
    probs_or_logits: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    method: str = "paper",
    temperature: float = 4.0,
    kind: str = "auto",
    **hyper,
) -> SampleEmbedding:
    """Return a :class:`SampleEmbedding` of raw arrays: the paper's (Sec. 3.2) or a baseline.

    Args:
        features: float[N, D] sample features (e.g. the input of your classifier head).
        probs_or_logits: float[N, K] the network's logits or probabilities.
        labels: int[N] true classes (reported agreement only; optional).
        method: "paper", "pca", "tsne" or "umap" (the last two need openTSNE / umap-learn).
        temperature: T of P(Y|x) = softmax(z/T) (paper: 4).
        kind: "auto", "logits" or "probs" — how to read ``probs_or_logits``.
        **hyper: hyper-parameters of :func:`fit_sample_embedding` (steps, lr, momentum,
            weight_decay, controller, kappa, dim, init, seed, device) or of the baseline.

    Example:
        >>> import numpy as np, patternviz_widget as pv
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat(np.arange(3), 20)
        >>> f = rng.normal(size=(60, 8)) + 30 * np.eye(8)[y]
        >>> emb = pv.embed_features(f, 10 * np.eye(3)[y], y, steps=200)
        >>> emb.g.shape, emb.mu.shape
        ((60, 3), (3, 3))
    """
    p = as_target_probs(probs_or_logits, temperature, kind)
    f = check_features(features)
    if p.shape[0] != f.shape[0]:
        raise InputError(f"features have {f.shape[0]} rows but probs_or_logits have {p.shape[0]}.")
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).ravel()
        if labels.shape[0] != f.shape[0]:
            raise InputError(f"labels must have {f.shape[0]} entries, got {labels.shape[0]}.")
    if method == "paper":
        emb = fit_sample_embedding(f, p, labels=labels, **hyper)
    else:
        from patternviz_widget.engine.method.baselines import baseline_samples

        emb = baseline_samples(f, p, method=method, labels=labels, **hyper)
    emb.params["temperature"] = float(temperature)
    return emb
