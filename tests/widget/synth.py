"""A synthetic study store for widget tests, with geometry known by construction.

K classes with orthogonal directions μ_c. Region (i, cell) of layer ℓ at epoch e sits at
``s(ℓ, e) · μ_{y_i}`` (+ noise) when the cell lies on the object and near the origin otherwise, so
deeper layers and later epochs are more discriminative. Thumbnails are coloured squares on grey.
"""

from __future__ import annotations

import numpy as np

from patternviz_widget.results import (
    SAMPLE,
    Key,
    ProbeRecord,
    RegionEmbedding,
    RegionRecord,
    ResultStore,
    SampleEmbedding,
    SampleRecord,
)

CLASS_NAMES = ["circle", "square", "<b>triangle</b>"]  # an HTML-looking name must render as text
INPUT = 32


def make_store(
    n_images: int = 12,
    layers: tuple[str, ...] = ("features.2", "features.5", "features.9"),
    epochs: tuple[int, ...] = (0, 1, 2),
    conditions: tuple[str, ...] = ("clean",),
    models: tuple[str, ...] = ("main",),
    grid: int = 4,
    seed: int = 0,
) -> ResultStore:
    """Return a filled store: probe, sample/region records and embeddings for every key."""
    store = ResultStore()
    rng = np.random.default_rng(seed)
    k = len(CLASS_NAMES)
    labels = np.arange(n_images) % k
    colors = np.array([[78, 121, 167], [242, 142, 43], [225, 87, 89]], np.uint8)
    thumbs = np.full((n_images, 16, 16, 3), 128, np.uint8)
    for i in range(n_images):
        thumbs[i, 4:12, 4:12] = colors[labels[i]]
    store.probe = ProbeRecord(
        labels=labels.astype(np.int64), thumbnails=thumbs, input_size=(INPUT, INPUT),
        class_names=list(CLASS_NAMES), data_index=np.arange(n_images) + 100, masks=None,
    )  # fmt: skip
    store.meta.update({"layers": list(layers), "class_names": list(CLASS_NAMES), "num_classes": k,
                       "model_name": models[0], "seed": seed})  # fmt: skip
    for model in models:
        for condition in conditions:
            for e in epochs:
                add_epoch(store, rng, model, condition, e, layers, len(epochs), grid)
    return store


def add_epoch(store: ResultStore, rng: np.random.Generator, model: str, condition: str, e: int,
              layers: tuple[str, ...], n_epochs: int, grid: int) -> None:  # fmt: skip
    """Put the sample and region records of one (model, condition, epoch)."""
    labels = np.asarray(store.probe.labels)
    n, k = labels.shape[0], len(CLASS_NAMES)
    mu = np.eye(3, dtype=np.float32)[:k]
    grow = (e + 1) / n_epochs
    shift = 1 if condition == "adversarial" else 0
    g = mu[(labels + shift) % k] * (1 + 2 * grow) + rng.normal(0, 0.2, (n, 3))
    key = Key(model, condition, e, SAMPLE)
    store.put(key, SampleRecord(features=rng.normal(size=(n, 8)).astype(np.float32),
                                logits=(g @ mu.T * 3).astype(np.float32)))  # fmt: skip
    store.put(key, SampleEmbedding(g=g.astype(np.float32), mu=mu, pi=np.full(k, 1 / k, np.float32),
                                   M=np.zeros((3, 8), np.float32), kl=0.1))  # fmt: skip
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    cells = np.stack([rows.ravel(), cols.ravel()], 1)
    on_object = (cells.min(axis=1) >= 1) & (cells.max(axis=1) <= grid - 2)
    cell = INPUT / grid
    for depth, layer in enumerate(layers):
        image = np.repeat(np.arange(n), len(cells)).astype(np.int32)
        gr = np.tile(cells, (n, 1)).astype(np.int16)
        obj = np.tile(on_object, n)
        strength = (0.3 + depth) * (0.2 + grow) * obj + 0.05
        h = mu[(labels[image] + shift) % k] * strength[:, None] + rng.normal(
            0, 0.1, (len(image), 3)
        )
        box = np.stack([gr[:, 1] * cell, gr[:, 0] * cell, (gr[:, 1] + 1) * cell,
                        (gr[:, 0] + 1) * cell], 1).astype(np.float32)  # fmt: skip
        lk = Key(model, condition, e, layer)
        store.put(lk, RegionRecord(features=rng.normal(size=(len(image), 4)).astype(np.float32),
                                   image=image, grid=gr, box=box, grid_shape=(grid, grid)))  # fmt: skip
        store.put(lk, RegionEmbedding(h=h.astype(np.float32), Lambda=np.zeros((3, 4), np.float32),
                                      w=np.full(len(image), 1 / len(cells), np.float32),
                                      mean_strength=float(np.linalg.norm(h, axis=1).mean())))  # fmt: skip
