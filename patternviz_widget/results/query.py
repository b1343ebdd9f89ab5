"""What every reader of a study's store asks it: which key a view names, the class names, the class
directions μ_c that frame a key, and the sample-level knowledge-point rule.

The widget's payload (:mod:`patternviz_widget.widget.payload`) and the figures
(:mod:`patternviz_widget.figures`) both read through these, so a view and a figure of the same state
resolve the same key, raise the same error and draw the same glyphs. Everything here reads the
store and writes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from patternviz_widget._validate import did_you_mean
from patternviz_widget.defaults import TEMPERATURE, THRESHOLD
from patternviz_widget.engine.method.metrics import softmax_t
from patternviz_widget.errors import InputError, NotFittedError, ResultNotFoundError
from patternviz_widget.results.keys import SAMPLE, Key
from patternviz_widget.results.records import SampleEmbedding, SampleRecord
from patternviz_widget.results.store import ResultStore

#: Names a user may give for the sample-level (whole-image) view instead of a layer.
SAMPLE_NAMES = (SAMPLE, "sample", "samples")


def class_names(store: ResultStore) -> list[str]:
    """K class names as plain strings: the probe record's, else the study settings', else "0".."K-1"."""
    if store.probe is not None and store.probe.class_names:
        return [str(c) for c in store.probe.class_names]
    if store.meta.get("class_names"):
        return [str(c) for c in store.meta["class_names"]]
    return [str(c) for c in range(int(store.meta.get("num_classes") or 0))]


def is_sample_layer(layer: str | None) -> bool:
    """True when ``layer`` names the sample-level view (None, ``"<sample>"``, "sample", "samples")."""
    return layer is None or layer in SAMPLE_NAMES


def default_model(store: ResultStore) -> str:
    """The model a view shows when none is named: the study's own, else the first stored."""
    model = str(store.meta.get("model_name") or "main")
    models = store.models()
    return models[0] if models and model not in models else model


def _fix(kind: type) -> str:
    """The step that makes a record of ``kind``."""
    if "Embedding" in kind.__name__:
        return "Run study.embed() first."
    return "Run study.capture() first."


def _check_name(what: str, value: str, valid: list[str]) -> None:
    if value not in valid:
        raise InputError(f"Unknown {what} {value!r}. {did_you_mean(str(value), valid, what)}")


def resolve_key(
    store: ResultStore,
    kind: type,
    layer: str | None = None,
    epoch: int | None = None,
    condition: str = "clean",
    model: str | None = None,
) -> Key:
    """Return the :class:`Key` a view state names, checking that a ``kind`` record exists there.

    ``layer=None`` (or "sample") means the sample-level view; ``epoch=None`` the latest epoch that
    has a ``kind`` record there; ``model=None`` the study's own model. A name the store does not
    know raises :class:`~patternviz_widget.errors.InputError` listing the closest valid ones; a
    known layer or epoch without a ``kind`` record raises
    :class:`~patternviz_widget.errors.ResultNotFoundError`, which lists what exists and names the
    step that makes the missing record.
    """
    layer_name = SAMPLE if is_sample_layer(layer) else str(layer)
    model = default_model(store) if model is None else str(model)
    found = store.find(kind)
    if not found:
        raise NotFittedError(f"This study has no {kind.__name__} records yet. {_fix(kind)}")
    _check_name("model", model, sorted({k.model for k in found}))
    found = [k for k in found if k.model == model]
    _check_name("condition", condition, sorted({k.condition for k in found}))
    found = [k for k in found if k.condition == condition]
    where = f"(model {model!r}, condition {condition!r})"
    layers = [k.layer for k in found]
    if layer_name != SAMPLE:
        _check_name("layer", layer_name, store.layers(model) or layers)
        if layer_name not in layers:
            have = [n for n in store.layers(model) if n in layers]
            raise ResultNotFoundError(
                f"No {kind.__name__} for layer {layer_name!r} {where}; layers that have one: "
                f"{have}. {_fix(kind)}"
            )
    elif SAMPLE not in layers:
        raise ResultNotFoundError(f"No sample-level {kind.__name__} {where}. {_fix(kind)}")
    epochs = sorted({k.epoch for k in found if k.layer == layer_name})
    if epoch is None:
        epoch = epochs[-1]
    elif int(epoch) not in epochs:
        captured = int(epoch) in store.epochs(model, condition)
        fix = (
            _fix(kind)
            if captured
            else f"Capture it first (study.capture(epoch={int(epoch)}) or tracker.snapshot({int(epoch)}))."
        )
        raise ResultNotFoundError(
            f"No {kind.__name__} at epoch {epoch} for layer {layer_name!r} {where}. "
            f"Epochs available: {epochs}. {fix}"
        )
    return Key(model=model, condition=condition, epoch=int(epoch), layer=layer_name)


def mu_for(store: ResultStore, key: Key, required: bool = True) -> np.ndarray | None:
    """The class directions μ_c (float32 K×3, paper Sec. 3.2) that frame ``key``: the sample
    embedding of the same key, else the clean one of the same model and epoch (an adversarial
    key is read in the clean frame). None when there is none and ``required`` is False."""
    for cand in (key.replace(layer=SAMPLE), key.replace(layer=SAMPLE, condition="clean")):
        if store.has(cand, SampleEmbedding):
            return np.asarray(store.get(cand, SampleEmbedding).mu, dtype=np.float32)
    if not required:
        return None
    raise NotFittedError(
        f"No sample embedding (μ_c) for {key.replace(layer=SAMPLE)}. Run study.embed()."
    )


def temperature(store: ResultStore) -> float:
    """T of the network's posterior softmax(z / T): the one the embedding used, else the default."""
    return float(store.meta.get("temperature") or TEMPERATURE)


def sample_posterior(store: ResultStore, key: Key) -> np.ndarray:
    """float64 [N, K] p(c | x) = softmax(z / T) of the probe images at ``key`` (paper Sec. 3.2);
    uniform when the capture kept no logits."""
    if store.has(key, SampleRecord):
        return softmax_t(store.get(key, SampleRecord).logits, temperature(store))
    n = store.get(key, SampleEmbedding).g.shape[0]
    k = max(len(class_names(store)), 1)
    return np.full((n, k), 1.0 / k)


def sample_knowledge(store: ResultStore, key: Key, threshold: float = THRESHOLD) -> dict[str, Any]:
    """The sample-level glyph rule the widget and the figures share, for the images at ``key``.

    An image is a knowledge point when the network's own posterior softmax(z / T) peaks at ≥ τ
    (the sample-level reading of paper Sec. 3.4), reliable when that prediction is the true class.
    Returns ``posterior`` (float32 N×K), ``predicted``, ``discrimination`` (the peak), ``is_kp`` and
    ``is_reliable``.
    """
    p = sample_posterior(store, key)
    n = p.shape[0]
    predicted = p.argmax(axis=1)
    conf = p.max(axis=1)
    is_kp = conf >= float(threshold)
    labels = np.asarray(store.probe.labels) if store.probe is not None else None
    truth = labels if labels is not None and labels.shape[0] == n else predicted
    return {
        "posterior": p.astype(np.float32),
        "predicted": predicted,
        "discrimination": conf.astype(np.float32),
        "is_kp": is_kp,
        "is_reliable": is_kp & (predicted == truth),
    }
