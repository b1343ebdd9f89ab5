"""Adapters from the benchmarks to our engine and widget (kept in one place so that API changes in
the package touch one file here)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

#: hyper-parameters that make the smoke run take seconds (never used for reported figures)
SMOKE_SAMPLE = {"steps": 50}
SMOKE_REGION = {"epochs": 2, "importance_steps": 2, "partners": 8}


def fit_regions(d: dict[str, Any], device: str | None = None, smoke: bool = False, **hyper: Any) -> tuple[np.ndarray, dict]:
    """Return (h float32[M, 3], info): the paper's sample embedding, then the region embedding.

    ``d`` holds ``features`` [M, C], ``image`` [M], ``sample_features`` [N, C], ``logits`` [N, K]
    (see :mod:`benchmarks.synthetic`). Defaults are the engine's (PAPER.md §8); ``hyper`` overrides
    the region fit's keyword arguments.
    """
    from patternviz_widget.engine.device import pick_device
    from patternviz_widget.engine.embed import as_target_probs, fit_sample_embedding
    from patternviz_widget.engine.region_embed import fit_region_embedding

    dev = pick_device(device)
    probs = as_target_probs(d["logits"], 4.0)
    t = time.perf_counter()
    emb = fit_sample_embedding(d["sample_features"], probs, device=dev, **(SMOKE_SAMPLE if smoke else {}))
    t_sample = time.perf_counter() - t
    t = time.perf_counter()
    stage_end: dict[str, float] = {}

    def cb(stage: str, done: int, total: int) -> None:
        stage_end[stage] = time.perf_counter()

    reg = fit_region_embedding(
        d["features"], d["image"], emb.g, probs, device=dev, callback=cb,
        **{**(SMOKE_REGION if smoke else {}), **hyper},
    )
    t_region = time.perf_counter() - t
    stages, last = {}, t
    for name, end in sorted(stage_end.items(), key=lambda kv: kv[1]):
        stages[name] = round(end - last, 3)
        last = end
    return reg.h, {
        "device": str(dev),
        "sample_fit_s": round(t_sample, 3),
        "region_fit_s": round(t_region, 3),
        "region_stages_s": stages,  # importance (w, v), match (r' table), fit (Λ)
        "n_images": int(d["sample_features"].shape[0]),
        "sample_kl": float(emb.kl),
        "region_params": {k: v for k, v in reg.params.items() if k not in ("channel_importance", "loss_per_epoch")},
    }


def embed_kwargs(smoke: bool) -> dict:
    """Keyword arguments of ``Study.embed`` for the memory section (defaults unless smoke)."""
    return {**SMOKE_SAMPLE, **SMOKE_REGION} if smoke else {}
