"""Study-level orchestration of the embeddings and knowledge points (``Study.embed`` and friends).

For every (model, condition, epoch, layer) captured and lacking an embedding:

* clean keys are FITTED in epoch order per model: the sample embedding first (paper Sec. 3.2; from the
  second epoch on warm-started from the mean of the last ≤3 aligned M's with lr 1e-4, then rotated
  onto the previous epoch by the two-pass Procrustes alignment of :mod:`.align`), then each layer's
  regional embedding (paper Sec. 3.3), tied to that epoch's aligned g by L_align — so regions share the
  sample frame without a rotation of their own. Λ starts fresh at every epoch by default, as in the
  paper (Sec. 3.2 warm-starts only M): warm-starting Λ from the mean of the last ≤3 Λ's
  (``region_warm_start=True``) carried the fit of an untrained network into the first trained
  epoch and made a spurious burst of knowledge points in the low layers (measured on shapes:
  features.5 at epoch 2, 6.95 KPs/image warm vs 0.75 fresh; the two agree later).
* other conditions (e.g. "adversarial") are PROJECTED with the clean key's M, μ, π and Λ of the
  same model and epoch (as in the paper's attack experiment): h = Λ_clean f_adv, the clean importance weights and
  the clean mean strength, so their knowledge points are read in the clean frame and scale.
"""

from __future__ import annotations

import inspect
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import numpy as np

from patternviz_widget._validate import check_choice, did_you_mean
from patternviz_widget.defaults import SEED, TEMPERATURE, THRESHOLD
from patternviz_widget.engine.device import pick_device
from patternviz_widget.engine.method.align import WeightBuffer, apply_rotation, procrustes_rotation
from patternviz_widget.engine.method.baselines import (
    available_methods,
    baseline_regions,
    baseline_samples,
)
from patternviz_widget.engine.method.embed import (
    as_target_probs,
    fit_sample_embedding,
)
from patternviz_widget.engine.method.importance import quiet_sparse
from patternviz_widget.engine.method.knowledge import (
    KnowledgePoints,
    knowledge_points,
    sample_kappa_slope,
)
from patternviz_widget.engine.method.metrics import sample_report
from patternviz_widget.engine.method.project import project
from patternviz_widget.engine.method.region_embed import fit_region_embedding
from patternviz_widget.engine.threads import resolve_threads, torch_threads
from patternviz_widget.errors import InputError, NotFittedError
from patternviz_widget.pipeline.diagnostics import key_diagnostics
from patternviz_widget.results import query
from patternviz_widget.results.keys import SAMPLE, Key
from patternviz_widget.results.records import (
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
    SampleRecord,
)

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState

_SAMPLE_ARGS = set(inspect.signature(fit_sample_embedding).parameters) - {
    "features",
    "probs",
    "labels",
    "callback",
    "init",
}
_REGION_ARGS = set(inspect.signature(fit_region_embedding).parameters) - {
    "features",
    "image",
    "sample_g",
    "probs",
    "callback",
    "init",
}
#: study.embed keywords that go to the region fit under another name (paper symbol in docs)
_REGION_RENAMES = {
    "region_epochs": "epochs",
    "region_lr": "lr",
    "region_controller": "controller",
    "region_kappa": "kappa",
}
_SHARED = {"momentum", "weight_decay", "seed", "device"}
#: the ``fast=True`` preset (demos, PATTERNVIZ_FAST notebooks): NOT the paper's settings
#: (the sample fit keeps the paper's 2000 steps: it is full-batch in 3-D and costs < 1 s more than
#: 300 steps at N = 300, while 300 steps left it short of convergence: argmax agreement 0.675 vs
#: 0.85 on a digits net)
FAST = {"region_epochs": 4, "importance_steps": 4, "partners": 30}


def split_hyper(hyper: dict[str, Any]) -> tuple[dict, dict]:
    """Return (sample kwargs, region kwargs) from ``study.embed`` keywords; unknown names raise."""
    sample, region = {}, {}
    for name, value in hyper.items():
        if name in _REGION_RENAMES:
            region[_REGION_RENAMES[name]] = value
        elif name in _SHARED:
            sample[name] = region[name] = value
        elif name in _SAMPLE_ARGS:
            sample[name] = value
        elif name in _REGION_ARGS:
            region[name] = value
        else:
            known = sorted(
                _SAMPLE_ARGS | _REGION_ARGS | set(_REGION_RENAMES) | {"warm_lr", "align"}
            )
            raise InputError(
                f"Unknown embedding hyper-parameter {name!r}. {did_you_mean(name, known, 'keyword')}"
            )
    return sample, region


def embed_study(
    state: StudyState,
    method: str = "paper",
    keys: list[Key] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    temperature: float = TEMPERATURE,
    warm_lr: float = 1e-4,
    align: bool = True,
    fast: bool = False,
    region_warm_start: bool = False,
    workers: int | str = "auto",
    **hyper: Any,
) -> list[Key]:
    """Fit (or project) every captured key lacking an embedding; return the keys written.

    See :meth:`patternviz_widget.Study.embed` for the arguments."""
    check_choice(method, available_methods(), "embedding method")
    store = state.store
    if store.probe is None:
        raise NotFittedError("The study has no probe data. Run study.capture() first.")
    hyper = {**(FAST if fast else {}), **hyper}
    sample_kw, region_kw = split_hyper(hyper)
    for kw in (sample_kw, region_kw):
        kw.setdefault("seed", int(state.seed))
        kw.setdefault("device", state.device or "cpu")
    captured = set(store.find(SampleRecord)) | set(store.find(RegionRecord))
    wanted = captured if keys is None else {k for k in keys}
    missing = [k for k in wanted if k not in captured]
    if missing:
        raise InputError(
            f"Not captured: {', '.join(map(str, sorted(missing)[:4]))}. Run study.capture(...) first."
        )

    def needs(key: Key) -> bool:
        kind = SampleEmbedding if key.layer == SAMPLE else RegionEmbedding
        return overwrite or not store.has(key, kind) or store.get(key, kind).method != method

    todo_set = {k for k in wanted if needs(k)}
    for k in list(todo_set):  # a new sample frame invalidates the regions of that epoch
        if k.layer == SAMPLE:
            todo_set |= {r for r in captured if r.layer != SAMPLE and r.replace(layer=SAMPLE) == k}
    todo = sorted(todo_set, key=Key.fit_order)
    workers = _region_workers(state, todo, method, region_kw, region_warm_start, workers)
    bar = _bar(len(todo), progress)
    written: list[Key] = []
    try:
        # the region fits of one (model, condition, epoch), run together once its keys are all met
        pending: list[Key] = []

        def flush() -> None:
            _fit_regions(state, pending, method, region_kw, temperature, bar, workers, written)
            pending.clear()

        for key in todo:
            if pending and key.replace(layer=SAMPLE) != pending[0].replace(layer=SAMPLE):
                flush()
            sample_key = key.replace(layer=SAMPLE)
            if key.condition != "clean" and method in ("paper", "pca"):
                bar.set_postfix_str(str(key), refresh=False)
                _project(state, key, method)
            elif key.layer == SAMPLE:
                bar.set_postfix_str(str(key), refresh=False)
                _fit_sample(state, key, method, sample_kw, temperature, warm_lr, align)
            else:
                if (
                    not store.has(sample_key, SampleEmbedding)
                    or store.get(sample_key, SampleEmbedding).method != method
                ):
                    if sample_key not in captured:
                        raise NotFittedError(
                            f"{key} needs the sample features of {sample_key}; capture them first."
                        )
                    bar.set_postfix_str(str(sample_key), refresh=False)
                    _fit_sample(state, sample_key, method, sample_kw, temperature, warm_lr, align)
                    written.append(sample_key)
                if region_warm_start:  # Λ starts from the previous epoch's: one at a time
                    _fit_regions(
                        state, [key], method, region_kw, temperature, bar, 1, written, True
                    )
                else:
                    pending.append(key)
                continue
            written.append(key)
            bar.update(1)
        if pending:
            flush()
    finally:
        bar.close()
    store.meta["temperature"] = float(temperature)
    return sorted(written, key=Key.fit_order)  # the fits of one epoch finish in any order


def _bar(total: int, progress: bool) -> Any:
    if progress:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="embed", unit="fit")

    class _Null:
        def set_postfix_str(self, *a: Any, **k: Any) -> None: ...
        def update(self, *a: Any) -> None: ...
        def close(self) -> None: ...

    return _Null()


def _probs(state: StudyState, key: Key, temperature: float) -> np.ndarray:
    rec = state.store.get(key.replace(layer=SAMPLE), SampleRecord)
    return as_target_probs(rec.logits, temperature, "logits")


def _previous(state: StudyState, key: Key, kind: type, method: str, n: int) -> list[Any]:
    """The ≤ n most recent embeddings of ``kind`` before ``key.epoch`` (same model/condition/layer)."""
    store = state.store
    earlier = [
        k
        for k in store.find(kind, model=key.model, condition=key.condition, layer=key.layer)
        if k.epoch < key.epoch
    ]
    recs = [store.get(k, kind) for k in sorted(earlier, key=lambda k: k.epoch)]
    return [r for r in recs if r.method == method][-n:]


def _fit_sample(
    state: StudyState,
    key: Key,
    method: str,
    kw: dict,
    temperature: float,
    warm_lr: float,
    align: bool,
) -> None:
    store = state.store
    rec = store.get(key, SampleRecord)
    p = as_target_probs(rec.logits, temperature, "logits")
    labels = store.probe.labels
    if method != "paper":
        emb = baseline_samples(rec.features, p, method, labels=labels, seed=kw.get("seed", SEED))
    else:
        prev = _previous(state, key, SampleEmbedding, method, 3)
        kw = dict(kw)
        prev = [r for r in prev if r.M.shape[1] == np.asarray(rec.features).shape[1]]
        init = _warm_init([r.M for r in prev])
        if prev:
            kw["lr"] = warm_lr
        emb = fit_sample_embedding(rec.features, p, labels=labels, init=init, **kw)
        if align and prev and prev[-1].g.shape == emb.g.shape:
            r = procrustes_rotation(emb.g, prev[-1].g, drop_outliers=0.1)
            rot = apply_rotation(r, g=emb.g, mu=emb.mu, M=emb.M)
            emb.g, emb.mu, emb.M = rot["g"], rot["mu"], rot["M"]
            emb.params["aligned_to_epoch"] = int(_prev_epoch(state, key, SampleEmbedding))
    emb.params["temperature"] = float(temperature)
    store.put(key, emb)


def _warm_init(mats: list[np.ndarray]) -> np.ndarray | None:
    """Mean of the last ≤3 projections (M or Λ; paper Sec. 3.2 warm start), or None when there are none."""
    if not mats:
        return None
    buf = WeightBuffer(3)
    for m in mats:
        buf.push(m)
    return buf.mean()


def _prev_epoch(state: StudyState, key: Key, kind: type) -> int:
    earlier = [
        k.epoch
        for k in state.store.find(kind, model=key.model, condition=key.condition, layer=key.layer)
        if k.epoch < key.epoch
    ]
    return max(earlier) if earlier else -1


#: a layer's fit shares the cores with the other layers' only while its features take at most
#: this share of ``memory_budget_mb`` (two fits at once hold two fits' memory)
_SHARED_FIT_BUDGET = 1 / 16


def _region_workers(
    state: StudyState, todo: list[Key], method: str, kw: dict, warm_start: bool, workers: int | str
) -> int:
    """How many region fits of one epoch run at once: 1 for the baselines, with
    ``region_warm_start`` and on a GPU; else ``workers`` when it is a number (each fit on one
    thread), and for "auto" 2 with two idle cores, for small layers and no thread count given.

    Each of a layer's fits is a long chain of small operations that one thread runs about as fast
    as two (see :mod:`patternviz_widget.engine.threads`), so two layers fitted side by side, one
    thread each, use both cores where one fit cannot (the quickstart's three layers: 8.7-10.8 s
    one after another, 5.9-7.2 s two at a time, the same values to the bit). Capped at 2: that is
    what was measured, and the steps hold Python's lock between torch calls."""
    if isinstance(workers, bool) or not (
        workers == "auto" or (isinstance(workers, int) and workers >= 1)
    ):
        raise InputError(f"workers must be 'auto' or a positive integer, got {workers!r}.")
    if method != "paper" or warm_start or pick_device(kw.get("device")).type != "cpu":
        return 1  # (the baselines bring threads of their own; on a GPU the fits queue anyway)
    if isinstance(workers, int):
        return workers
    if "threads" in kw:
        return 1
    regions = [k for k in todo if k.layer != SAMPLE and k.condition == "clean"]
    if len(regions) < 2:
        return 1
    budget = float(kw.get("memory_budget_mb", 1024.0)) * 2**20 * _SHARED_FIT_BUDGET
    store = state.store
    if any(4 * _feature_count(store, k) > budget for k in regions):
        return 1  # (the fits read float32 copies)
    return max(1, min(2, resolve_threads("auto")))


def _feature_count(store: Any, key: Key) -> int:
    """Values in the regional features of ``key`` (rows × channels), read from their shape."""
    return int(np.prod(np.shape(store.get(key, RegionRecord).features)))


def _fit_regions(
    state: StudyState,
    keys: list[Key],
    method: str,
    kw: dict,
    temperature: float,
    bar: Any,
    workers: int,
    written: list[Key],
    warm_start: bool = False,
) -> None:
    """Fit the region embeddings of ``keys`` (one model, condition and epoch, their sample
    embedding stored), ``workers`` at a time, and store each as it finishes; a fit that fails
    leaves the others' results stored, then its error is raised."""
    store = state.store
    if workers <= 1 or len(keys) < 2:
        for key in keys:  # one at a time, each reading its features only when it starts
            job = _region_job(state, key, method, kw, temperature, warm_start)
            bar.set_postfix_str(str(key), refresh=False)

            def cb(stage: str, done: int, total: int, key: Key = key) -> None:
                bar.set_postfix_str(f"{key} {stage} {done}/{total}")

            _store_region(store, key, job(cb, None), temperature, written, bar)
        return
    # the biggest first, so that the last to finish is a small one
    queue = sorted(keys, key=lambda k: -_feature_count(store, k))
    stages: dict[Key, str] = {}  # written by the fits' threads, shown by this one
    stop = threading.Event()  # set on an interrupt: the running fits end at their next step

    def submit(pool: ThreadPoolExecutor, key: Key) -> Future:
        # inputs read here, on this thread, for at most ``workers`` fits at a time
        job = _region_job(state, key, method, kw, temperature, warm_start)

        def cb(stage: str, done: int, total: int) -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            stages[key] = f"{stage} {done}/{total}"

        return pool.submit(job, cb, 1)

    error: BaseException | None = None
    # the fits' threads enter and leave their own warning filters at once: this restores the
    # process's filters after them (catch_warnings is not thread-safe)
    with (
        quiet_sparse(),
        torch_threads(1),
        ThreadPoolExecutor(workers, thread_name_prefix="pv-fit") as pool,
    ):
        running: dict[Future, Key] = {}
        for key in queue[:workers]:
            running[submit(pool, key)] = key
        del queue[:workers]
        try:
            while running:
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    key = running.pop(fut)
                    stages.pop(key, None)
                    if fut.exception() is not None:
                        error = error or fut.exception()
                    else:
                        _store_region(store, key, fut.result(), temperature, written, bar)
                    if queue:
                        nxt = queue.pop(0)
                        running[submit(pool, nxt)] = nxt
                shown = dict(stages)  # (a copy: the fits' threads add to it)
                if shown:
                    bar.set_postfix_str(" | ".join(f"{k.layer} {v}" for k, v in shown.items()))
        except BaseException:
            stop.set()
            raise
    if error is not None:
        raise error


def _store_region(
    store: Any, key: Key, emb: RegionEmbedding, temperature: float, written: list[Key], bar: Any
) -> None:
    emb.params["temperature"] = float(temperature)
    store.put(key, emb)
    written.append(key)
    bar.update(1)


def _region_job(
    state: StudyState, key: Key, method: str, kw: dict, temperature: float, warm_start: bool
) -> Any:
    """Read what the region fit of ``key`` needs from the store (here, on the calling thread) and
    return ``job(callback, threads) -> RegionEmbedding``, which touches nothing shared."""
    store = state.store
    rec = store.get(key, RegionRecord)
    p = _probs(state, key, temperature)
    feats = np.asarray(rec.features, dtype=np.float32)
    image = rec.image
    if method != "paper":
        seed = kw.get("seed", SEED)
        return lambda cb, threads: baseline_regions(feats, image, p, method, seed=seed)
    g = store.get(key.replace(layer=SAMPLE), SampleEmbedding).g
    prev = _previous(state, key, RegionEmbedding, method, 3) if warm_start else []
    init = _warm_init([r.Lambda for r in prev if r.Lambda.shape[1] == feats.shape[1]])

    def job(cb: Any, threads: int | None) -> RegionEmbedding:
        args = kw if threads is None else {**kw, "threads": threads}
        return fit_region_embedding(feats, image, g, p, init=init, callback=cb, **args)

    return job


def _project(state: StudyState, key: Key, method: str) -> None:
    """Store the clean key's embedding applied to ``key``'s features (as in the paper's attack experiment)."""
    store = state.store
    clean = key.replace(condition="clean")
    kind = SampleEmbedding if key.layer == SAMPLE else RegionEmbedding
    if not store.has(clean, kind) or store.get(clean, kind).method != method:
        raise NotFittedError(
            f"{key} is projected with the clean embedding of {clean}, which is missing. "
            f"Capture condition='clean' at epoch {key.epoch} and run study.embed() on it first."
        )
    ref = store.get(clean, kind)
    if kind is SampleEmbedding:
        emb = project(
            store.get(key, SampleRecord), ref, source=str(clean), labels=store.probe.labels
        )
    else:
        rec = store.get(key, RegionRecord)
        clean_rec = store.get(clean, RegionRecord)
        if np.asarray(rec.image).shape != np.asarray(clean_rec.image).shape or not np.array_equal(
            rec.image, clean_rec.image
        ):
            raise InputError(
                f"The regions of {key} are not the clean key's regions (row m must be the same image and cell); recapture both with the same study."
            )
        emb = project(rec, ref, source=str(clean))
    store.put(key, emb)


# ---- readers --------------------------------------------------------------------------------


def study_knowledge_points(
    state: StudyState,
    layer: str,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    threshold: float = THRESHOLD,
    kappa_slope: float | str = 1.0,
) -> KnowledgePoints:
    """Return the KnowledgePoints of one key (see :meth:`patternviz_widget.Study.knowledge_points`).

    The κ slope "sample" is read from the CLEAN sample embedding of the same model and epoch, so
    other conditions (adversarial) are counted on the clean scale, as their h are projected."""
    key = query.resolve_key(state.store, RegionEmbedding, layer, epoch, condition, model)
    store = state.store
    emb = store.get(key, RegionEmbedding)
    sk = key.replace(layer=SAMPLE)
    if not store.has(sk, SampleEmbedding):
        sk = sk.replace(condition="clean")
    mu = store.get(sk, SampleEmbedding)
    clean = sk.replace(condition="clean")
    if kappa_slope == "sample" and store.has(clean, SampleEmbedding) and "mu" not in emb.params:
        kappa_slope = sample_kappa_slope(store.get(clean, SampleEmbedding))
    out = knowledge_points(
        emb, mu, store.get(key, RegionRecord), store.probe, threshold, kappa_slope=kappa_slope
    )
    out.warning = key_diagnostics(
        store, key, float(store.meta.get("temperature", TEMPERATURE))
    ).reason
    return out


def study_sample_metrics(
    state: StudyState,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
    methods: tuple[str, ...] = ("paper", "pca", "tsne"),
    temperature: float | None = None,
) -> dict[str, dict]:
    """Return {method: sample_report dict} (see :meth:`patternviz_widget.Study.sample_metrics`)."""
    key = query.resolve_key(state.store, SampleRecord, SAMPLE, epoch, condition, model)
    store = state.store
    rec = store.get(key, SampleRecord)
    t = float(
        temperature if temperature is not None else store.meta.get("temperature", TEMPERATURE)
    )
    p = as_target_probs(rec.logits, t, "logits")
    labels = store.probe.labels
    out: dict[str, dict] = {}
    for m in methods:
        if m not in available_methods():
            continue
        emb = store.get(key, SampleEmbedding) if store.has(key, SampleEmbedding) else None
        if m == "paper":
            if emb is None or emb.method != "paper":
                raise NotFittedError(f"No paper embedding for {key}. Run study.embed() first.")
            q = _paper_posterior(emb)
            out[m] = sample_report(emb.g, p, q, labels=labels, mu=emb.mu)
        else:
            b = baseline_samples(rec.features, p, m, labels=labels, seed=int(state.seed))
            out[m] = b.params["metrics"]
    return out


def _paper_posterior(emb: SampleEmbedding) -> np.ndarray:
    import torch

    from patternviz_widget.engine.method import kappa as kp
    from patternviz_widget.engine.method.embed import posterior_logits

    kfun = kp.from_description(emb.params.get("kappa"), kp.SAMPLE_KAPPA_MAX)
    log_pi = torch.log(torch.as_tensor(np.asarray(emb.pi, np.float64)).clamp(min=1e-12))
    logits = posterior_logits(
        torch.as_tensor(np.asarray(emb.g, np.float64)),
        torch.as_tensor(np.asarray(emb.mu, np.float64)),
        log_pi,
        kfun,
    )
    return torch.softmax(logits, 1).numpy()
