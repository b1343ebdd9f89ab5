"""``python -m patternviz_widget reproduce`` / ``pv.reproduce()``: the paper's checkable claims,
measured end to end on the bundled model and data with one set of defaults.

Li, Wang, Zhang, *Visualizing the Emergence of Intermediate Visual Patterns in DNNs* (NeurIPS 2021)
make twelve claims that a small model can check: the sample embedding is faithful and its strength
tracks certainty (sample embedding, Table 1), class directions follow confusion, regional patterns
emerge over training and are built up layer by layer (regional embedding, knowledge points), PGD
attacks act mostly on high layers and re-purpose weak regions (adversarial analysis), and
distillation transfers the mimicked layer only (knowledge distillation). This module runs, in
stages, each writing its result file into the output folder:

1. ``train``: the bundled SmallVGG on the generated shapes data (one-cycle AdamW), with state dicts
   saved at training ITERATIONS 0, 10, 25, 50, 100, 200, 400 and the final one
   (``checkpoints.pt``, ``train.json``);
2. ``emergence``: every checkpoint captured on the probe images with EVERY cell of a common grid,
   fitted with ``study.embed()``'s defaults (the paper's preset) in iteration order
   (``study.pvz``, ``emergence.json``);
3. ``attack``: PGD-ℓ∞ on the final model, read with the clean embedding (``attack.json``);
4. ``distill``: two students distilled from the final model, one on the logits, one on the top
   stage's features, projected with the teacher's Λ (``distill.json``);
5. ``claims``: one row per claim with our number, the paper's and a verdict
   (``claims.json``, ``REPRODUCTION.md``, ``REPRODUCTION.json``) and ``figures/``.

A rerun into the same folder skips every stage whose result file exists and whose configuration
hash (its own settings and those of the stages it reads) matches. A claim whose evidence holds by
construction — the network's posterior P(Y|x) near uniform (mean KL(P‖uniform) < 1 % of log K), or
all class directions μ_c coinciding (min over pairs of 1 − cos(μ_a, μ_b) < 1e-3) — is marked
"degenerate" and not counted.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

STAGES = ("train", "emergence", "attack", "distill", "claims")
#: degeneracy thresholds (see the module docstring)
KL_UNIFORM_FRACTION = 0.01
MU_COLLAPSE = 1e-3


@dataclass(frozen=True)
class ReproConfig:
    """Every setting of a reproduction run; one set for all twelve claims.

    The method's hyper-parameters are ``study.embed()``'s defaults (the paper's preset) unless
    ``embed`` overrides them (``quick`` uses the short ``fast`` preset so the test suite can run it).
    """

    dataset: str = "shapes"
    n_train: int = 6000
    n_probe: int = 500
    size: int = 32
    num_classes: int = 6
    widths: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    epochs: int = 8
    batch_size: int = 64
    max_lr: float = 5e-3
    weight_decay: float = 5e-4
    checkpoints: tuple[int, ...] = (0, 10, 25, 50, 100, 200, 400)  # plus the final iteration
    grid: tuple[int, int] = (8, 8)
    embed: dict = field(default_factory=dict)
    temperature: float = 4.0
    threshold: float = 0.4
    attack_eps: float = 8 / 255
    attack_steps: int = 20
    distill_epochs: int = 8
    distill_lr: float = 3e-3
    distill_alpha: float = 0.9
    baselines: tuple[str, ...] = ("pca", "tsne")
    train_threads: int = 1
    seed: int = 2020
    figure_dpi: int = 110

    @classmethod
    def quick(cls) -> ReproConfig:
        """Tiny settings for the test suite (well under a minute on 2 cores): the claims are
        computed the same way, but on too little to be evidence."""
        return cls(n_train=600, n_probe=48, size=16, num_classes=5, widths=(8, 16, 32), hidden=32,
                   epochs=2, batch_size=32, checkpoints=(0, 10, 25), grid=(4, 4),
                   embed={"fast": True, "steps": 300}, attack_steps=3, distill_epochs=1,
                   baselines=("pca",), figure_dpi=60)  # fmt: skip

    def section(self, stage: str) -> dict:
        """The settings a stage depends on directly (its hash also covers the stages it reads)."""
        d = asdict(self)
        keys = {
            "train": ["dataset", "n_train", "n_probe", "size", "num_classes", "widths", "hidden", "epochs",
                      "batch_size", "max_lr", "weight_decay", "checkpoints", "seed"],
            "emergence": ["grid", "embed", "temperature", "threshold", "baselines"],
            "attack": ["attack_eps", "attack_steps", "threshold"],
            "distill": ["distill_epochs", "distill_lr", "distill_alpha", "temperature", "threshold"],
            "claims": ["threshold"],
        }[stage]  # fmt: skip
        return {k: d[k] for k in keys}


_DEPENDS = {"train": (), "emergence": ("train",), "attack": ("emergence",),
            "distill": ("emergence",), "claims": ("train", "emergence", "attack", "distill")}  # fmt: skip


#: the package's source files whose code decides a stage's numbers (part of its hash, so a changed
#: method default reruns the stages it affects)
_CODE = {"train": ("models/cnn.py", "datasets/base.py", "datasets/generated_shapes.py"),
         "emergence": ("engine", "study.py", "results/records.py"), "attack": ("engine",),
         "distill": ("engine",), "claims": ()}  # fmt: skip


#: the functions of this module that compute each stage (their source is part of the hash)
_FUNCS = {"train": ("train_with_checkpoints", "_stage_train", "_data", "_model", "_iterations"),
          "emergence": ("_stage_emergence", "layer_numbers", "degeneracy", "_diagnostics", "_study"),
          "attack": ("_stage_attack", "_resume_study"), "distill": ("_stage_distill", "_resume_study"),
          "claims": ()}  # fmt: skip


#: engine files that never run in a reproduction (multi-process capture, file watching, tracking
#: hooks): edits to them do not invalidate finished stages
_NOT_CODE = {"distributed.py", "watch.py", "tracking.py", "checkpoints.py"}


def code_fingerprint(stage: str) -> str:
    """A hash of the source files listed for ``stage`` in :data:`_CODE` (folders: their ``*.py``)
    and of this module's functions that compute it."""
    import inspect

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _FUNCS[stage]:
        h.update(inspect.getsource(globals()[name]).encode())
    for rel in _CODE[stage]:
        p = root / rel
        for f in sorted(p.glob("*.py")) if p.is_dir() else [p]:
            if f.exists() and f.name not in _NOT_CODE:
                h.update(f.relative_to(root).as_posix().encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def stage_hash(cfg: ReproConfig, stage: str) -> str:
    """A short hash of ``stage``'s settings, the code that computes it and, recursively, of the
    stages it reads."""
    parts = {"stage": stage, "settings": cfg.section(stage), "version": 1, "code": code_fingerprint(stage),
             "inputs": [stage_hash(cfg, s) for s in _DEPENDS[stage]]}  # fmt: skip
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- small helpers --------------------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return None if not math.isfinite(v) else round(v, 6)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def _cached(path: Path, expected: str) -> dict | None:
    """The stage's result when its file exists and was written with the same settings and code
    (its stored hash equals ``expected``)."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("hash") == expected else None


def _bar(iterable: Any, desc: str, progress: bool, total: int | None = None) -> Any:
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def machine() -> dict:
    """CPU model, cores, torch version and threads of this machine."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    git = None
    try:
        import subprocess

        root = Path(__file__).resolve().parents[1]
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "patternviz_widget"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")  # fmt: skip
        changed = sorted({line[3:] for line in dirty if line.strip() and line[3:].endswith(".py")})
        git = {"commit": head, "uncommitted_package_files": changed} if head else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "gpu": gpu, "git": git}  # fmt: skip


# ---- data and model ------------------------------------------------------------------------------
def _data(cfg: ReproConfig) -> tuple[Any, Any]:
    import patternviz_widget as pv

    make = getattr(pv.datasets, cfg.dataset, None)
    if make is None:
        raise InputError(f"pv.datasets has no data set {cfg.dataset!r}; use 'shapes'.")
    import inspect

    kw = {"size": cfg.size}
    if "num_classes" in inspect.signature(make).parameters:
        kw["num_classes"] = cfg.num_classes
    train = make(n=cfg.n_train, seed=cfg.seed, **kw)
    probe = make(n=cfg.n_probe, seed=cfg.seed + 1, **kw)
    if len(train.class_names) != cfg.num_classes:
        raise InputError(
            f"pv.datasets.{cfg.dataset} makes {len(train.class_names)} classes; set num_classes to match."
        )
    return train, probe


def _model(cfg: ReproConfig, seed_offset: int = 0) -> Any:
    import torch

    import patternviz_widget as pv

    torch.manual_seed(cfg.seed + seed_offset)
    return pv.models.SmallVGG(
        in_channels=3, num_classes=cfg.num_classes, widths=cfg.widths, hidden=cfg.hidden
    )


def _iterations(cfg: ReproConfig) -> tuple[list[int], int]:
    per_epoch = -(-cfg.n_train // cfg.batch_size)
    final = per_epoch * cfg.epochs
    its = sorted({i for i in cfg.checkpoints if i < final} | {final})
    return its, final


# ---- stage 1: training with checkpoints by iteration ---------------------------------------------
def train_with_checkpoints(model: Any, train: Any, probe: Any, cfg: ReproConfig, progress: bool = True,
                           ) -> tuple[dict[int, dict], dict]:  # fmt: skip
    """Train ``model`` with AdamW and a one-cycle learning-rate schedule (max lr ``cfg.max_lr``);
    return ({iteration: state_dict}, history) with state dicts at ``cfg.checkpoints`` and the final
    iteration, and the probe accuracy at each of them."""
    import torch
    import torch.nn.functional as F

    import patternviz_widget as pv

    its, final = _iterations(cfg)
    x, y = train.images, train.labels
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.max_lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.max_lr, total_steps=final)
    gen = torch.Generator().manual_seed(cfg.seed)
    states: dict[int, dict] = {}
    hist: dict[str, list] = {"iteration": [], "probe_accuracy": [], "loss": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cfg.train_threads)))
    t0 = time.perf_counter()
    train_seconds = 0.0
    losses: list[float] = []

    def keep(it: int) -> None:
        states[it] = copy.deepcopy(model.state_dict())
        hist["iteration"].append(it)
        hist["probe_accuracy"].append(pv.models.evaluate(model, probe, device="cpu"))
        hist["loss"].append(float(np.mean(losses[-20:])) if losses else float("nan"))
        model.train()

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            it = 0
            keep(0)
            bar = _bar(range(final), "reproduce: train", progress)
            bar_it = iter(bar)
            for _epoch in range(cfg.epochs):
                model.train()
                order = torch.randperm(len(y), generator=gen)
                for s in range(0, len(y), cfg.batch_size):
                    t1 = time.perf_counter()
                    idx = order[s : s + cfg.batch_size]
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    train_seconds += time.perf_counter() - t1
                    losses.append(float(loss.detach()))
                    it += 1
                    next(bar_it, None)
                    if it in its:
                        keep(it)
            if hasattr(bar, "close"):
                bar.close()
    finally:
        torch.set_num_threads(threads)
        model.eval()
    hist.update(final_iteration=final, seconds=time.perf_counter() - t0, train_seconds=train_seconds,
                threads=int(cfg.train_threads), optimiser="AdamW, one-cycle")  # fmt: skip
    return states, hist


def _stage_train(out: Path, cfg: ReproConfig, progress: bool) -> dict:
    import torch

    train, probe = _data(cfg)
    model = _model(cfg)
    states, hist = train_with_checkpoints(model, train, probe, cfg, progress)
    tmp = out / "checkpoints.pt.tmp"
    torch.save(
        {"iterations": sorted(states), "states": {str(k): v for k, v in states.items()}}, tmp
    )
    os.replace(tmp, out / "checkpoints.pt")
    return {"history": hist}


def _load_states(out: Path) -> dict[int, dict]:
    import torch

    ck = torch.load(out / "checkpoints.pt", map_location="cpu", weights_only=True)
    return {int(k): v for k, v in ck["states"].items()}


# ---- stage 2: emergence over checkpoints ----------------------------------------------------------
def _study(model: Any, probe: Any, cfg: ReproConfig, name: str = "main") -> Any:
    import patternviz_widget as pv

    return pv.Study(model, probe, layers=list(model.default_layers), regions_per_image=None, max_regions=None,
                    grid=tuple(cfg.grid), device="cpu", seed=cfg.seed, batch_size=100, model_name=name)  # fmt: skip


def _thresholds() -> tuple[float, float]:
    """(share of log K, max cos(μ_a, μ_b)) below/above which a key is degenerate: the engine's
    ``study.diagnostics()`` thresholds when it has them, else this module's."""
    try:
        from patternviz_widget.pipeline import diagnostics as dg

        return float(dg.NEAR_UNIFORM_SHARE), float(dg.MU_COLLAPSE_COS)
    except (ImportError, AttributeError):
        return KL_UNIFORM_FRACTION, 1.0 - MU_COLLAPSE


def degeneracy(study: Any, epoch: int, temperature: float = 4.0, model: str | None = None,
               diagnostics: Any = None) -> dict:  # fmt: skip
    """KL(P‖uniform) of the network's posterior and the min and max over pairs of 1 − cos(μ_a, μ_b) at ``epoch``,
    with the verdict "degenerate" when either says the embedding holds by construction.

    Computed from the stored records; ``diagnostics`` (what ``study.diagnostics()`` returned, when
    the study has it) adds each key's fit diagnostics and its own degenerate verdict."""
    from patternviz_widget.engine.method.metrics import kl_rows, softmax_t

    from .results import SAMPLE, Key, SampleEmbedding, SampleRecord

    model = model or study.store.meta.get("model_name", "main")
    key = Key(model, "clean", int(epoch), SAMPLE)
    p = softmax_t(study.store.get(key, SampleRecord).logits, temperature)
    k = p.shape[1]
    kl_u = float(kl_rows(p, np.full_like(p, 1.0 / k)).mean())
    mu = np.asarray(study.store.get(key, SampleEmbedding).mu, np.float64)
    mu = mu / np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
    cos = mu @ mu.T
    iu = np.triu_indices(k, 1)
    gaps = 1.0 - cos[iu] if iu[0].size else np.zeros(1)
    share, cos_max = _thresholds()
    out: dict[str, Any] = {"kl_uniform": kl_u, "log_k": math.log(k), "min_1_minus_cos_mu": float(gaps.min()),
                           "max_1_minus_cos_mu": float(gaps.max()),
                           "near_uniform_below": share * math.log(k), "mu_collapse_below": 1.0 - cos_max}  # fmt: skip
    out["near_uniform"] = kl_u < share * math.log(k)
    # every μ_c coinciding (even the farthest pair within 1e-3) makes every region's posterior uniform
    out["mu_collapse"] = float(gaps.max()) < 1.0 - cos_max
    out["degenerate"] = bool(out["near_uniform"] or out["mu_collapse"])
    if diagnostics is not None:
        mine = {}
        for d in diagnostics:
            kd = getattr(d, "key", None)
            if kd is None or kd.model != model or kd.epoch != int(epoch) or kd.condition != "clean":
                continue
            row = d.as_dict() if hasattr(d, "as_dict") else dict(getattr(d, "__dict__", {}))
            loss = list(row.pop("region_loss", []) or [])
            row["region_loss_first_last"] = [loss[0], loss[-1]] if loss else None
            mine[str(kd)] = row
        out["diagnostics"] = mine
        out["degenerate"] = bool(
            out["degenerate"] or any(r.get("degenerate") for r in mine.values())
        )
    return out


def _diagnostics(study: Any, temperature: float) -> Any:
    """``study.diagnostics()`` when the study has it (None otherwise, or when it fails)."""
    diag = getattr(study, "diagnostics", None)
    if not callable(diag):
        return None
    try:
        return diag(temperature=temperature)
    except Exception:  # extra evidence only: the record-based checks still decide
        return None


def _num(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=-1) / np.maximum(
        np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12
    )


def layer_numbers(study: Any, layer: str, epoch: int, threshold: float) -> dict:
    """Knowledge points and region statistics of one (layer, epoch) of the clean model."""
    from .results import SAMPLE, Key, RegionEmbedding, RegionRecord, SampleEmbedding

    model = study.store.meta.get("model_name", "main")
    key = Key(model, "clean", int(epoch), layer)
    emb = study.store.get(key, RegionEmbedding)
    rec = study.store.get(key, RegionRecord)
    mu = np.asarray(study.store.get(key.replace(layer=SAMPLE), SampleEmbedding).mu, np.float64)
    kp = study.knowledge_points(layer, epoch=epoch, threshold=threshold)
    labels = study.store.probe.labels[rec.image.astype(np.int64)]
    h = np.asarray(emb.h, np.float64)
    norm = np.linalg.norm(h, axis=1)
    cos_true = _cos(h, mu[labels])
    k = mu.shape[0]
    cos_all = (h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)) @ (
        mu / np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
    ).T
    margin = cos_true - (cos_all.sum(1) - cos_true) / max(k - 1, 1)  # 0 when every μ_c coincides
    obj = kp.on_object if kp.on_object is not None else None
    w = np.asarray(emb.w, np.float64)
    n_img = int(study.store.probe.labels.shape[0])
    uniform_w = np.full_like(w, 1.0 / max(len(w) / n_img, 1.0))
    out = {**kp.summary(), "kappa_slope": _num(getattr(kp, "kappa_slope", None)), "mean_norm": float(norm.mean()), "mean_strength": float(emb.mean_strength),
           "mean_cos_true": float(cos_true.mean()), "mean_cos_margin": float(margin.mean()),
           "w_l1_from_uniform": float(np.abs(w - uniform_w).sum() / n_img)}  # fmt: skip
    if obj is not None and obj.any():
        out.update(object_mean_norm=float(norm[obj].mean()), object_mean_cos_true=float(cos_true[obj].mean()),
                   object_mean_strength=float(kp.strength[obj].mean()),
                   object_w_share=float(w[obj].sum() / max(w.sum(), 1e-12)))  # fmt: skip
    out["_norm"] = norm  # dropped before writing; used for the near-origin share
    return out


def _stage_emergence(
    out: Path, cfg: ReproConfig, progress: bool, log: Callable[[str], None]
) -> dict:
    from scipy.stats import spearmanr

    import patternviz_widget as pv
    from patternviz_widget.engine.method.metrics import softmax_t

    from .results import SAMPLE, Key, SampleEmbedding, SampleRecord

    _, probe = _data(cfg)
    states = _load_states(out)
    its = sorted(states)
    model = _model(cfg)
    study = _study(model, probe, cfg)
    # checkpoint by checkpoint, saved after each: an interrupted run continues at the next one
    progress_file, h = out / "study.progress.json", stage_hash(cfg, "emergence")
    done: list[int] = []
    embed_seconds = 0.0
    if progress_file.exists() and (out / "study.pvz").exists():
        try:
            state = json.loads(progress_file.read_text())
            if state.get("hash") == h:
                study.store = pv.Study.load(out / "study.pvz").store
                done, embed_seconds = (
                    [int(i) for i in state["done"]],
                    float(state.get("embed_seconds", 0.0)),
                )
                log(f"[reproduce] emergence: resuming after iterations {done}")
        except Exception as e:  # an unreadable partial result means "start the stage over"
            log(
                f"[reproduce] emergence: partial result unreadable ({type(e).__name__}: {e}); starting over"
            )
            study = _study(model, probe, cfg)
            done = []
    for it in _bar(
        [i for i in its if i not in done], "reproduce: checkpoints (capture + embed)", progress
    ):
        model.load_state_dict(states[it])
        model.eval()
        study.capture(epoch=it, progress=False)
        t0 = time.perf_counter()
        study.embed(progress=False, temperature=cfg.temperature, **cfg.embed)
        embed_seconds += time.perf_counter() - t0
        study.save(out / "study.pvz", overwrite=True)
        done.append(it)
        _write_json(progress_file, {"hash": h, "done": done, "embed_seconds": embed_seconds})
    model.load_state_dict(states[its[-1]])
    layers = list(study.layers)
    res: dict[str, Any] = {"iterations": its, "layers": layers, "embed_seconds": embed_seconds,
                           "regions_per_layer": {}, "per_checkpoint": {}}  # fmt: skip
    for layer in layers:
        from .results import RegionRecord

        rec = study.store.get(Key("main", "clean", its[-1], layer), RegionRecord)
        res["regions_per_layer"][layer] = {"regions": int(rec.features.shape[0]), "channels": int(rec.features.shape[1]),
                                           "grid": list(rec.grid_shape)}  # fmt: skip
    final_norms = {}
    per = res["per_checkpoint"]
    diags = _diagnostics(study, cfg.temperature)
    for it in _bar(its, "reproduce: measure checkpoints", progress):
        row: dict[str, Any] = {
            "degeneracy": degeneracy(study, it, cfg.temperature, diagnostics=diags)
        }
        methods = ("paper", *cfg.baselines) if it == its[-1] else ("paper",)
        row["sample"] = {m: {k: v for k, v in d.items() if k != "mu_cos"}
                         for m, d in study.sample_metrics(epoch=it, methods=methods).items()}  # fmt: skip
        row["layers"] = {layer: layer_numbers(study, layer, it, cfg.threshold) for layer in layers}
        per[str(it)] = row
    for layer in layers:
        final_norms[layer] = per[str(its[-1])]["layers"][layer]["mean_norm"]
    for it in its:
        for layer in layers:
            d = per[str(it)]["layers"][layer]
            d["share_near_origin"] = float((d.pop("_norm") < 0.5 * final_norms[layer]).mean())
    # semantic geometry at the final checkpoint: soft confusion of the network vs cos(μ_a, μ_b)
    key = Key("main", "clean", its[-1], SAMPLE)
    p = softmax_t(study.store.get(key, SampleRecord).logits, cfg.temperature)
    labels = study.store.probe.labels
    k = p.shape[1]
    conf = np.stack(
        [p[labels == a].mean(0) if (labels == a).any() else np.zeros(k) for a in range(k)]
    )
    pred = p.argmax(1)
    hard = np.zeros((k, k))
    np.add.at(hard, (labels, pred), 1.0)
    mu = np.asarray(study.store.get(key, SampleEmbedding).mu, np.float64)
    mu = mu / np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
    iu = np.triu_indices(k, 1)
    sym = (conf + conf.T)[iu]
    cosmu = (mu @ mu.T)[iu]
    rho, pval = spearmanr(sym, cosmu)
    names = list(study.store.probe.class_names)
    order = np.argsort(-sym)
    res["semantic"] = {
        "spearman_rho": float(rho), "p_value": float(pval), "pairs": len(sym),
        "most_confused": [[names[iu[0][i]], names[iu[1][i]], float(sym[i]), float(cosmu[i])] for i in order[:3]],
        "least_confused": [[names[iu[0][i]], names[iu[1][i]], float(sym[i]), float(cosmu[i])] for i in order[-2:]],
        "confusion_counts": hard.astype(int).tolist(), "class_names": names,
    }  # fmt: skip
    if progress or True:
        final = per[str(its[-1])]["layers"]
        log(
            "[reproduce] final KPs/image: "
            + ", ".join(f"{n} {final[n]['mean_total']:.2f}" for n in layers)
        )
    _figures(study, out, cfg, ["knowledge_curve", "sample_embedding", "forward_construction",
                                f"embedding_{layers[-1]}", "layer_strip"], log)  # fmt: skip
    return res


# ---- stage 3: attack ------------------------------------------------------------------------------
def _resume_study(out: Path, cfg: ReproConfig, final_state: dict) -> Any:
    import patternviz_widget as pv

    _, probe = _data(cfg)
    model = _model(cfg)
    model.load_state_dict(final_state)
    model.eval()
    study = _study(model, probe, cfg)
    study.store = pv.Study.load(out / "study.pvz").store
    return study


def _stage_attack(out: Path, cfg: ReproConfig, progress: bool, log: Callable[[str], None]) -> dict:
    states = _load_states(out)
    final = max(states)
    study = _resume_study(out, cfg, states[final])
    last = study.layers[-1]
    summary = study.attack(method="pgd", eps=cfg.attack_eps, steps=cfg.attack_steps, norm="linf",
                           epoch=final, record_layers=[last], progress=progress)  # fmt: skip
    study.embed(progress=False, temperature=cfg.temperature, **cfg.embed)  # projects "adversarial"
    rep = study.attack_report(layer=last, epoch=final, threshold=cfg.threshold)
    kp = rep.kp
    traj = rep.trajectories
    res = {
        "settings": _jsonable({k: v for k, v in rep.settings.items() if not isinstance(v, (list, dict))}),
        "summary": repr(summary),
        "layers": list(rep.deltas.layers),
        "delta_orientation": rep.deltas.orientation.tolist(),
        "delta_strength": rep.deltas.strength.tolist(),
        "attacked_images": int(kp.attacked.sum()),
        "kp": {"mean_ori_before": kp.mean_ori_before, "mean_adv_after": kp.mean_adv_after, "overlap": kp.overlap,
               "adv_was_ori": kp.adv_was_ori, "mode": kp.mode, "share_below_threshold": kp.share_below_threshold,
               "n_adv_kp": int(kp.adv_after.sum()), "hist_counts": kp.hist_counts.tolist()},
        "trajectories": None if traj is None else {"counts": traj.counts.tolist(), "regions": int(len(traj.rows)),
                                                   "names": list(traj.names)},
    }  # fmt: skip
    _figures(study, out, cfg, ["attack_deltas", "attack_histogram", "attack_trajectory_types"], log)
    return res


# ---- stage 4: distillation -----------------------------------------------------------------------
def _stage_distill(out: Path, cfg: ReproConfig, progress: bool, log: Callable[[str], None]) -> dict:
    import torch

    import patternviz_widget as pv

    states = _load_states(out)
    final = max(states)
    teacher_study = _resume_study(out, cfg, states[final])
    teacher = teacher_study.model
    train, probe = _data(cfg)
    layers = list(teacher_study.layers)
    students, hist = {}, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cfg.train_threads)))
    try:
        for i, (name, feat) in enumerate((("logit KD", None), ("feature KD", layers[-1]))):
            student = _model(cfg, seed_offset=7 + i)
            t0 = time.perf_counter()
            h = pv.distill(teacher, student, train, epochs=cfg.distill_epochs, temperature=cfg.temperature,
                           alpha=cfg.distill_alpha, feature_layer=feat, batch_size=cfg.batch_size, device="cpu", lr=cfg.distill_lr,
                           progress=progress, seed=cfg.seed)  # fmt: skip
            student.eval()
            hist[name] = {"feature_layer": feat, "train_accuracy": h.accuracy[-1], "agreement": h.agreement[-1],
                          "probe_accuracy": pv.models.evaluate(student, probe, device="cpu"),
                          "seconds": time.perf_counter() - t0}  # fmt: skip
            s_study = _study(student, probe, cfg, name="student")
            s_study.capture(epoch=final, progress=False)
            students[name] = s_study
    finally:
        torch.set_num_threads(threads)
    cmp = pv.Study.compare(teacher_study, students)
    rep = cmp.distill_report(threshold=cfg.threshold)
    res = {"layers": rep.layers, "models": rep.models, "students": hist,
           "kp_total": rep.kp_total.tolist(), "kp_reliable": rep.kp_reliable.tolist(),
           "cos_median": {m: v.tolist() for m, v in rep.cos_median.items()},
           "cos_share_small": {m: v.tolist() for m, v in rep.cos_share_small.items()},
           "strength_mean_abs": {m: v.tolist() for m, v in rep.strength_mean_abs.items()},
           "feature_layer": layers[-1]}  # fmt: skip
    _figures(cmp, out, cfg, ["distill_knowledge", "distill_histograms"], log)
    return res


def _figures(
    study: Any, out: Path, cfg: ReproConfig, names: list[str], log: Callable[[str], None]
) -> None:
    from . import figures as F
    from .figures.batch import figure_specs

    folder = out / "figures"
    folder.mkdir(exist_ok=True)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    for name, make in figure_specs(study, cfg.threshold):
        if name not in names:
            continue
        try:
            fig = make()
        except Exception as e:  # a figure is illustration; its failure must not lose the numbers
            log(f"[reproduce] figure {name} skipped: {type(e).__name__}: {e}")
            continue
        F.save(fig, folder / f"{name.replace('.', '_')}.png", dpi=cfg.figure_dpi)
        plt.close(fig)


# ---- stage 5: the claims --------------------------------------------------------------------------
def _row(num: int, name: str, ours: str, paper: str, held: bool | None, criterion: str,
         degenerate: bool = False, note: str = "", numbers: dict | None = None) -> dict:  # fmt: skip
    verdict = (
        "degenerate"
        if degenerate
        else ("not measured" if held is None else ("held" if held else "not held"))
    )
    return {"claim": num, "name": name, "ours": ours, "paper": paper, "verdict": verdict, "criterion": criterion,
            "note": note, "numbers": numbers or {}}  # fmt: skip


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}f}"


def _arrow(xs: list, nd: int = 3) -> str:
    return " → ".join(_f(x, nd) for x in xs)


def evaluate_claims(
    train: dict, emer: dict, attack: dict | None, distill: dict | None
) -> list[dict]:
    """One row per claim from the stages' results (the criteria are fixed here, before any run)."""
    from scipy.stats import spearmanr

    its = emer["iterations"]
    layers = emer["layers"]
    per = emer["per_checkpoint"]
    fin = per[str(its[-1])]
    deg_final = bool(fin["degeneracy"]["degenerate"])
    deg_note = (f"final checkpoint: KL(P‖uniform) {fin['degeneracy']['kl_uniform']:.4f} "
                f"(log K {fin['degeneracy']['log_k']:.3f}), 1−cos(μ_a, μ_b) over pairs ≥ {fin['degeneracy']['min_1_minus_cos_mu']:.4f}")  # fmt: skip
    deg_early = [it for it in its if per[str(it)]["degeneracy"]["degenerate"]]
    L = {n: fin["layers"][n] for n in layers}
    mid, high = layers[len(layers) // 2], layers[-1]
    rows = []

    # 1 fidelity
    s = fin["sample"]["paper"]
    held = s["kl"] < 0.5 * s["kl_uniform"] and s["argmax_agreement"] > 0.5
    rows.append(_row(1, "Embedding fidelity", f"KL(P‖Q_M) {_f(s['kl'])} vs uniform {_f(s['kl_uniform'])}; argmax agreement {_f(s['argmax_agreement'])}",
                     "KL well below uniform; argmax agrees for most samples", held,
                     "KL < 0.5·KL(uniform) and argmax agreement > 0.5", deg_final, deg_note))  # fmt: skip

    # 2 strength = certainty
    ours = s["r_strength_entropy"]
    base = {m: fin["sample"][m]["r_strength_entropy"] for m in fin["sample"] if m != "paper"}
    held = ours < 0 and all(ours < v for v in base.values()) and bool(base)
    rows.append(_row(2, "Strength = certainty", f"r(‖g‖, H(P)) ours {_f(ours)}; " + ", ".join(f"{m} {_f(v)}" for m, v in base.items()),
                     "ours −0.84 … −0.95; baselines −0.09 … −0.83", held,
                     "r < 0 and below every baseline's r", deg_final, deg_note, {"ours": ours, **base}))  # fmt: skip

    # 3 semantic geometry
    sem = emer["semantic"]
    top = sem["most_confused"][0]
    held = sem["spearman_rho"] > 0 and sem["p_value"] < 0.05
    rows.append(_row(3, "Semantic geometry", f"Spearman ρ(confusion, cos(μ_a, μ_b)) {_f(sem['spearman_rho'])} (p {_f(sem['p_value'], 3)}, {sem['pairs']} pairs); most confused {top[0]}–{top[1]}: cos {_f(top[3])}",
                     "confused classes have closer μ (cat–dog, bus–lifeboat)", held,
                     "Spearman ρ > 0 with p < 0.05 over class pairs (soft confusion from P(Y|x))", deg_final, deg_note))  # fmt: skip

    # 4 temporal emergence (regions of the top layer; strength, separation, near-origin share early)
    early = [it for it in its if 0 < it <= max(10, int(0.015 * its[-1]))] or its[1:2]
    e_it = early[-1]
    st = [per[str(it)]["layers"][high]["mean_norm"] for it in its]
    sep_key = "mean_cos_margin" if "mean_cos_margin" in fin["layers"][high] else "mean_cos_true"
    sep = [per[str(it)]["layers"][high][sep_key] for it in its]
    rho_st = float(spearmanr(its, st)[0])
    rho_sep = float(spearmanr(its, sep)[0])
    near = per[str(e_it)]["layers"][high]["share_near_origin"]
    held = rho_st >= 0.7 and rho_sep >= 0.7 and st[-1] > st[its.index(e_it)] and near >= 0.8
    rows.append(_row(4, "Temporal emergence", f"{high} over iterations {its}: mean ‖h‖ {_arrow(st, 2)} (ρ {_f(rho_st, 2)}); between-class separation cos(h, μ_true) − mean other cos(h, μ_c) {_arrow(sep, 2)} (ρ {_f(rho_sep, 2)}); at iteration {e_it} {_f(near, 2)} of regions below half the final mean ‖h‖",
                     "strength and separation grow; early (~1 % of training) almost every region near the origin", held,
                     "Spearman ρ(iteration, ·) ≥ 0.7 for both, and ≥ 0.8 of regions below half the final mean ‖h‖ at ≤ 1.5 % of training",
                     deg_final, deg_note + (f"; degenerate (posterior near uniform or μ collapse) at iterations {deg_early}" if deg_early else "")))  # fmt: skip

    # 5 KP count over training
    kpc = {n: [per[str(it)]["layers"][n]["mean_total"] for it in its] for n in layers}
    early5 = [it for it in its if it <= 0.1 * its[-1]]
    ok = []
    for n in layers:
        c = kpc[n]
        end = c[-1]
        first = c[0]
        early_max = max(c[its.index(it)] for it in early5)
        half_at = next((it for it, v in zip(its, c) if v >= 0.5 * end), None)
        ok.append(
            end > 0
            and first <= 0.1 * end
            and end > early_max
            and half_at is not None
            and half_at <= 0.55 * its[-1]
        )
    held = all(ok)
    rows.append(_row(5, "KP count over training", "; ".join(f"{n}: {_arrow(kpc[n], 2)}" for n in layers) + f" (KPs/image of {int(np.prod(emer['regions_per_layer'][high]['grid']))} cells, iterations {its})",
                     "≈0 at initialisation, steep early rise, then a plateau; end > every early checkpoint", held,
                     "every layer: end > 0, KP(0) ≤ 0.1·end, end > max over iterations ≤ 10 % of training, half of end reached by 55 % of training",
                     deg_final, deg_note + (f"; the ≈0 at iterations {deg_early} holds by construction (degenerate there)" if deg_early else ""),
                     {"per_layer_ok": dict(zip(layers, ok))}))  # fmt: skip

    # 6 KP count and r_reliable vs depth
    kt = [L[n]["mean_total"] for n in layers]
    rr = [L[n]["r_reliable"] for n in layers]
    held = (
        L[high]["mean_total"] > L[mid]["mean_total"]
        and L[high]["r_reliable"] > L[mid]["r_reliable"]
    )
    rows.append(_row(6, "KP count and r_reliable vs depth", f"KPs/image {_arrow(kt, 2)}; r_reliable {_arrow([100 * x for x in rr], 1)} % ({' → '.join(layers)})",
                     "r_reliable 32.98 % → 45.88 % → 62.94 % (VGG-16 conv_33 → conv_43 → conv_53)", held,
                     "KPs/image and r_reliable higher in the top layer than in the middle one", deg_final, deg_note))  # fmt: skip

    # 7 forward construction
    on = [L[n].get("object_mean_norm") for n in layers]
    oc = [L[n].get("object_mean_cos_true") for n in layers]
    if any(v is None for v in on + oc):
        held = None
    else:

        def nearly_up(xs: list) -> bool:
            return xs[-1] > xs[0] and all(
                b >= 0.9 * a if a > 0 else b >= a - 0.05 for a, b in zip(xs, xs[1:])
            )

        held = nearly_up(on) and nearly_up(oc)
    rows.append(_row(7, "Forward construction", f"object regions: mean ‖h‖ {_arrow(on, 2)}; mean cos(h, μ_true) {_arrow(oc, 2)}",
                     "both grow (nearly) monotonically from low to high layers", held,
                     "top > lowest, and no step down by more than 10 % (cos: 0.05)", deg_final, deg_note))  # fmt: skip

    # 8 foreground share
    sh = [L[n]["on_object_share"] for n in layers]
    ch = [L[n]["on_object_chance"] for n in layers]
    held = None if sh[-1] is None else all(sh[-1] > (x or 0.0) for x in sh[:-1])
    rows.append(_row(8, "Foreground share (our extension)", f"on-object share of KPs {_arrow(sh, 3)} (chance {_arrow(ch, 3)})",
                     "— (masks are our extension)", held, "top layer's share above every lower layer's", deg_final, deg_note))  # fmt: skip

    # 9–11 attack
    if attack is None:
        for num, name in (
            (9, "Attack locality by depth"),
            (10, "Attack moves importance"),
            (11, "Attack trajectory types"),
        ):
            rows.append(_row(num, name, "not run", "", None, ""))
    else:
        do, ds = attack["delta_orientation"], attack["delta_strength"]
        held = (int(np.nanargmax(do)) == len(do) - 1 and int(np.nanargmax(ds)) == len(ds) - 1
                and do[0] <= 0.25 * do[-1] and ds[0] <= 0.25 * ds[-1])  # fmt: skip
        succ = attack["settings"].get("success_rate")
        rows.append(_row(9, "Attack locality by depth", f"Δ_orientation {_arrow(do)}; Δ_strength {_arrow(ds)} ({' → '.join(attack['layers'])}); PGD-ℓ∞ ε {_f(attack['settings'].get('eps'), 4)}, success {_f(succ, 3)}",
                         "≈0.36 and ≈0.48 at conv_53 vs ≤ 0.04 at conv_12–33", held,
                         "both largest in the top layer, lowest layer ≤ 0.25 × top", deg_final, deg_note))  # fmt: skip
        k = attack["kp"]
        held = (
            None
            if k["n_adv_kp"] == 0
            else (k["share_below_threshold"] > 0.5 and (k["overlap"] or 0.0) < 0.25)
        )
        rows.append(_row(10, "Attack moves importance", f"{_f(k['share_below_threshold'], 3)} of {k['n_adv_kp']} adversarial-class KPs had p(c_ori|h) < 0.4 before (mode {_f(k['mode'], 3)}); Jaccard overlap with clean-class KPs {_f(k['overlap'], 3)}",
                         "most below 0.4, histogram mode ≈0.1–0.15; small overlap", held,
                         "share < τ above 0.5 and Jaccard overlap below 0.25", deg_final, deg_note))  # fmt: skip
        tr = attack["trajectories"]
        held = None if tr is None else all(c > 0 for c in tr["counts"])
        rows.append(_row(11, "Attack trajectory types", "types 1–4: " + ("n/a" if tr is None else f"{tr['counts']} of {tr['regions']} regions"),
                         "all four types non-empty for a successful attack", held,
                         "every type has ≥ 1 region (thresholds of the paper's adversarial analysis)", deg_final, deg_note))  # fmt: skip

    # 12 distillation
    if distill is None:
        rows.append(_row(12, "Distillation", "not run", "", None, ""))
    else:
        dl = distill["layers"]
        models = distill["models"]
        rel = np.asarray(distill["kp_reliable"], np.float64)
        i_log, i_feat = models.index("logit KD"), models.index("feature KD")
        fewer = [rel[i_log, j] <= 1.1 * rel[0, j] for j in range(len(dl))]
        j = dl.index(distill["feature_layer"])
        med_f, med_l = distill["cos_median"]["feature KD"], distill["cos_median"]["logit KD"]
        others = [med_f[i] for i in range(len(dl)) if i != j]
        held = (sum(fewer) > len(dl) / 2 and med_f[j] <= 0.5 * med_l[j]
                and all(o >= 2 * med_f[j] for o in others))  # fmt: skip
        rows.append(_row(12, "Distillation", f"reliable KPs/image teacher {_arrow(rel[0].tolist(), 2)}, logit-KD {_arrow(rel[i_log].tolist(), 2)}, feature-KD {_arrow(rel[i_feat].tolist(), 2)}; median 1−cos(h_s, h_t) at {dl[j]}: feature-KD {_f(med_f[j])} vs logit-KD {_f(med_l[j])}; feature-KD elsewhere {_arrow(others)}",
                         "logit-KD student ≈ equal or fewer reliable KPs; the mimicked layer's 1−cos mass near 0, other layers differ", held,
                         "logit-KD reliable ≤ 1.1 × teacher in most layers; feature-KD median 1−cos at ℓ ≤ 0.5 × logit-KD's; other layers ≥ 2 × that at ℓ",
                         deg_final, deg_note))  # fmt: skip
    return rows


# ---- the run -------------------------------------------------------------------------------------
@dataclass
class Reproduction:
    """What :func:`reproduce` returns: the claims table, the stages' results and the files written."""

    out: Path
    claims: list[dict]
    results: dict
    seconds: dict
    markdown: str

    @property
    def held(self) -> int:
        return sum(r["verdict"] == "held" for r in self.claims)

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        return f"Reproduction({self.held}/{len(self.claims)} claims held, out={str(self.out)!r})"


def reproduce(out: str | Path = "reproduce_out", quick: bool = False, progress: bool = True,
              log: Callable[[str], None] = print, config: ReproConfig | None = None,
              command: str | None = None, threads: int | None = None) -> Reproduction:  # fmt: skip
    """Run (or resume) the reproduction into ``out``; return a :class:`Reproduction`.

    Args:
        out: the output folder; finished stages found there with the same settings are skipped.
        quick: tiny sizes for tests (seconds; the verdicts are not evidence).
        progress: tqdm bars within the stages.
        log: receives one line per stage.
        config: a :class:`ReproConfig` (None: the defaults, or :meth:`ReproConfig.quick`).
        command: the command line recorded in REPRODUCTION.md.
        threads: torch threads for the fits (None: torch's default); training and distillation use
            ``config.train_threads`` (small convolutions run faster on one thread).

    Example:
        >>> import patternviz_widget as pv                   # doctest: +SKIP
        >>> rep = pv.reproduce("repro", quick=True)          # doctest: +SKIP
        >>> rep                                              # doctest: +SKIP
    """
    import torch

    cfg = config if config is not None else (ReproConfig.quick() if quick else ReproConfig())
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    try:
        return _reproduce(Path(out), cfg, quick, progress, log, command)
    finally:
        torch.set_num_threads(before)


def _reproduce(out: Path, cfg: ReproConfig, quick: bool, progress: bool, log: Callable[[str], None],
               command: str | None) -> Reproduction:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    reused: list[str] = []
    runners = {"train": lambda: _stage_train(out, cfg, progress),
               "emergence": lambda: _stage_emergence(out, cfg, progress, log),
               "attack": lambda: _stage_attack(out, cfg, progress, log),
               "distill": lambda: _stage_distill(out, cfg, progress, log)}  # fmt: skip
    needs = {"train": ["checkpoints.pt"], "emergence": ["study.pvz"], "attack": [], "distill": []}
    # hashed once, before any stage runs: the code that runs is the code hashed, even when the
    # package's files are edited while a long run goes on
    hashes = {stage: stage_hash(cfg, stage) for stage in STAGES}
    for i, stage in enumerate(STAGES[:-1], 1):
        path = out / f"{stage}.json"
        cached = _cached(path, hashes[stage])
        if cached is not None and all((out / f).exists() for f in needs[stage]):
            results[stage] = cached["result"]
            seconds[stage] = float(cached.get("seconds", 0.0))
            reused.append(stage)
            log(
                f"[reproduce] stage {i}/{len(STAGES)} {stage}: skipped (found {path.name}, same settings)"
            )
            continue
        log(f"[reproduce] stage {i}/{len(STAGES)} {stage}: running")
        t0 = time.perf_counter()
        res = runners[stage]()
        seconds[stage] = time.perf_counter() - t0
        _write_json(path, {"hash": hashes[stage], "seconds": seconds[stage], "result": res})
        results[stage] = json.loads(path.read_text())["result"]
        log(f"[reproduce] stage {i}/{len(STAGES)} {stage}: done in {seconds[stage]:.1f} s")
    log(f"[reproduce] stage {len(STAGES)}/{len(STAGES)} claims: running")
    claims = evaluate_claims(
        results["train"], results["emergence"], results.get("attack"), results.get("distill")
    )
    total = time.perf_counter() - t_start
    header = {
        "command": command or ("python -m patternviz_widget reproduce" + (" --quick" if quick else "") + f" --out {out}"),
        "machine": machine(), "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "total_seconds": total, "stage_seconds": seconds, "reused_stages": reused,
        "stage_seconds_all_runs": sum(seconds.values()),
        "config": asdict(cfg), "quick": bool(quick),
        "load": _load(),
    }  # fmt: skip
    md = render_markdown(header, claims, results)
    doc = {"header": header, "claims": claims, "training": results["train"]["history"],
           "degeneracy": {it: r["degeneracy"] for it, r in results["emergence"]["per_checkpoint"].items()},
           "stages": results}  # fmt: skip
    _write_json(out / "claims.json", {"hash": hashes["claims"], "claims": claims})
    _write_json(out / "REPRODUCTION.json", doc)
    (out / "REPRODUCTION.md").write_text(md)
    log(f"[reproduce] stage {len(STAGES)}/{len(STAGES)} claims: {sum(r['verdict'] == 'held' for r in claims)}/"
        f"{len(claims)} held; wrote {out / 'REPRODUCTION.md'} ({total:.1f} s)")  # fmt: skip
    return Reproduction(out, claims, results, {**seconds, "total": total}, md)


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def render_markdown(header: dict, claims: list[dict], results: dict) -> str:
    """REPRODUCTION.md: the header (command, machine, date, seconds), the claims table, training."""
    m = header["machine"]
    tr = results["train"]["history"]
    cfg = header["config"]
    counted = [r for r in claims if r["verdict"] in ("held", "not held")]
    held = sum(r["verdict"] == "held" for r in claims)
    lines = [
        "# Reproduction of the paper's checkable claims",
        "",
        "Li, Wang, Zhang, *Visualizing the Emergence of Intermediate Visual Patterns in DNNs*, NeurIPS 2021,",
        "measured on the bundled SmallVGG and generated shapes data by `patternviz_widget.reproduce`.",
        "",
        f"- **Command:** `{header['command']}`",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} torch threads "
        f"(training: {cfg['train_threads']}), Python {m['python']}" + (f", GPU {m['gpu']}" if m.get("gpu") else ""),
        f"- **Date:** {header['date']}",
        (f"- **Code:** commit {m['git']['commit']}" + (f", with uncommitted changes to {', '.join(m['git']['uncommitted_package_files'])}"
         if m["git"]["uncommitted_package_files"] else "") if m.get("git") else "- **Code:** not a git checkout"),
        f"- **Total seconds:** {sum(header['stage_seconds'].values()):.1f} summed over the stages; this invocation "
        f"{header['total_seconds']:.1f} (stages: "
        + ", ".join(f"{k} {v:.1f}" for k, v in header["stage_seconds"].items()) + ")"
        + (f"; load average at the end {header['load']}" if header.get("load") else "")
        + (f"; stages reused from an earlier run into the same folder with the same settings and code "
           f"(their seconds are that run's): {', '.join(header['reused_stages'])}" if header.get("reused_stages") else ""),
        f"- **Result:** {held} of {len(claims)} claims held; {len(counted)} counted "
        f"({sum(r['verdict'] == 'degenerate' for r in claims)} degenerate, "
        f"{sum(r['verdict'] == 'not measured' for r in claims)} not measured).",
    ]  # fmt: skip
    if header.get("quick"):
        lines += [
            "",
            "**--quick run: tiny sizes for the test suite; the verdicts below are not evidence.**",
        ]
    lines += [
        "",
        "| # | claim | ours | paper | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in claims:
        cells = [str(r["claim"]), r["name"], r["ours"], r["paper"] or "—", f"**{r['verdict']}**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "## Criteria (fixed before the run; one set of method defaults for every claim)",
        "",
    ]
    for r in claims:
        lines.append(
            f"{r['claim']}. {r['name']}: {r['criterion'] or '—'}"
            + (f". Note: {r['note']}" if r["note"] else "")
        )
    acc = tr["probe_accuracy"]
    regions = ", ".join(
        f"{n}: {d['regions']} regions × {d['channels']} channels"
        for n, d in results["emergence"]["regions_per_layer"].items()
    )
    lines += [
        "",
        "## Setting",
        "",
        f"- Data: `pv.datasets.{cfg['dataset']}` {cfg['size']} px, {cfg['num_classes']} classes, {cfg['n_train']} training "
        f"images, {cfg['n_probe']} held-out probe images (with object masks).",
        f"- Model: SmallVGG widths {tuple(cfg['widths'])}, hidden {cfg['hidden']}; {tr['optimiser']} (max lr {cfg['max_lr']}, "
        f"weight decay {cfg['weight_decay']}), batch {cfg['batch_size']}, {cfg['epochs']} epochs = {tr['final_iteration']} "
        f"iterations, {tr['train_seconds']:.1f} s of optimiser steps on {tr['threads']} thread(s) "
        f"({tr['seconds']:.1f} s with checkpoint evaluation).",
        "- Probe accuracy at the checkpoints (iteration: accuracy): "
        + ", ".join(f"{it}: {a:.3f}" for it, a in zip(tr["iteration"], acc)) + ".",
        f"- Embedding: `study.embed()` defaults (the paper's preset){' with ' + str(cfg['embed']) if cfg['embed'] else ''}, "
        f"T = {cfg['temperature']}, τ = {cfg['threshold']}, every cell of a {cfg['grid'][0]}×{cfg['grid'][1]} grid per layer "
        f"({regions}); "
        f"fits took {results['emergence']['embed_seconds']:.1f} s.",
        f"- Attack: PGD-ℓ∞ ε = {cfg['attack_eps']:.4f}, {cfg['attack_steps']} steps on the final model; trajectories traced at the top layer.",
        f"- Distillation: two students (same architecture) for {cfg['distill_epochs']} epochs of Adam (lr {cfg.get('distill_lr', 1e-3)}), "
        f"α = {cfg['distill_alpha']}, T = 4: on the logits, and on the top stage's features (MSE); projected with the "
        "teacher's Λ. Probe accuracy: " + ", ".join(f"{k} {v['probe_accuracy']:.3f}" for k, v in results["distill"]["students"].items())
        + (" (teacher " + f"{acc[-1]:.3f})." if acc else "."),
        "",
        "## Degeneracy per checkpoint",
        "",
        "| iteration | probe accuracy | KL(P‖uniform) | 1−cos(μ_a, μ_b) min / max over pairs | degenerate |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    per = results["emergence"]["per_checkpoint"]
    thr = per[str(tr["iteration"][-1])]["degeneracy"]
    thr = {"near_uniform_below": thr.get("near_uniform_below", KL_UNIFORM_FRACTION * thr["log_k"]),
           "mu_collapse_below": thr.get("mu_collapse_below", MU_COLLAPSE)}  # fmt: skip
    for it, a in zip(tr["iteration"], acc):
        d = per[str(it)]["degeneracy"]
        lines.append(
            f"| {it} | {a:.3f} | {d['kl_uniform']:.4f} | {d['min_1_minus_cos_mu']:.4f} / {d.get('max_1_minus_cos_mu', float('nan')):.4f} | {'yes' if d['degenerate'] else 'no'} |"
        )
    lines += [
        "",
        "A claim is *degenerate* (not counted) when its evidence holds by construction at the final checkpoint: "
        f"the network's posterior near uniform (mean KL(P‖uniform) < {thr['near_uniform_below']:.4f} nats, a share of log K) "
        f"or all class directions coinciding (1−cos(μ_a, μ_b) < {thr['mu_collapse_below']:.4g} for every pair), or a fit that "
        "`study.diagnostics()` marks degenerate.",
        "",
        "Figures: `figures/` in the output folder. Every number: `REPRODUCTION.json` and the stage files.",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


__all__ = ["ReproConfig", "Reproduction", "degeneracy", "evaluate_claims", "reproduce", "stage_hash",
           "train_with_checkpoints"]  # fmt: skip
