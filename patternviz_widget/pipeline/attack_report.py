"""``study.attack_report()``: the paper's attack measurements of a study's last attack.

Reads what :func:`~patternviz_widget.pipeline.attack.run_attack` stored, projects the adversarial
records (and the per-iteration trace) with the **clean** Λ, M and μ when that was not done yet, and
hands the arrays to :mod:`~patternviz_widget.engine.attack.analysis`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from patternviz_widget._validate import check_probability
from patternviz_widget.defaults import THRESHOLD
from patternviz_widget.engine.attack import analysis as aa
from patternviz_widget.errors import InputError, NotFittedError
from patternviz_widget.pipeline.embed import study_knowledge_points
from patternviz_widget.results.keys import SAMPLE, Key
from patternviz_widget.results.records import (
    ArrayRecord,
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
    SampleRecord,
)
from patternviz_widget.results.store import ResultStore

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState

ADV = "adversarial"


@dataclass
class AttackReport:
    """The paper's attack measurements for one attack: ``settings`` (method, ε, success rate, …), ``deltas`` (Δ curves
    over layers, attacked images only), ``kp`` (knowledge points before/after and the p(c_ori)
    histogram at ``layer``) and ``trajectories`` (Types 1–4 at ``layer``, None if not traced)."""

    layer: str
    epoch: int
    settings: dict
    deltas: aa.LayerShift
    kp: aa.KPShift
    trajectories: aa.Trajectories | None

    def table(self) -> str:
        """A plain-text summary of the numbers the paper reports."""
        lines = [
            f"attack {self.settings.get('method')} {self.settings.get('norm')} "
            f"eps={self.settings.get('eps', float('nan')):.4g}: success {self.settings.get('success_rate', float('nan')):.1%}",
            "layer            Δ_orientation  Δ_strength",
        ]
        for name, o, s in zip(self.deltas.layers, self.deltas.orientation, self.deltas.strength):
            lines.append(f"{name:<16} {o:>13.3f} {s:>11.3f}")
        k = self.kp
        lines.append(
            f"{self.layer}: KPs of c_ori before {k.mean_ori_before:.2f}/img, of c_adv after "
            f"{k.mean_adv_after:.2f}/img, overlap (Jaccard) {k.overlap:.3f}, p(c_ori|h_clean) mode "
            f"{k.mode:.3f}, share < τ {k.share_below_threshold:.1%}"
        )
        if self.trajectories is not None:
            c = self.trajectories.counts
            lines.append(
                f"trajectory types 1-4: {c.tolist()} of {len(self.trajectories.rows)} regions"
            )
        return "\n".join(lines)


def attack_report(
    state: StudyState,
    layer: str | None = None,
    epoch: int | None = None,
    threshold: float = THRESHOLD,
) -> AttackReport:
    """Return an :class:`AttackReport` (see :meth:`patternviz_widget.Study.attack_report`)."""
    threshold = check_probability(threshold, "threshold (τ)")
    state = _reading_copy(
        state
    )  # a report reads: projections it needs never reach the study's store
    store = state.store
    model = store.meta.get("model_name", state.model_name)
    epochs = store.epochs(model=model, condition=ADV)
    if not epochs:
        raise NotFittedError(
            "This study has no adversarial results. Run study.attack(eps=...) first."
        )
    epoch = epochs[-1] if epoch is None else int(epoch)
    info_key = Key(model, ADV, epoch, SAMPLE)
    if not store.has(info_key, ArrayRecord) or store.get(info_key, ArrayRecord).name != "attack":
        raise NotFittedError(
            f"No attack record at epoch {epoch} (have {epochs}). Run study.attack()."
        )
    project_condition(state, ADV, epoch, model)
    info = store.get(info_key, ArrayRecord)
    layers = [
        n
        for n in store.layers(model=model)
        if store.has(Key(model, ADV, epoch, n), RegionEmbedding)
    ]
    if not layers:
        raise NotFittedError("No clean embedding to read the attack with. Run study.embed() first.")
    layer = layers[-1] if layer is None else layer
    if layer not in layers:
        from patternviz_widget._validate import did_you_mean

        raise InputError(
            f"No adversarial embedding of layer {layer!r}. {did_you_mean(layer, layers, 'layer')}"
        )
    labels, adv_pred = info.arrays["labels"], info.arrays["adv_pred"]
    attacked = aa.attacked_images(labels, info.arrays["clean_pred"], adv_pred)
    pairs, rows = {}, {}
    for name in layers:
        e_c, e_a = (store.get(Key(model, c, epoch, name), RegionEmbedding) for c in ("clean", ADV))
        image = store.get(Key(model, "clean", epoch, name), RegionRecord).image.astype(np.int64)
        pairs[name] = (e_c.h, e_a.h, float(e_c.mean_strength))
        rows[name] = np.flatnonzero(attacked[image])
    deltas = aa.layer_shift(pairs, rows)
    kps = {c: study_knowledge_points(state, layer, epoch=epoch, condition=c, model=model, threshold=threshold)
           for c in ("clean", ADV)}  # fmt: skip
    image = store.get(Key(model, "clean", epoch, layer), RegionRecord).image.astype(np.int64)
    kp = aa.kp_shift(
        kps["clean"].posterior, kps[ADV].posterior, image, labels, adv_pred, attacked, threshold
    )
    traj = None
    trace_key = Key(model, ADV, epoch, layer)
    if store.has(trace_key, ArrayRecord) and "h" in store.get(trace_key, ArrayRecord).arrays:
        c_key = Key(model, "clean", epoch, layer)
        emb, mu = store.get(c_key, RegionEmbedding), frame_mu(store, c_key)
        h = store.get(trace_key, ArrayRecord).arrays["h"]
        traj = aa.trajectory_types(
            h,
            mu,
            posterior_fn(mu, emb),
            float(emb.mean_strength),
            image,
            labels,
            adv_pred,
            attacked,
        )
    return AttackReport(layer, epoch, dict(info.meta), deltas, kp, traj)


def _reading_copy(state: StudyState) -> StudyState:
    """Return a state whose store holds the same records (shared, not copied) in a new container."""
    view = ResultStore()
    view.probe, view.meta = state.store.probe, state.store.meta
    for (key, _), rec in state.store.items_with_kind():
        view.put(key, rec)
    return dataclasses.replace(state, store=view)


def project_condition(state: StudyState, condition: str, epoch: int, model: str) -> list[Key]:
    """Project ``condition``'s records (and attack traces) with the clean embedding of the same
    model and epoch where no embedding is stored yet; return the keys written."""
    from patternviz_widget.engine.method.project import project
    from patternviz_widget.engine.method.region_embed import project_regions

    store = state.store
    done: list[Key] = []
    s_clean, s_key = Key(model, "clean", epoch, SAMPLE), Key(model, condition, epoch, SAMPLE)
    if (
        store.has(s_clean, SampleEmbedding)
        and store.has(s_key, SampleRecord)
        and not store.has(s_key, SampleEmbedding)
    ):
        rec = store.get(s_key, SampleRecord)
        emb = project(
            rec, store.get(s_clean, SampleEmbedding), source=str(s_clean), labels=store.probe.labels
        )
        store.put(s_key, emb)
        done.append(s_key)
    for layer in store.layers(model=model):
        c_key, key = Key(model, "clean", epoch, layer), Key(model, condition, epoch, layer)
        if not store.has(c_key, RegionEmbedding):
            continue
        clean = store.get(c_key, RegionEmbedding)
        if store.has(key, RegionRecord) and not store.has(key, RegionEmbedding):
            store.put(key, project(store.get(key, RegionRecord), clean, source=str(c_key)))
            done.append(key)
        if store.has(key, ArrayRecord):
            trace = store.get(key, ArrayRecord)
            if (
                trace.name == "attack_trace"
                and "h" not in trace.arrays
                and "features" in trace.arrays
            ):
                f = trace.arrays["features"]
                h = np.stack(
                    [project_regions(f[t].astype(np.float32), clean) for t in range(f.shape[0])]
                )
                arrays = {**trace.arrays, "h": h.astype(np.float32)}
                store.put(
                    key,
                    ArrayRecord(
                        arrays=arrays,
                        name=trace.name,
                        meta={**trace.meta, "projected_with": str(c_key)},
                    ),
                )
    return done


def posterior_fn(mu: np.ndarray, emb: RegionEmbedding) -> aa.Posterior:
    """p(c | h) of the knowledge-point engine (paper Sec. 3.4, κ of ``emb``) for h already ÷ mean strength."""
    from patternviz_widget.engine.method import kappa as kp
    from patternviz_widget.engine.method.knowledge import region_posterior

    desc = emb.params.get("kappa")
    kappa = kp.from_description(desc, kp.REGION_KAPPA_MAX) if isinstance(desc, dict) else None

    def post(hs: np.ndarray) -> np.ndarray:
        flat = np.asarray(hs, np.float32).reshape(-1, hs.shape[-1])
        p, _ = region_posterior(flat, mu, 1.0, kappa)
        return p.reshape(*hs.shape[:-1], p.shape[-1])

    return post


def frame_mu(store: Any, key: Key) -> np.ndarray:
    """μ_c (K×3) that frames the regional embedding at ``key`` (as the knowledge points read it)."""
    emb = store.get(key, RegionEmbedding)
    if "mu" in emb.params:  # baseline embeddings carry their own region-frame μ
        return np.asarray(emb.params["mu"], np.float32)
    return np.asarray(store.get(key.replace(layer=SAMPLE), SampleEmbedding).mu, np.float32)
