"""A synthetic study store whose geometry is known by construction, for figure tests.

K classes with orthogonal-ish directions μ_c; region r of image i at layer ℓ and epoch e sits at
``s(ℓ, e) · μ_{y_i}`` plus noise when the cell lies on the object, near the origin otherwise, so
deeper layers and later epochs hold more knowledge points. Images are coloured squares on grey
with a foreground mask.
"""

from __future__ import annotations

import numpy as np

from patternviz_widget.results import (
    SAMPLE,
    ArrayRecord,
    Key,
    ProbeRecord,
    RegionEmbedding,
    RegionRecord,
    ResultStore,
    SampleEmbedding,
    SampleRecord,
)

CLASS_NAMES = ["circle", "square", "triangle"]
INPUT = 32


def make_store(
    n_images: int = 9,
    layers: tuple[str, ...] = ("features.2", "features.5", "features.9"),
    epochs: tuple[int, ...] = (0, 1, 2),
    conditions: tuple[str, ...] = ("clean",),
    models: tuple[str, ...] = ("main",),
    grid: int = 4,
    seed: int = 0,
    class_names: tuple[str, ...] | list[str] = tuple(CLASS_NAMES),
) -> ResultStore:
    """Return a filled store: probe, sample/region records and embeddings for every key.

    Up to 3 classes have orthogonal μ_c; more classes spread theirs over the sphere.
    """
    rng = np.random.default_rng(seed)
    k = len(class_names)
    labels = np.arange(n_images) % k
    mu = np.eye(3, dtype=np.float32)[:k] if k <= 3 else _sphere(k)
    thumbs = np.full((n_images, 16, 16, 3), 120, np.uint8)
    masks = np.zeros((n_images, INPUT, INPUT), np.uint8)
    colors = np.array([[78, 121, 167], [242, 142, 43], [225, 87, 89]], np.uint8)[np.arange(k) % 3]
    for i in range(n_images):
        thumbs[i, 4:12, 4:12] = colors[labels[i]]
        masks[i, 8:24, 8:24] = 1
    store = ResultStore()
    store.probe = ProbeRecord(
        labels=labels.astype(np.int64), thumbnails=thumbs, input_size=(INPUT, INPUT),
        class_names=list(class_names), data_index=np.arange(n_images), masks=masks,
    )  # fmt: skip
    store.meta.update({"layers": list(layers), "class_names": list(class_names), "num_classes": k,
                       "model_name": models[0], "seed": seed})  # fmt: skip
    if len(models) > 1:  # a teacher | student study as pv.Study.compare makes it
        store.meta["compare"] = {"models": list(models)}
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    cells = np.stack([rows.ravel(), cols.ravel()], 1)
    on_object = np.array([1 <= r <= 2 and 1 <= c <= 2 for r, c in cells])
    cell = INPUT / grid
    for model in models:
        for condition in conditions:
            for e in epochs:
                grow = (e + 1) / len(epochs)
                g = mu[labels] * (1 + 2 * grow) + rng.normal(0, 0.3, (n_images, 3)).astype(
                    np.float32
                )
                if condition == "adversarial":
                    g = mu[(labels + 1) % k] * (1 + 2 * grow) + rng.normal(0, 0.3, (n_images, 3))
                logits = (g @ mu.T * 3).astype(np.float32)
                key = Key(model, condition, e, SAMPLE)
                store.put(key, SampleRecord(features=rng.normal(size=(n_images, 8)).astype(np.float32),
                                            logits=logits))  # fmt: skip
                store.put(key, SampleEmbedding(g=g.astype(np.float32), mu=mu, pi=np.full(k, 1 / k, np.float32),
                                               M=np.zeros((3, 8), np.float32), kl=0.1))  # fmt: skip
                for depth, layer in enumerate(layers):
                    image = np.repeat(np.arange(n_images), len(cells)).astype(np.int32)
                    gr = np.tile(cells, (n_images, 1)).astype(np.int16)
                    obj = np.tile(on_object, n_images)
                    target = labels[image] if condition == "clean" else np.where(
                        depth == len(layers) - 1, (labels[image] + 1) % k, labels[image])  # fmt: skip
                    strength = (0.3 + depth) * (0.2 + grow) * obj + 0.1
                    h = mu[target] * strength[:, None] + rng.normal(0, 0.15, (len(image), 3))
                    box = np.stack([gr[:, 1] * cell, gr[:, 0] * cell, (gr[:, 1] + 1) * cell,
                                    (gr[:, 0] + 1) * cell], 1).astype(np.float32)  # fmt: skip
                    lk = Key(model, condition, e, layer)
                    store.put(lk, RegionRecord(features=rng.normal(size=(len(image), 4)).astype(np.float32),
                                               image=image, grid=gr, box=box, grid_shape=(grid, grid)))  # fmt: skip
                    ms = float(np.linalg.norm(h, axis=1).mean())
                    store.put(lk, RegionEmbedding(h=h.astype(np.float32), Lambda=np.zeros((3, 4), np.float32),
                                                  w=np.full(len(image), 1 / len(cells), np.float32),
                                                  mean_strength=ms))  # fmt: skip
        if "adversarial" in conditions:
            _add_attack(store, model, epochs[-1], layers[-1], labels, steps=5)
    return store


def _add_attack(
    store: ResultStore, model: str, epoch: int, layer: str, labels: np.ndarray, steps: int
) -> None:
    """The attack record and a trace of ``layer`` going straight from clean to adversarial h."""
    clean = Key(model, "clean", epoch, SAMPLE)
    adv = clean.replace(condition="adversarial")
    clean_pred = store.get(clean, SampleRecord).logits.argmax(1)
    adv_pred = store.get(adv, SampleRecord).logits.argmax(1)
    store.put(adv, ArrayRecord(name="attack", arrays={
        "labels": labels.astype(np.int64), "clean_pred": clean_pred, "adv_pred": adv_pred,
        "success": (clean_pred == labels) & (adv_pred != labels),
    }))  # fmt: skip
    h0 = store.get(clean.replace(layer=layer), RegionEmbedding).h
    h1 = store.get(adv.replace(layer=layer), RegionEmbedding).h
    t = np.linspace(0, 1, steps + 1)[:, None, None]
    trace = ((1 - t) * h0[None] + t * h1[None]).astype(np.float32)
    store.put(adv.replace(layer=layer), ArrayRecord(name="attack_trace", arrays={"h": trace}))


def _sphere(k: int) -> np.ndarray:
    """``k`` unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    i = np.arange(k) + 0.5
    y = 1 - 2 * i / k
    r = np.sqrt(1 - y * y)
    phi = i * np.pi * (3 - np.sqrt(5))
    return np.stack([r * np.cos(phi), y, r * np.sin(phi)], 1).astype(np.float32)
