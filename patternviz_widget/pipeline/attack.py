"""``study.attack``: adversarial images for the probe set, captured as the condition "adversarial".

The attack runs inside ``study.capture(condition="adversarial", images=<attack>)``, so the
adversarial records use the study's fixed region plan: row m of every layer is the same
(image, cell) in "clean" and "adversarial" (the paper's attack measurements need that pairing).

What is stored (all keys ``(model, "adversarial", epoch, ·)``):

* the usual SampleRecord / RegionRecords of the final adversarial images;
* ``ArrayRecord(name="attack")`` under the SAMPLE layer: ``labels, clean_pred, adv_pred, target,
  success`` (N), ``iterations`` (T recorded iterations, 0 = clean input), ``logits`` (T×N×K),
  ``linf``/``l2`` (N, perturbation sizes); ``meta`` holds the attack's settings and rates;
* ``ArrayRecord(name="attack_trace")`` under each traced layer: the kept regions' features at every
  recorded iteration — ``h`` float32[T, M, 3] already projected with the clean Λ when the clean
  embedding exists at attack time, otherwise ``features`` float16[T, M, C] (projected later by
  :func:`~patternviz_widget.pipeline.attack_report.attack_report`). Memory: T·M·C·2 bytes per layer;
  by default only the last layer is traced (the paper traces conv_53 only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from patternviz_widget._validate import check_choice, check_positive_int
from patternviz_widget.engine.attack import attacks
from patternviz_widget.engine.capture.hooks import LayerRecorder
from patternviz_widget.engine.capture.regions import gather_rows
from patternviz_widget.errors import InputError
from patternviz_widget.pipeline.capture import run_capture
from patternviz_widget.results.keys import SAMPLE, Key
from patternviz_widget.results.records import ArrayRecord, RegionEmbedding, SampleRecord

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState

METHODS = ("pgd", "fgsm")
#: Refuse a trace larger than this unless record_layers / record_every shrink it.
TRACE_BUDGET_BYTES = 1 << 30


@dataclass
class AttackSummary:
    """What :meth:`Study.attack` did.

    success_rate: share of the images classified correctly before the attack that are
    misclassified after it (untargeted), or share of images predicted as their target (targeted).
    success_curve: the same rate at every recorded iteration (``iterations``; 0 = clean).
    clean_accuracy / adversarial_accuracy: top-1 accuracy on the probe set before / after.
    linf / l2: mean perturbation size per image. keys: the result keys written.
    """

    method: str
    eps: float
    steps: int
    step_size: float
    norm: str
    targeted: bool
    n_images: int
    success_rate: float
    clean_accuracy: float
    adversarial_accuracy: float
    linf: float
    l2: float
    iterations: np.ndarray
    success_curve: np.ndarray
    trace: dict[str, str] = field(default_factory=dict)  # layer -> "h" | "features"
    keys: list[Key] = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        return (
            f"AttackSummary({self.method} {self.norm} eps={self.eps:.4g}, steps={self.steps}: "
            f"success {self.success_rate:.1%}, accuracy {self.clean_accuracy:.1%} -> "
            f"{self.adversarial_accuracy:.1%}, n={self.n_images})"
        )


def run_attack(
    state: StudyState,
    method: str = "pgd",
    eps: float = 8 / 255,
    steps: int = 20,
    step_size: float | None = None,
    norm: str = "linf",
    targeted: bool = False,
    target: Any = None,
    bounds: tuple[float, float] | None = None,
    random_start: bool = False,
    epoch: int | None = None,
    record_layers: list[str] | None = None,
    record_every: int = 1,
    progress: bool = True,
) -> AttackSummary:
    """Return an :class:`AttackSummary` after attacking the probe set and capturing the result.

    See :meth:`patternviz_widget.Study.attack` for the arguments.
    """
    t0 = time.perf_counter()
    method = check_choice(
        method.lower() if isinstance(method, str) else method, METHODS, "attack method"
    )
    norm = check_choice(norm.lower() if isinstance(norm, str) else norm, attacks.NORMS, "norm")
    steps = 1 if method == "fgsm" else check_positive_int(steps, "steps")
    record_every = check_positive_int(record_every, "record_every")
    if state.model is None:
        raise InputError(
            "This study has no model (it was loaded from a file); attacks need the model. "
            "Make the study with pv.Study(model, data, layers=...)."
        )
    n, k = state.data.n, state.num_classes
    labels = state.store.probe.labels.astype(np.int64)
    targets = _targets(target, targeted, n, k)
    lo, hi = _bounds(state, bounds)
    step = (
        eps
        if method == "fgsm"
        else (2.5 * float(eps) / steps if step_size is None else float(step_size))
    )
    per_image = int(np.prod(next(state.data.batches(1)).images.shape[1:]))
    attacks._check_eps(eps, norm, hi - lo, per_image)  # early, before any work
    name = state.model_name
    captured = [
        k.epoch for k in state.store.find(SampleRecord, model=name, condition="clean", layer=SAMPLE)
    ]
    if epoch is None:
        epoch = captured[-1] if captured else 0
    elif isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        raise InputError(f"epoch must be an integer epoch of a clean capture, got {epoch!r}.")
    elif int(epoch) not in captured:
        raise InputError(
            f"epoch={epoch} has no clean capture (captured epochs: {captured}). The attack runs on the "
            f"model's current weights, so capture them first under the epoch they stand for: "
            f"study.capture(epoch={epoch}), then study.attack(epoch={epoch}); or leave epoch out to "
            "attack the latest captured epoch."
        )
    clean_key = Key(name, "clean", int(epoch), SAMPLE)
    if not state.store.has(clean_key, SampleRecord):  # a fresh study: capture epoch 0 first
        run_capture(state, epoch=int(epoch), condition="clean", progress=progress)
    layers = list(state.layers[-1:] if record_layers is None else record_layers)
    for layer in layers:
        if layer not in state.region_plans:
            raise InputError(
                f"record_layers: {layer!r} is not one of this study's layers {state.layers}."
            )
    its = sorted(set(range(0, steps + 1, record_every)) | {steps})
    proj = {layer: _projector(state, clean_key.replace(layer=layer)) for layer in layers}
    _check_trace_budget(state, layers, proj, len(its))
    trace = _Trace(state, layers, proj, its, n, k)
    stats = {"linf": np.zeros(n, np.float32), "l2": np.zeros(n, np.float32)}
    bar = _bar(progress, n * steps, f"{method} {norm} ε={float(eps):.4g}")
    cursor = {"start": 0}

    def attack_batch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = cursor["start"]
        e = s + x.shape[0]
        tb = None if targets is None else torch.as_tensor(targets[s:e], device=x.device)

        def record(t: int, xt: torch.Tensor) -> None:
            if t in trace.index:
                trace.put(t, s, xt)
            if t > 0:
                bar.update(x.shape[0])

        x_adv = attacks.pgd(
            state.model, x, y, eps=eps, step_size=step, steps=steps, norm=norm,
            random_start=random_start and method == "pgd", targeted=targeted, target=tb,
            bounds=(lo, hi), record=record, seed=state.seed + s,
        )  # fmt: skip
        d = (x_adv - x).flatten(1)
        stats["linf"][s:e] = d.abs().amax(1).cpu().numpy()
        stats["l2"][s:e] = d.norm(dim=1).cpu().numpy()
        cursor["start"] = e
        return x_adv

    for stale in state.store.find(model=name, condition="adversarial", epoch=int(epoch)):
        state.store.drop(stale)  # a new attack replaces the last one (records, embeddings, traces)
    try:
        cap = run_capture(
            state, epoch=int(epoch), condition="adversarial", images=attack_batch, progress=False
        )
    finally:
        bar.close()
    adv_key = Key(name, "adversarial", int(epoch), SAMPLE)
    clean_pred = state.store.get(clean_key, SampleRecord).logits.argmax(1)
    adv_pred = state.store.get(adv_key, SampleRecord).logits.argmax(1)
    curve_pred = trace.logits.argmax(2)  # T×N
    if targeted:
        ok = adv_pred == targets
        curve = (curve_pred == targets[None]).mean(1)
    else:
        correct = clean_pred == labels
        ok = correct & (adv_pred != labels)
        curve = ((curve_pred != labels[None]) & correct[None]).sum(1) / max(int(correct.sum()), 1)
    rate = float(ok.sum() / max(n if targeted else int((clean_pred == labels).sum()), 1))
    summary = AttackSummary(
        method=method, eps=float(eps), steps=steps, step_size=float(step), norm=norm,
        targeted=bool(targeted), n_images=n, success_rate=rate,
        clean_accuracy=float((clean_pred == labels).mean()),
        adversarial_accuracy=float((adv_pred == labels).mean()),
        linf=float(stats["linf"].mean()), l2=float(stats["l2"].mean()),
        iterations=np.asarray(its, np.int32), success_curve=curve.astype(np.float32),
        trace={layer: ("h" if proj[layer] is not None else "features") for layer in layers},
        keys=list(cap.keys),
    )  # fmt: skip
    meta = {
        "method": method, "eps": float(eps), "steps": steps, "step_size": float(step), "norm": norm,
        "targeted": bool(targeted), "bounds": [lo, hi], "random_start": bool(random_start),
        "success_rate": rate, "clean_accuracy": summary.clean_accuracy,
        "adversarial_accuracy": summary.adversarial_accuracy, "traced_layers": layers,
    }  # fmt: skip
    state.store.put(
        adv_key,
        ArrayRecord(
            name="attack",
            arrays={
                "labels": labels,
                "clean_pred": clean_pred.astype(np.int64),
                "adv_pred": adv_pred.astype(np.int64),
                "target": (targets if targets is not None else np.full(n, -1)).astype(np.int64),
                "success": ok,
                "iterations": summary.iterations,
                "logits": trace.logits,
                "linf": stats["linf"],
                "l2": stats["l2"],
            },  # fmt: skip
            meta=meta,
        ),
    )
    for layer in layers:
        field_name = summary.trace[layer]
        state.store.put(
            adv_key.replace(layer=layer),
            ArrayRecord(
                name="attack_trace",
                arrays={"iterations": summary.iterations, field_name: trace.regions[layer]},
                meta={
                    "projected_with": str(clean_key.replace(layer=layer))
                    if field_name == "h"
                    else None
                },
            ),
        )
    summary.keys.append(adv_key)
    from patternviz_widget.pipeline.attack_report import (
        project_condition,  # read with the clean Λ, M, μ when fitted
    )

    summary.keys += project_condition(state, "adversarial", int(epoch), name)
    summary.seconds = time.perf_counter() - t0
    return summary


class _Trace:
    """Per-iteration logits (T×N×K) and regional rows (T×M×·) of the traced layers."""

    def __init__(
        self, state: StudyState, layers: list[str], proj: dict, its: list[int], n: int, k: int
    ) -> None:
        self.state = state
        self.layers = layers
        self.proj = proj
        self.index = {t: i for i, t in enumerate(its)}
        self.logits = np.zeros((len(its), n, k), np.float32)
        self.regions: dict[str, np.ndarray] = {}
        for layer in layers:
            plan = state.region_plans[layer]
            shape = (3,) if proj[layer] is not None else (plan.geometry.channels,)
            dtype = np.float32 if proj[layer] is not None else np.float16
            self.regions[layer] = np.zeros((len(its), plan.size, *shape), dtype)

    @torch.no_grad()
    def put(self, t: int, s: int, xt: torch.Tensor) -> None:
        i = self.index[t]
        e = s + xt.shape[0]
        net = self.state.model
        with LayerRecorder(net, self.layers) as rec:
            logits = net(xt)
            outputs = dict(rec.outputs)  # the recorder forgets them on exit
        self.logits[i, s:e] = logits.float().cpu().numpy()
        for layer in self.layers:
            plan = self.state.region_plans[layer]
            r0, r1 = int(plan.offsets[s]), int(plan.offsets[e])
            out = outputs.get(layer)
            if out is None or r1 == r0:
                continue
            b = torch.as_tensor(plan.image[r0:r1].astype(np.int64) - s, device=out.device)
            c = torch.as_tensor(plan.cell[r0:r1], device=out.device)
            rows = gather_rows(out, plan.geometry, b, c).float().cpu().numpy()
            p = self.proj[layer]
            self.regions[layer][i, r0:r1] = rows.astype(np.float16) if p is None else p(rows)


def _projector(state: StudyState, clean_key: Key) -> Any:
    """Return f -> h with the clean Λ of ``clean_key``'s layer, or None before any embedding."""
    if not state.store.has(clean_key, RegionEmbedding):
        return None
    from patternviz_widget.engine.method.region_embed import project_regions

    emb = state.store.get(clean_key, RegionEmbedding)
    return lambda f: project_regions(np.asarray(f, np.float32), emb)


def _check_trace_budget(state: StudyState, layers: list[str], proj: dict, t: int) -> None:
    total = 0
    for layer in layers:
        plan = state.region_plans[layer]
        total += t * plan.size * (12 if proj[layer] is not None else 2 * plan.geometry.channels)
    if total > TRACE_BUDGET_BYTES:
        raise InputError(
            f"Recording {t} attack iterations of {layers} would take {total / 2**20:.0f} MiB. "
            "Pass record_layers=[one layer], record_every=2 (or more), fewer regions_per_image, "
            "or run study.embed() first so that only the 3-D projections are recorded."
        )


def _targets(target: Any, targeted: bool, n: int, k: int) -> np.ndarray | None:
    if not targeted:
        if target is not None:
            raise InputError(
                "target= is only used with targeted=True; pass targeted=True or drop target."
            )
        return None
    if target is None:
        raise InputError(
            "targeted=True needs target= (one class for all images, or one per image)."
        )
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.full(n, int(t))
    if t.shape != (n,) or not np.issubdtype(t.dtype, np.integer) or t.min() < 0 or t.max() >= k:
        raise InputError(
            f"target must be a class in 0..{k - 1} or {n} such classes, got {target!r}."
        )
    return t.astype(np.int64)


def _bounds(state: StudyState, bounds: Any) -> tuple[float, float]:
    if bounds is not None:
        return attacks._check_bounds(bounds)
    lo, hi = np.inf, -np.inf
    for batch in state.data.batches(state.batch_size):
        lo, hi = min(lo, float(batch.images.min())), max(hi, float(batch.images.max()))
    if lo >= -1e-6 and hi <= 1 + 1e-6:
        return 0.0, 1.0
    return lo, hi  # normalised data: the probe set's own range


def _bar(progress: bool, total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not progress, desc=desc, unit="img·step")
