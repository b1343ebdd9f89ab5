"""Section 5: peak RSS of capture + embedding for 10,000 images x 4 layers at the default budget.

Runs in a fresh process (:func:`benchmarks._common.run_worker`): the images (uint8, 3x64x64) are
made first, then ``pv.Study`` with its default region budget (``regions_per_image=64``,
``max_regions=200_000``), ``study.capture()`` and ``study.embed()``. The process's peak RSS
(``ru_maxrss``) is read after each stage, so each stage's figure is "peak so far"; the sizes of what
the store holds are reported beside it.
"""

from __future__ import annotations

import time

from ._common import fmt_s, peak_rss_mb, rss_mb, run_worker


def memory_one(
    n_images: int,
    smoke: bool = False,
    device: str | None = None,
    progress_path: str | None = None,
    preset: str = "paper",
) -> dict:
    """Child side: build, capture, embed; return per-stage peak RSS (MiB) and seconds (also written
    to ``progress_path`` after every stage, so a timeout keeps the stages that finished).
    ``preset``: "paper" (Study.embed defaults) or "fast" (Study.embed(fast=True): fewer steps and
    30 partners instead of 100, so a smaller matching block per group)."""
    import json

    import torch

    import patternviz_widget as pv

    from .bench_capture import make_model_and_data
    from .ours import embed_kwargs

    torch.manual_seed(0)
    stages: dict[str, dict] = {
        "start": {"peak_rss_mb": round(peak_rss_mb(), 1), "rss_mb": round(rss_mb(), 1)}
    }

    def mark(name: str, t0: float) -> None:
        stages[name] = {
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_mb": round(rss_mb(), 1),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if progress_path:
            with open(progress_path, "w") as fh:
                json.dump(stages, fh)

    t = time.perf_counter()
    model, images, labels, layers = make_model_and_data(
        n_images, size=32 if smoke else 64, width=8 if smoke else 32
    )
    mark("data (uint8 images) + model", t)
    t = time.perf_counter()
    study = pv.Study(model, (images, labels), layers=layers, num_classes=10, device=device)
    mark("Study(...)", t)
    t = time.perf_counter()
    study.capture(progress=False)
    mark("capture()", t)
    store = study.store
    captured = sum(rec.nbytes for _, rec in store.items())
    t = time.perf_counter()
    study.embed(
        progress=False,
        **({"fast": True} if preset == "fast" and not smoke else embed_kwargs(smoke)),
    )
    mark("embed()", t)
    total = sum(rec.nbytes for _, rec in store.items())
    return {
        "n_images": n_images,
        "layers": layers,
        "device": str(study.device),
        "embed_preset": "smoke" if smoke else preset,
        "regions_per_image": study.regions_per_image,
        "max_regions": study.max_regions,
        "regions_kept": {layer: int(study.region_plans[layer].size) for layer in layers},
        "images_mb": round(images.nbytes / 2**20, 1),
        "store_after_capture_mb": round(captured / 2**20, 1),
        "store_after_embed_mb": round(total / 2**20, 1),
        "stages": stages,
    }


def run(
    n_images: int = 10_000,
    smoke: bool = False,
    device: str | None = None,
    timeout_s: float = 2400,
    preset: str = "paper",
    log=print,
) -> dict:
    """Run section 5 in a subprocess and return its JSON-able result."""
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="pvbench_mem_") as tmp:
        prog = Path(tmp) / "stages.json"
        res = run_worker(
            "benchmarks.bench_memory:memory_one",
            {
                "n_images": n_images,
                "smoke": smoke,
                "device": device,
                "progress_path": str(prog),
                "preset": preset,
            },
            timeout_s,
        )
        if res.get("status") != "ok":
            done = json.loads(prog.read_text()) if prog.exists() else {}
            raise RuntimeError(f"memory worker {res.get('status')} after stages {done}: {res}")
    for name, st in res["stages"].items():
        log(
            f"[memory] {name:28s} peak RSS {st['peak_rss_mb']:7.0f} MiB  {fmt_s(st.get('seconds'))}"
        )
    return res
