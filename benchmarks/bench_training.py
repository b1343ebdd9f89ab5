"""Training section: every bundled recipe (``pv.models.RECIPES``) trained as shipped, with its test
accuracy, seconds and torch threads, and the 1-vs-2-thread step time of each recipe's model.

Seconds are wall-clock for the training steps (``TrainedRecipe.seconds``) and the process's CPU
seconds over the same call: with one thread the CPU seconds are what the wall clock would read on
a quiet machine, so a run on busy cores still says what a quiet one takes. Thread timings
alternate 1 and 2 threads (1, 2, 2, 1, ...) and report medians, so a change of load mid-run hits
both alike.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any


def _step_ms(model, x, y, threads: int, steps: int) -> float:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):  # warm-up
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def thread_timing(
    recipe, train_data, rounds: int = 5, steps: int = 5, batch_size: int | None = None
) -> dict[str, Any]:
    """Median ms per training step (one batch, the recipe's size unless ``batch_size``) with 1 and
    with 2 threads."""
    import torch

    from patternviz_widget.models import macs_per_image

    model = recipe.build_model(0)
    bs = batch_size or recipe.train["batch_size"]
    x, y = train_data.images[:bs], train_data.labels[:bs]
    before = torch.get_num_threads()
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        for r in range(rounds):
            for t in (1, 2) if r % 2 == 0 else (2, 1):
                times[t].append(round(_step_ms(model, x, y, t, steps), 1))
    finally:
        torch.set_num_threads(before)
    m1, m2 = statistics.median(times[1]), statistics.median(times[2])
    return {"macs_per_image": macs_per_image(model, x[0]), "batch_size": bs, "ms_1_thread": times[1],
            "ms_2_threads": times[2], "median_ms_1": m1, "median_ms_2": m2, "ratio_2_over_1": round(m2 / m1, 3)}  # fmt: skip


def run(
    smoke: bool = False, names: tuple[str, ...] | None = None, device: str | None = None
) -> dict[str, Any]:
    """Train every recipe (smoke: one epoch on 128 images) and time 1 vs 2 threads."""
    import patternviz_widget as pv

    rows = []
    for name in names or tuple(pv.models.RECIPES):
        r = pv.models.recipe(name)
        t0 = time.perf_counter()
        train, test = r.datasets() if not smoke else _small(r)
        gen_s = time.perf_counter() - t0
        timing = thread_timing(
            r,
            train,
            rounds=1 if smoke else 5,
            steps=1 if smoke else 5,
            batch_size=8 if smoke else None,
        )
        load0 = os.getloadavg()[0]
        c0 = time.process_time()
        run_ = pv.models.train_recipe(
            r, data=(train, test), device=device, **({"epochs": 1} if smoke else {})
        )
        cpu = time.process_time() - c0
        rows.append({
            "recipe": name, "description": r.description, "settings": r.train, "model": r.model,
            "train_images": len(train), "test_images": len(test), "data_seconds": round(gen_s, 1),
            "test_accuracy": round(run_.test_accuracy, 4), "target": r.min_accuracy,
            "accuracy_by_epoch": [round(a, 4) for a in run_.history["test_accuracy"]],
            "seconds": round(run_.seconds, 3), "cpu_seconds": round(cpu, 3), "threads": run_.threads,
            "steps": run_.history["steps"][-1], "load_avg_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "thread_timing": timing,
        })  # fmt: skip
    return {"rows": rows, "smoke": smoke}


def _small(r):
    """Smoke data: the recipe's own generator at 128 / 64 images (digits: the first of its split)."""
    import patternviz_widget as pv

    make = getattr(pv.datasets, r.dataset)
    train = make(**{**r.train_data, **({"n": 128} if "n" in r.train_data else {})})
    test = make(**{**r.test_data, **({"n": 64} if "n" in r.test_data else {})})
    return train.subset(range(128)), test.subset(range(64))


def describe(r: dict[str, Any]) -> list[str]:
    """Markdown lines for RESULTS.md."""
    lines = [
        "| recipe | test accuracy (target) | training s (wall) | CPU s | threads | steps | 1 thread ms/step | "
        "2 threads ms/step | 2/1 | MACs/image | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        t = x["thread_timing"]
        lines.append(
            f"| {x['recipe']} | **{x['test_accuracy']:.3f}** (≥ {x['target']}) | {x['seconds']:.1f} | {x['cpu_seconds']:.1f} | "
            f"{x['threads']} | {x['steps']} | {t['median_ms_1']:.0f} | {t['median_ms_2']:.0f} | {t['ratio_2_over_1']:.2f} | "
            f"{t['macs_per_image'] / 1e6:.1f} M | {x['load_avg_before_after'][0]} → {x['load_avg_before_after'][1]} |"
        )
    lines += ["", "Training s: the training steps on the wall clock (data generation and per-epoch test "
              "evaluation excluded); CPU s: the process's CPU time over the same call (with one thread, "
              "what a quiet machine's wall clock reads). Thread timings: medians of alternated runs."]  # fmt: skip
    return lines


if __name__ == "__main__":
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--recipes", default="")
    a = p.parse_args()
    res = run(smoke=a.smoke, names=tuple(n for n in a.recipes.split(",") if n) or None)
    print(json.dumps(res, indent=1))
    print("\n".join(describe(res)))
