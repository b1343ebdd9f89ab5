"""The headless demo job behind ``python -m patternviz_widget demo``: train the bundled CNN on the
shapes data with tracking, attack it with PGD, distil two students, save, write figures and a table.

Resumable: ``<out>/demo.pvz`` (the study, rewritten atomically after every tracked epoch) and
``<out>/demo_model.pt`` (the weights of the last tracked epoch, written after the study) are
continued when present: finished epochs are skipped and training goes on from the checkpoint.
Finished stages (attack, each distilled student: ``student_*.pvz``) are skipped too;
``distill.pvz`` holds the teacher and both students in the teacher's frame (``pv.Study.compare``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import InputError

STUDY_FILE = "demo.pvz"
CHECKPOINT_FILE = "demo_model.pt"
STUDENT_FILES = {"logit KD": "student_logit.pvz", "feature KD": "student_feature.pvz"}
DISTILL_FILE = "distill.pvz"


@dataclass
class DemoConfig:
    """Sizes of the demo run. :meth:`fast` shrinks everything for tests and smoke runs."""

    epochs: int = 8
    n_train: int = 8000
    n_probe: int = 200
    size: int = 32
    num_classes: int = 6
    regions_per_image: int = 48
    batch_size: int = 64
    lr: float = 5e-3  # as the bundled "shapes" recipe (pv.models.recipe("shapes")): one-cycle peak
    widths: tuple = (8, 16, 32, 64)
    eps: float = 8 / 255
    attack_steps: int = 10
    distill_epochs: int = 3
    seed: int = 2020
    embed: dict = field(default_factory=dict)

    @classmethod
    def fast(cls) -> DemoConfig:
        """Tiny settings: a few seconds per epoch on two CPU cores."""
        return cls(epochs=2, n_train=240, n_probe=36, size=32, num_classes=5, regions_per_image=12,
                   attack_steps=3, distill_epochs=1, widths=(16, 32, 64), embed={"fast": True})  # fmt: skip


def _say(log: Callable[[str], None], text: str) -> None:
    log(f"[demo] {text}")


def _save_checkpoint(path: Path, epoch: int, model: torch.nn.Module) -> None:
    """Write the weights of ``epoch`` atomically (temp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"epoch": int(epoch), "model": model.state_dict()}, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt checkpoint means "start over", never a crash
        return None
    return ckpt if isinstance(ckpt, dict) and "epoch" in ckpt and "model" in ckpt else None


def _tracked_epochs(study: Any) -> list[int]:
    from .results import RegionEmbedding

    model = study.store.meta.get("model_name", "main")
    return sorted(
        {k.epoch for k in study.store.find(RegionEmbedding, model=model, condition="clean")}
    )


def run_demo(
    out: str | Path = "demo_out",
    epochs: int | None = None,
    device: str | None = None,
    fast: bool = False,
    attack: bool = True,
    distill: bool = True,
    formats: tuple[str, ...] = ("png", "pdf"),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo into ``out``; return a summary dict (paths, seconds per stage, table rows)."""
    import patternviz_widget as pv

    from .figures.batch import write_figures

    cfg = DemoConfig.fast() if fast else DemoConfig()
    if epochs is not None:
        if epochs < 1:
            raise InputError(f"--epochs must be >= 1, got {epochs}.")
        cfg.epochs = int(epochs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study_path, ckpt_path = out / STUDY_FILE, out / CHECKPOINT_FILE
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    _say(log, f"settings: {asdict(cfg)}; output in {out.resolve()}")

    train = pv.datasets.shapes(
        n=cfg.n_train, size=cfg.size, num_classes=cfg.num_classes, seed=cfg.seed
    )
    probe = pv.datasets.shapes(
        n=cfg.n_probe, size=cfg.size, num_classes=cfg.num_classes, seed=cfg.seed + 1
    )
    torch.manual_seed(cfg.seed)
    model = pv.models.SmallVGG(in_channels=3, num_classes=cfg.num_classes, widths=cfg.widths)
    layers = list(model.default_layers)
    study = pv.Study(model, probe, layers=layers, device=device, regions_per_image=cfg.regions_per_image,
                     seed=cfg.seed, model_name="main")  # fmt: skip
    model = study.model

    # ---- resume ----------------------------------------------------------------------------------
    start = 0
    if study_path.exists():
        old = pv.Study.load(study_path)
        done = _tracked_epochs(old)
        ckpt = _load_checkpoint(ckpt_path)
        if ckpt is not None and ckpt["epoch"] in done:
            model.load_state_dict(ckpt["model"])
            for key in [
                k
                for k, _ in old.store.items()
                if k.epoch > ckpt["epoch"] and k.condition == "clean"
            ]:
                old.store.drop(key)
            if int(ckpt["epoch"]) < cfg.epochs:  # training goes on: older attack results are stale
                for key in [k for k, _ in old.store.items() if k.condition != "clean"]:
                    old.store.drop(key)
            study.store = old.store
            start = int(ckpt["epoch"]) + 1
            _say(
                log,
                f"resuming {study_path}: epochs {done} found, continuing after epoch {ckpt['epoch']}",
            )
        else:
            backup = study_path.with_suffix(".pvz.bak")
            os.replace(study_path, backup)
            _say(
                log,
                f"{study_path} has no matching checkpoint; kept it as {backup.name} and start over",
            )

    # ---- training with tracking ------------------------------------------------------------------
    t0 = time.perf_counter()
    tracker = study.tracker(every=1, path=study_path, **cfg.embed)

    def snapshot(epoch: int) -> None:
        snap = tracker.snapshot(epoch)
        _save_checkpoint(ckpt_path, epoch, model)
        kps = ", ".join(f"{layer} {snap.kp_total.get(layer, float('nan')):.1f}" for layer in layers)
        _say(
            log,
            f"epoch {epoch}/{cfg.epochs} tracked: KPs/image {kps} ({sum(snap.seconds.values()):.1f} s)",
        )

    if start == 0:
        snapshot(0)
        start = 1
    if start <= cfg.epochs:
        pv.models.train(model, train, epochs=cfg.epochs - start + 1, lr=cfg.lr, batch_size=cfg.batch_size,
                        device=study.device, progress=False, seed=cfg.seed + start,
                        on_epoch_end=lambda e, _m: snapshot(start + e - 1))  # fmt: skip
    else:
        _say(log, f"training: all {cfg.epochs} epochs already tracked")
    acc = pv.models.evaluate(model, probe, device=study.device)
    _say(log, f"probe accuracy after epoch {cfg.epochs}: {acc:.1%}")
    seconds["train+track"] = time.perf_counter() - t0

    # ---- adversarial -----------------------------------------------------------------------------
    if attack:
        t0 = time.perf_counter()
        if "adversarial" in study.store.conditions():
            _say(log, "attack: already done")
        else:
            summary = study.attack(
                method="pgd", eps=cfg.eps, steps=cfg.attack_steps, progress=False
            )
            _say(log, f"attack: {summary!r}")
            study.embed(progress=False, **cfg.embed)
            study.save(study_path)
        seconds["attack"] = time.perf_counter() - t0

    # ---- distillation ----------------------------------------------------------------------------
    distill_study = None
    if distill:
        t0 = time.perf_counter()
        students = {}
        for mode, name in STUDENT_FILES.items():
            path = out / name
            if path.exists() and cfg.epochs in pv.Study.load(path).store.epochs():
                _say(log, f"distillation ({mode}): already done ({path.name})")
                students[mode] = pv.Study.load(path)
                continue
            torch.manual_seed(cfg.seed + 7)
            student = pv.models.SmallVGG(
                in_channels=3, num_classes=cfg.num_classes, widths=cfg.widths
            )
            hist = pv.distill(model, student, train, epochs=cfg.distill_epochs, device=study.device,
                              feature_layer=layers[-1] if mode == "feature KD" else None,
                              batch_size=cfg.batch_size, progress=False, seed=cfg.seed)  # fmt: skip
            s_study = pv.Study(student, probe, layers=layers, device=device, seed=cfg.seed,
                               regions_per_image=cfg.regions_per_image, model_name="student")  # fmt: skip
            s_study.capture(epoch=cfg.epochs, progress=False)
            s_study.save(path)
            students[mode] = s_study
            _say(log, f"distillation ({mode}): student train accuracy {hist.accuracy[-1]:.1%}, "
                      f"agreement with the teacher {hist.agreement[-1]:.1%} -> {path.name}")  # fmt: skip
        distill_study = pv.Study.compare(study, students)
        distill_study.save(out / DISTILL_FILE)
        seconds["distill"] = time.perf_counter() - t0

    # ---- figures and table -----------------------------------------------------------------------
    t0 = time.perf_counter()
    written, skipped = write_figures(study, out / "figures", formats=formats, log=log)
    if distill_study is not None:
        more, skipped_d = write_figures(distill_study, out / "figures", formats=formats, log=log)
        written, skipped = written + more, skipped + skipped_d
    seconds["figures"] = time.perf_counter() - t0
    rows = pv.figures.knowledge_table(study)
    log("")
    log("Knowledge points per image (τ = 0.4) of the tracked model, per condition/epoch/layer:")
    log(pv.figures.format_table(rows))
    if distill_study is not None:
        log("")
        log(f"Teacher and students (logit KD; feature KD on {layers[-1]}), epoch {cfg.epochs}:")
        log(pv.figures.format_table(pv.figures.knowledge_table(distill_study)))
    total = time.perf_counter() - t_start
    seconds["total"] = total
    log("")
    _say(log, "seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    _say(log, f"done: {study_path} and {len(written)} figure files in {out / 'figures'}")
    return {
        "study": study_path,
        "figures": written,
        "skipped": skipped,
        "seconds": seconds,
        "rows": rows,
    }
