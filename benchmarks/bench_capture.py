"""Section 1: capture overhead — ``Study.capture()`` of 4 layers vs a plain forward pass.

Both read the same images through the same batch iterator (``study.data.batches(batch_size)``), at
the same batch size, on the same device, in eval mode under ``torch.inference_mode()``. The plain
pass only calls ``model(x)``; ours also hooks 4 layers, gathers the study's region budget from each,
checks them for NaN/Inf and copies them (and the sample features and logits) to CPU numpy. Runs
alternate (forward, capture, forward, capture, ...) so that load from other processes hits both
alike; the ratio uses medians (and minima, reported too). Target: ratio <= 1.10.

When the ratio is above target, one capture is profiled with cProfile and the top functions by
own time are reported, to show where the extra time goes.

Scaling (:func:`scaling`): the same BenchVGG capture of the same images in 1 process and sharded
over 2 processes under ``torchrun`` (gloo, CPU; ``patternviz_widget.pipeline.distributed``): 1
process with all cores' threads, 1 process with 1 thread, 2 processes with cores / 2 threads each.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from ._common import fmt_s

TARGET = 1.10


class BenchVGG(nn.Module):
    """A VGG-style CNN for 64x64 RGB: 4 conv blocks (32-64-128-256 channels), GAP, linear head."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, padding=1),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(),
            ]
            layers += [nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    @property
    def conv_layers(self) -> list[str]:
        """The names of the ReLU after the last conv of each block (4 layers)."""
        relus = [n for n, m in self.named_modules() if isinstance(m, nn.ReLU)]
        return relus[1::2]


def make_model_and_data(n_images: int, size: int = 64, width: int = 32, seed: int = 0):
    """Return (model, images uint8[N,3,H,W], labels int64[N], layers)."""
    torch.manual_seed(seed)
    model = BenchVGG(width=width).eval()
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_images, 3, size, size), dtype=np.uint8)
    labels = np.arange(n_images) % 10
    return model, images, labels, model.conv_layers


def make_demo(n_images: int, size: int = 64):
    """Return (model, dataset, layers): the bundled demo, ``pv.models.SmallVGG`` (3 -> 16-32-64,
    untrained: speed does not depend on the weights) on ``pv.datasets.shapes`` (a Dataset with
    masks), 4 ReLU layers."""
    import patternviz_widget as pv

    torch.manual_seed(0)
    model = pv.models.SmallVGG(in_channels=3, num_classes=6).eval()
    data = pv.datasets.shapes(n=n_images, size=size, num_classes=6)
    relus = [n for n, m in model.features.named_modules() if isinstance(m, nn.ReLU)]
    layers = [f"features.{n}" for n in relus[-4:]]
    return model, data, layers


def plain_forward(study) -> float:
    """Seconds for a plain forward pass over the study's images (same batches, device, mode)."""
    model, device = study.model, study.device
    was_training = model.training
    model.eval().to(device)
    t = time.perf_counter()
    with torch.inference_mode():
        for batch in study.data.batches(study.batch_size):
            model(batch.images.to(device, non_blocking=True))
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    model.train(was_training)
    return dt


def timed_capture(study) -> float:
    t = time.perf_counter()
    study.capture(progress=False)
    if study.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def profile_capture(study, top: int = 18) -> list[str]:
    """Return the top lines (by own time) of a cProfile of one capture."""
    import cProfile
    import io
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    study.capture(progress=False)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    return [ln.rstrip() for ln in s.getvalue().splitlines() if ln.strip()][-(top + 1) :]


def run(
    n_images: int = 2048,
    batch_size: int = 64,
    size: int = 64,
    width: int = 32,
    repeats: int = 5,
    device: str | None = None,
    profile: bool = True,
    configs: tuple[str, ...] = ("bench_vgg", "demo"),
    log=print,
    scaling_configs: tuple[tuple[int, int | None], ...] | None = ((1, None), (1, 1), (2, None)),
) -> dict:
    """Run section 1 for each model/data configuration and return its JSON-able result.

    Configurations: "bench_vgg" = :class:`BenchVGG` (width 32, 64x64 RGB from a uint8 tensor);
    "demo" = the bundled SmallVGG on the shapes Dataset (cheaper per image, so capture's fixed
    costs weigh more). ``scaling_configs``: (processes, threads) of :func:`scaling` (None: skip it)."""
    out = {
        "runs": [
            _run_one(c, n_images, batch_size, size, width, repeats, device, profile, log)
            for c in configs
        ],
        "target": TARGET,
    }
    if scaling_configs:
        out["scaling"] = scaling(
            n_images,
            scaling_configs,
            size=size,
            width=width,
            batch_size=batch_size,
            repeats=repeats,
            log=log,
        )
    return out


def scaling(
    n_images: int = 2048,
    configs: tuple[tuple[int, int | None], ...] = ((1, None), (1, 1), (2, None)),
    size: int = 64,
    width: int = 32,
    batch_size: int = 64,
    repeats: int = 3,
    timeout_s: float = 900,
    log=print,
) -> dict:
    """Time ``study.capture()`` of the same images in P processes of T threads each, for each
    ``(P, T)`` of ``configs`` (T None: cores // P) under ``torchrun`` (gloo, CPU); return the
    medians, the launch wall times and the speed-up over the first configuration."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    cores = os.cpu_count() or 1
    root = Path(__file__).resolve().parent.parent
    runs = []
    for p, threads in configs:
        threads = threads or max(1, cores // p)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "scaling.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p}",
                   "-m", "benchmarks._capture_scaling", str(out), str(n_images), str(size), str(width),
                   str(batch_size), str(repeats)]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            t = time.perf_counter()
            proc = subprocess.run(
                cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s
            )
            wall = time.perf_counter() - t
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(
                    f"capture scaling with {p} processes failed:\n{proc.stderr[-3000:]}"
                )
            res = json.loads(out.read_text())
        res["launch_wall_s"] = round(wall, 2)
        runs.append(res)
        log(
            f"[capture] scaling: {n_images} images, {p} process(es) x {res['torch_threads']} threads: "
            f"capture {fmt_s(res['capture_median_s'])} (launch {wall:.1f} s)"
        )
    base = runs[0]["capture_median_s"]
    for r in runs:
        r["speedup"] = round(base / r["capture_median_s"], 3)
    return {
        "model": f"BenchVGG(width={width}), input 3x{size}x{size}, batch {batch_size}, cpu, gloo",
        "n_images": n_images,
        "cores": cores,
        "runs": runs,
    }


def _run_one(config, n_images, batch_size, size, width, repeats, device, profile, log) -> dict:
    import patternviz_widget as pv

    if config == "bench_vgg":
        model, images, labels, layers = make_model_and_data(n_images, size, width)
        data = (images, labels)
        desc = f"BenchVGG(width={width}) on uint8 tensors"
        shape = [3, size, size]
    else:
        model, data, layers = make_demo(n_images, size)
        desc = "pv.models.SmallVGG on pv.datasets.shapes (Dataset with masks)"
        shape = list(data[0][0].shape)
    t = time.perf_counter()
    study = pv.Study(
        model, data, layers=layers, num_classes=None, batch_size=batch_size, device=device
    )
    setup_s = time.perf_counter() - t
    plain_forward(study)  # warm-up (allocator, kernels)
    timed_capture(study)
    fwd, cap = [], []
    for _ in range(repeats):
        fwd.append(plain_forward(study))
        cap.append(timed_capture(study))
    ratio = statistics.median(cap) / statistics.median(fwd)
    res = {
        "config": config,
        "n_images": n_images,
        "batch_size": batch_size,
        "input": shape,
        "model": f"{desc}, {sum(p.numel() for p in model.parameters()):,} parameters",
        "layers": layers,
        "regions_kept": {layer: int(study.region_plans[layer].size) for layer in layers},
        "regions_per_image": study.regions_per_image,
        "device": str(study.device),
        "repeats": repeats,
        "study_setup_s": round(setup_s, 3),
        "forward_s": [round(x, 4) for x in fwd],
        "capture_s": [round(x, 4) for x in cap],
        "forward_median_s": round(statistics.median(fwd), 4),
        "capture_median_s": round(statistics.median(cap), 4),
        "ratio_median": round(ratio, 3),
        "ratio_min": round(min(cap) / min(fwd), 3),
        "target": TARGET,
        "meets_target": ratio <= TARGET,
    }
    log(
        f"[capture] {config}: {n_images} images x {len(layers)} layers, batch {batch_size}, {study.device}: "
        f"forward {fmt_s(res['forward_median_s'])}, capture {fmt_s(res['capture_median_s'])} -> "
        f"ratio {ratio:.3f} (min-based {res['ratio_min']:.3f}; target <= {TARGET})"
    )
    if profile and ratio > TARGET:
        res["profile_top_tottime"] = profile_capture(study)
        log(
            "[capture] above target; cProfile top by own time:\n  "
            + "\n  ".join(res["profile_top_tottime"][:12])
        )
    return res
