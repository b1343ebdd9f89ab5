"""Read a study's adversarial results and hand them to the engine's measurements
(:mod:`patternviz_widget.engine.attack_analysis`) for the attack figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine import attack_analysis as aa
from ..errors import InputError, NotFittedError
from ..results import SAMPLE, ArrayRecord, Key, RegionEmbedding, RegionRecord, SampleRecord
from . import _data

ADV = "adversarial"


def _adv_key(study: Any, layer: str | None, epoch: int | None, model: str | None) -> Key:
    if ADV not in study.store.conditions():
        raise NotFittedError(
            "This study has no adversarial results. Run study.attack(method='pgd', eps=...)."
        )
    return _data.resolve_key(
        study, RegionEmbedding, layer or _last_layer(study, model), epoch, ADV, model
    )


def _last_layer(study: Any, model: str | None) -> str:
    have = {k.layer for k in study.store.find(RegionEmbedding, condition=ADV)
            if model is None or k.model == model}  # fmt: skip
    layers = [name for name in study.store.layers() if name in have]
    if not layers:
        raise NotFittedError(
            "No adversarial regional embeddings. Run study.attack(), then study.embed()."
        )
    return layers[-1]


def predictions(study: Any, key: Key) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (labels, clean_pred, adv_pred, attacked) for the images of ``key``'s attack."""
    store = study.store
    sample_adv = key.replace(layer=SAMPLE, condition=ADV)
    if store.has(sample_adv, ArrayRecord) and store.get(sample_adv, ArrayRecord).name == "attack":
        arrays = store.get(sample_adv, ArrayRecord).arrays
        labels, clean_pred, adv_pred = (
            np.asarray(arrays[n], np.int64) for n in ("labels", "clean_pred", "adv_pred")
        )
    else:
        labels = np.asarray(_data.probe(study).labels, np.int64)
        clean_pred = np.asarray(
            store.get(sample_adv.replace(condition="clean"), SampleRecord).logits
        ).argmax(1)
        adv_pred = np.asarray(store.get(sample_adv, SampleRecord).logits).argmax(1)
    return labels, clean_pred, adv_pred, aa.attacked_images(labels, clean_pred, adv_pred)


def layer_shift(
    study: Any, epoch: int | None = None, model: str | None = None, layers: list[str] | None = None,
    attacked_only: bool = True,
) -> aa.LayerShift:  # fmt: skip
    """Δ_orientation / Δ_strength per layer from the stored clean and adversarial embeddings."""
    study = _data.as_study(study)
    first = _adv_key(study, None, epoch, model)
    have = {
        k.layer
        for k in study.store.find(
            RegionEmbedding, condition=ADV, model=first.model, epoch=first.epoch
        )
    }
    layers = list(layers) if layers is not None else [n for n in study.store.layers() if n in have]
    _, _, _, attacked = predictions(study, first)
    pairs, rows = {}, {}
    for name in layers:
        adv = first.replace(layer=name)
        clean = adv.replace(condition="clean")
        e_c, e_a = study.store.get(clean, RegionEmbedding), study.store.get(adv, RegionEmbedding)
        pairs[name] = (np.asarray(e_c.h), np.asarray(e_a.h), float(e_c.mean_strength))
        image = np.asarray(study.store.get(clean, RegionRecord).image, np.int64)
        if attacked_only and attacked.any():
            rows[name] = np.flatnonzero(attacked[image])
    return aa.layer_shift(pairs, rows or None)


def kp_shift(
    study: Any, layer: str | None = None, epoch: int | None = None, model: str | None = None,
    threshold: float = 0.4,
) -> aa.KPShift:  # fmt: skip
    """Knowledge points of c_ori before vs of c_adv after, from the engine's posteriors."""
    study = _data.as_study(study)
    adv = _adv_key(study, layer, epoch, model)
    clean = adv.replace(condition="clean")
    labels, _, adv_pred, attacked = predictions(study, adv)
    p_clean = np.asarray(_data.knowledge(study, clean, threshold).posterior)
    p_adv = np.asarray(_data.knowledge(study, adv, threshold).posterior)
    image = np.asarray(study.store.get(clean, RegionRecord).image, np.int64)
    return aa.kp_shift(p_clean, p_adv, image, labels, adv_pred, attacked, threshold=threshold)


def trajectories(
    study: Any, layer: str | None = None, epoch: int | None = None, model: str | None = None
) -> aa.Trajectories:
    """The trajectory types of the regions of ``layer`` over the recorded attack iterations."""
    study = _data.as_study(study)
    adv = _adv_key(study, layer, epoch, model)
    if not study.store.has(adv, ArrayRecord) or "h" not in study.store.get(adv, ArrayRecord).arrays:
        traced = sorted(
            {k.layer for k in study.store.find(ArrayRecord, condition=ADV) if k.layer != SAMPLE}
        )
        raise InputError(
            f"No projected attack trace for layer {adv.layer!r} (traced: {traced or 'none'}). "
            "Run study.attack(..., record_layers=[...]) after study.embed()."
        )
    h = np.asarray(study.store.get(adv, ArrayRecord).arrays["h"], np.float32)
    clean = adv.replace(condition="clean")
    labels, _, adv_pred, attacked = predictions(study, adv)
    mu = _data.mu_for(study, clean)
    emb = study.store.get(clean, RegionEmbedding)
    image = np.asarray(study.store.get(clean, RegionRecord).image, np.int64)
    return aa.trajectory_types(
        h, mu, _posterior(mu), float(emb.mean_strength), image, labels, adv_pred, attacked
    )


def _posterior(mu: np.ndarray) -> Any:
    """p(c | h) of the engine (PAPER.md §4) as a function of normalised h."""
    from ..engine import knowledge

    return lambda hs: knowledge.posterior(hs, mu)
