"""Real regional features for the embedding section: a trained ``pv.models.SmallVGG`` on
``pv.datasets.shapes``, captured with ``pv.Study`` (a cross-check of the synthetic generator).

The model is trained on its own 1,500 images (32x32, 6 shape classes, 4 epochs), then a separate
probe set is captured at layer ``features.19`` (the last ReLU before the last pooling: 64 channels on an
8x8 grid, all 64 regions per image kept). A region is "on the object" when the centre of its box lies inside the
image's foreground mask (the shapes data carry masks). Saved in the layout of
:func:`benchmarks.bench_embed.save_data`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

LAYER = "features.19"


def save_real_data(
    n_regions: int, path: Path, train_images: int = 1500, epochs: int = 4, seed: int = 0
) -> dict:
    """Train, capture and write ~``n_regions`` real regional features to ``path``; return facts."""
    import torch

    import patternviz_widget as pv
    from patternviz_widget.results import Key
    from patternviz_widget.results.records import RegionRecord, SampleRecord

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    train = pv.datasets.shapes(n=train_images, size=32, num_classes=6, seed=seed + 1)
    model = pv.models.SmallVGG(in_channels=3, num_classes=6)
    hist = pv.models.train(model, train, epochs=epochs, progress=False, seed=seed)
    n_img = max(12, -(-n_regions // 64))
    probe = pv.datasets.shapes(n=n_img, size=32, num_classes=6, seed=seed + 2)
    study = pv.Study(
        model, probe, layers=[LAYER], regions_per_image=None, max_regions=None, seed=seed
    )
    study.capture(progress=False)
    rec = study.store.get(Key(layer=LAYER), RegionRecord)
    smp = study.store.get(Key(), SampleRecord)
    labels = np.asarray(study.store.probe.labels, np.int64)
    masks = study.store.probe.masks
    cx = ((rec.box[:, 0] + rec.box[:, 2]) / 2).astype(int).clip(0, masks.shape[2] - 1)
    cy = ((rec.box[:, 1] + rec.box[:, 3]) / 2).astype(int).clip(0, masks.shape[1] - 1)
    on = masks[rec.image, cy, cx] > 0
    path.mkdir(parents=True, exist_ok=True)
    arrays = {
        "features": np.asarray(rec.features, np.float32)[:n_regions],
        "image": rec.image[:n_regions],
        "grid": rec.grid[:n_regions],
        "labels": labels,
        "logits": smp.logits,
        "sample_features": smp.features,
        "on_object": on[:n_regions],
    }
    for name, a in arrays.items():
        np.save(path / f"{name}.npy", a)
    (path / "grid_shape.txt").write_text(" ".join(map(str, rec.grid_shape)))
    acc = float((smp.logits.argmax(1) == labels).mean())
    return {
        "source": f"SmallVGG trained on shapes ({train_images} images, {epochs} epochs), layer {LAYER}",
        "train_accuracy": round(float(hist["train_accuracy"][-1]), 3),
        "probe_accuracy": round(acc, 3),
        "probe_images": n_img,
        "dim": int(rec.features.shape[1]),
        "grid": list(rec.grid_shape),
        "on_object_share": round(float(on.mean()), 3),
        "prep_s": round(time.perf_counter() - t0, 1),
    }
