"""Adapters from the benchmarks to our engine and widget (kept in one place so that API changes in
the package touch one file here)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

#: hyper-parameters that make the smoke run take seconds (never used for reported figures)
SMOKE_SAMPLE = {"steps": 50}
SMOKE_REGION = {"epochs": 2, "importance_steps": 2, "partners": 8}


def fast_preset() -> tuple[dict, dict]:
    """(sample kwargs, region kwargs) of ``Study.embed(fast=True)`` — a demo preset, not the paper's."""
    from patternviz_widget.pipeline.embed import FAST

    region = {("epochs" if k == "region_epochs" else k): v for k, v in FAST.items() if k != "steps"}
    return {k: v for k, v in FAST.items() if k == "steps"}, region


def fit_regions(
    d: dict[str, Any],
    device: str | None = None,
    smoke: bool = False,
    fast: bool = False,
    keep_w: bool = False,
    **hyper: Any,
) -> tuple[np.ndarray, dict]:
    """Return (h float32[M, 3], info): the paper's sample embedding, then the region embedding.

    ``d`` holds ``features`` [M, C], ``image`` [M], ``sample_features`` [N, C], ``logits`` [N, K]
    (see :mod:`benchmarks.synthetic`). Defaults are the engine's (the official code's; docs/method.md); ``hyper`` overrides
    the region fit's keyword arguments. ``keep_w``: also return the regions' importance w as
    ``info["w"]`` (an array).
    """
    from patternviz_widget.engine.device import pick_device
    from patternviz_widget.engine.method.embed import as_target_probs, fit_sample_embedding
    from patternviz_widget.engine.method.region_embed import fit_region_embedding

    dev = pick_device(device)
    sample_kw, region_kw = fast_preset() if fast else ({}, {})
    if smoke:
        sample_kw, region_kw = SMOKE_SAMPLE, SMOKE_REGION
    probs = as_target_probs(d["logits"], 4.0)
    t = time.perf_counter()
    emb = fit_sample_embedding(d["sample_features"], probs, device=dev, **sample_kw)
    t_sample = time.perf_counter() - t
    t = time.perf_counter()
    stage_end: dict[str, float] = {}

    def cb(stage: str, done: int, total: int) -> None:
        stage_end[stage] = time.perf_counter()

    reg = fit_region_embedding(
        d["features"],
        d["image"],
        emb.g,
        probs,
        device=dev,
        callback=cb,
        **{**region_kw, **hyper},
    )
    t_region = time.perf_counter() - t
    stages, last = {}, t
    for name, end in sorted(stage_end.items(), key=lambda kv: kv[1]):
        stages[name] = round(end - last, 3)
        last = end
    return reg.h, {
        "device": str(dev),
        "preset": "smoke"
        if smoke
        else ("fast (Study.embed(fast=True))" if fast else "paper defaults"),
        "sample_fit_s": round(t_sample, 3),
        "region_fit_s": round(t_region, 3),
        "region_stages_s": stages,  # importance (w, v), match (r' table), fit (Λ)
        "n_images": int(d["sample_features"].shape[0]),
        "sample_kl": float(emb.kl),
        "region_params": {
            k: v for k, v in reg.params.items() if k not in ("channel_importance", "loss_per_epoch")
        },
        **({"w": reg.w} if keep_w else {}),
    }


def embed_kwargs(smoke: bool) -> dict:
    """Keyword arguments of ``Study.embed`` for the memory section (defaults unless smoke)."""
    if not smoke:
        return {}
    return {
        **SMOKE_SAMPLE,
        "region_epochs": SMOKE_REGION["epochs"],
        **{k: v for k, v in SMOKE_REGION.items() if k != "epochs"},
    }


# ---------------------------------------------------------------------------------------------
# widget side: a synthetic store whose region embeddings are the benchmark's points
# ---------------------------------------------------------------------------------------------
REGIONS_PER_IMAGE = 64
LAYER = "features.8"


def make_points(
    n: int, epochs: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (xyz float32[E, n, 3], image int32[n], labels int64[N]): 10 class lobes growing out of
    the origin over ``epochs`` (a region embedding over training), 64 regions per image."""
    rng = np.random.default_rng(seed)
    n_img = -(-n // REGIONS_PER_IMAGE)
    labels = (np.arange(n_img) % 10).astype(np.int64)
    image = (np.arange(n) // REGIONS_PER_IMAGE).astype(np.int32)
    dirs = rng.standard_normal((10, 3)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    r = rng.gamma(2.0, 0.5, n).astype(np.float32)[:, None]
    noise = 0.25 * rng.standard_normal((n, 3)).astype(np.float32)
    xyz = np.stack([(dirs[labels[image]] * r) * ((e + 1) / epochs) + noise for e in range(epochs)])
    return xyz.astype(np.float32), image, labels


def make_store(n: int, epochs: int = 1, channels: int = 4, seed: int = 0):
    """Return a ResultStore holding ``n`` regions of one layer (and samples) for ``epochs`` epochs,
    as ``Study.capture()`` + ``Study.embed()`` would leave it (probe, Sample/Region records and
    embeddings); the regional features are small (``channels``) since only h is drawn."""
    from patternviz_widget.results import Key, ResultStore
    from patternviz_widget.results.keys import SAMPLE
    from patternviz_widget.results.records import (
        ProbeRecord,
        RegionEmbedding,
        RegionRecord,
        SampleEmbedding,
        SampleRecord,
    )

    xyz, image, labels = make_points(n, epochs, seed)
    n_img = labels.size
    rng = np.random.default_rng(seed + 1)
    store = ResultStore()
    names = [f"class {c}" for c in range(10)]
    thumbs = rng.integers(0, 256, (n_img, 8, 8, 3), dtype=np.uint8)
    store.probe = ProbeRecord(
        labels=labels,
        thumbnails=thumbs,
        input_size=(64, 64),
        class_names=names,
        data_index=np.arange(n_img, dtype=np.int64),
    )
    store.meta.update(
        {
            "layers": [LAYER],
            "class_names": names,
            "num_classes": 10,
            "model_name": "main",
            "seed": seed,
        }
    )
    cell = np.arange(n) % REGIONS_PER_IMAGE
    grid = np.stack([cell // 8, cell % 8], 1).astype(np.int16)
    box = np.concatenate([grid[:, ::-1] * 8, grid[:, ::-1] * 8 + 8], 1).astype(np.float32)
    mu = np.eye(10, 3, dtype=np.float32) + 0.1
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    for e in range(epochs):
        ks = Key(epoch=e, layer=SAMPLE)
        g = (
            np.stack([xyz[e][image == i].mean(0) for i in range(n_img)])
            if n_img <= 2000
            else xyz[e][::REGIONS_PER_IMAGE][:n_img]
        )
        logits = (rng.standard_normal((n_img, 10)) + 4 * np.eye(10)[labels]).astype(np.float32)
        store.put(
            ks,
            SampleRecord(
                features=rng.standard_normal((n_img, 8)).astype(np.float32), logits=logits
            ),
        )
        store.put(
            ks,
            SampleEmbedding(
                g=g.astype(np.float32),
                mu=mu,
                pi=np.full(10, 0.1, np.float32),
                M=np.zeros((3, 8), np.float32),
            ),
        )
        kr = Key(epoch=e, layer=LAYER)
        feats = rng.standard_normal((n, channels)).astype(np.float32)
        store.put(
            kr, RegionRecord(features=feats, image=image, grid=grid, box=box, grid_shape=(8, 8))
        )
        h = xyz[e]
        store.put(
            kr,
            RegionEmbedding(
                h=h,
                Lambda=np.zeros((3, channels), np.float32),
                w=np.full(n, 1.0 / REGIONS_PER_IMAGE, np.float32),
                mean_strength=float(np.linalg.norm(h, axis=1).mean()),
            ),
        )
    return store


#: the cell a user types to see a store (the display and scrub sections time it)
OURS_CELL = f'w = pv.PatternViz(store, layer="{LAYER}", epoch=0, height=480)\nw'
