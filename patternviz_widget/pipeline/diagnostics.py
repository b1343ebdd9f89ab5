"""What a fit did, and whether its knowledge points can mean anything (``study.diagnostics()``).

Per embedded key: the importance loss at the first and last step and how far the fitted region
weights w moved from uniform (a fit whose loss rose returns its uniform start: w then does
nothing), the regional fit's loss per epoch, and two checks of the posterior the fit reproduces:

* ``kl_to_uniform`` — the mean KL(P(Y|x) ‖ uniform) of the probe images, P = softmax(z/T). Near 0
  the network does not tell the classes apart yet (e.g. after a few dozen steps of training).
* ``min_cos_mu`` — the smallest pairwise cos(μ_a, μ_b) of the class directions. Near 1 every μ_c
  coincides, every region's posterior is uniform, and "0 knowledge points" is true by
  construction, not a finding.

Either one makes the key *degenerate*: :func:`degenerate_reason` says why in words a reader can
act on, and the knowledge-point views print it instead of a count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from patternviz_widget.defaults import TEMPERATURE
from patternviz_widget.engine.method.embed import as_target_probs
from patternviz_widget.results.keys import SAMPLE, Key
from patternviz_widget.results.records import (
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
    SampleRecord,
)

#: mean KL(P ‖ uniform) below this share of log K: the posterior is near uniform
NEAR_UNIFORM_SHARE = 0.02
#: min_{a≠b} cos(μ_a, μ_b) above this: the class directions coincide
MU_COLLAPSE_COS = 0.999


@dataclass
class KeyDiagnostics:
    """Diagnostics of one embedded key (see the module docstring for each number)."""

    key: Key
    kl_to_uniform: float
    kl_to_uniform_max: float
    min_cos_mu: float | None
    importance_loss_first: float | None = None
    importance_loss_last: float | None = None
    importance_loss_best: float | None = None
    w_from_uniform: float | None = None
    region_loss: list[float] = field(default_factory=list)
    kappa_m: float | None = None
    reason: str | None = None

    @property
    def degenerate(self) -> bool:
        """True when the key's knowledge points are empty by construction (see :attr:`reason`)."""
        return self.reason is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "kl_to_uniform": self.kl_to_uniform,
            "kl_to_uniform_max": self.kl_to_uniform_max,
            "min_cos_mu": self.min_cos_mu,
            "importance_loss_first": self.importance_loss_first,
            "importance_loss_last": self.importance_loss_last,
            "importance_loss_best": self.importance_loss_best,
            "w_from_uniform": self.w_from_uniform,
            "region_loss": list(self.region_loss),
            "kappa_m": self.kappa_m,
            "degenerate": self.degenerate,
            "reason": self.reason,
        }


class Diagnostics(list):
    """A list of :class:`KeyDiagnostics` that prints as a table (text and notebook HTML)."""

    _COLS = (
        "key",
        "KL(P‖U)",
        "min cos μ",
        "imp. loss first→last",
        "w from uniform",
        "region loss first→last",
        "note",
    )

    def rows(self) -> list[tuple[str, ...]]:
        out = []
        for d in self:
            imp = (
                f"{d.importance_loss_first:.3f} → {d.importance_loss_last:.3f}"
                if d.importance_loss_first is not None
                else "–"
            )
            reg = f"{d.region_loss[0]:.3f} → {d.region_loss[-1]:.3f}" if d.region_loss else "–"
            out.append(
                (
                    str(d.key),
                    f"{d.kl_to_uniform:.3f} / {d.kl_to_uniform_max:.2f}",
                    "–" if d.min_cos_mu is None else f"{d.min_cos_mu:.4f}",
                    imp,
                    "–" if d.w_from_uniform is None else f"{d.w_from_uniform:.3f}",
                    reg,
                    d.reason or "",
                )
            )
        return out

    def __repr__(self) -> str:
        rows = [self._COLS, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self._COLS))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self._COLS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def posterior_kl_to_uniform(logits: np.ndarray, temperature: float) -> float:
    """Return the mean over images of KL(softmax(z/T) ‖ uniform) = log K − H(P)."""
    p = as_target_probs(logits, temperature, "logits").astype(np.float64)
    k = p.shape[1]
    ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(1)
    return float(np.mean(np.log(k) - ent)) if p.size else 0.0


def min_pairwise_cos(mu: np.ndarray) -> float | None:
    """Return min over a ≠ b of cos(μ_a, μ_b) (None for fewer than two classes)."""
    m = np.asarray(mu, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 2:
        return None
    u = m / np.clip(np.linalg.norm(m, axis=1, keepdims=True), 1e-12, None)
    c = u @ u.T
    return float(c[np.triu_indices(len(c), 1)].min())


def degenerate_reason(kl_to_uniform: float, n_classes: int, min_cos_mu: float | None) -> str | None:
    """Return why knowledge points of this key are empty by construction, or None."""
    if n_classes >= 2 and kl_to_uniform < NEAR_UNIFORM_SHARE * np.log(n_classes):
        return (
            "posterior near uniform: classes not separated yet "
            f"(mean KL(P‖uniform) = {kl_to_uniform:.3g} of at most {np.log(n_classes):.2f}); "
            "train longer before reading knowledge points"
        )
    if min_cos_mu is not None and min_cos_mu > MU_COLLAPSE_COS:
        return (
            f"class directions coincide (min cos(μ_a, μ_b) = {min_cos_mu:.4f}): every region's "
            "posterior is uniform; train longer before reading knowledge points"
        )
    return None


def key_diagnostics(store: Any, key: Key, temperature: float) -> KeyDiagnostics:
    """Return the :class:`KeyDiagnostics` of one key (a region layer or SAMPLE) of ``store``."""
    sk = key.replace(layer=SAMPLE)
    clean = sk.replace(condition="clean")
    logits = store.get(sk, SampleRecord).logits
    k = int(np.asarray(logits).shape[1])
    kl = posterior_kl_to_uniform(logits, temperature)
    frame = sk if store.has(sk, SampleEmbedding) else clean
    mu = store.get(frame, SampleEmbedding).mu if store.has(frame, SampleEmbedding) else None
    mcos = min_pairwise_cos(mu) if mu is not None else None
    if (
        store.has(clean, SampleRecord) and clean != sk
    ):  # projected conditions: judged by the clean fit
        kl_ref = posterior_kl_to_uniform(store.get(clean, SampleRecord).logits, temperature)
    else:
        kl_ref = kl
    d = KeyDiagnostics(
        key=key,
        kl_to_uniform=kl,
        kl_to_uniform_max=float(np.log(k)),
        min_cos_mu=mcos,
        reason=degenerate_reason(kl_ref, k, mcos),
    )
    if key.layer != SAMPLE and store.has(key, RegionEmbedding):
        emb = store.get(key, RegionEmbedding)
        hist = [float(x) for x in emb.params.get("importance_loss_per_step", [])]
        if hist:
            d.importance_loss_first, d.importance_loss_last = hist[0], hist[-1]
            d.importance_loss_best = float(min(hist))
        d.region_loss = [float(x) for x in emb.params.get("loss_per_epoch", [])]
        d.kappa_m = emb.params.get("kappa_m_effective", emb.params.get("kappa_m"))
        if store.has(key, RegionRecord) and np.asarray(emb.w).size:
            img = np.asarray(store.get(key, RegionRecord).image, dtype=np.int64)
            w = np.asarray(emb.w, dtype=np.float64)
            counts = np.bincount(img)
            dev = np.abs(w - 1.0 / np.maximum(counts[img], 1))
            per_image = np.bincount(img, weights=dev)
            d.w_from_uniform = float(per_image[counts > 0].mean())
    return d


def study_diagnostics(store: Any, temperature: float = TEMPERATURE) -> Diagnostics:
    """Return the :class:`Diagnostics` of every embedded key of ``store``, in key order."""
    keys = set(store.find(SampleEmbedding)) | set(store.find(RegionEmbedding))
    keys = {k for k in keys if store.has(k.replace(layer=SAMPLE), SampleRecord)}
    order = sorted(keys, key=Key.fit_order)
    return Diagnostics(key_diagnostics(store, k, temperature) for k in order)
