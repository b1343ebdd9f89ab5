"""The paper's checkable claims (Li, Wang, Zhang, NeurIPS 2021; the docs' Reproduction page) on
real (small) training: a bundled SmallVGG trained on digits and on
shapes (with masks) against the same network untrained, captured with ``pv.Study`` and embedded
with ``study.embed``. Run with ``-s`` to see the measured numbers.

Settings (small on purpose, so the file runs in a few minutes on 2 CPU cores):
* digits: 16×16 px, SmallVGG(widths=(8, 16, 32), hidden=64), 3 epochs of pv.models.train's
  default one-cycle AdamW (peak lr 5e-3) on the 1,347 training images; shapes: 24×24 px, 6
  classes, the same network, 5 epochs on 1,500 images (batch 16). Probe: the first 160 held-out images; 16 regions kept per image and layer; the
  three stage outputs ``net.default_layers`` (lowest → highest).
* embedding: ``study.embed(fast=True, steps=2000)`` — the sample fit with the PAPER's settings
  (2000 SGD steps, lr 1e-3, s = 40, κ_max = 10), the region fit with the ``fast`` preset
  (NOT the paper's: 4 epochs, 4 importance steps, 30 partners instead of 20, 20, 100).
* the untrained network is the same initialisation, captured as model "untrained" in the same
  study (its keys are fitted independently of the trained model's).
* t-SNE: openTSNE is not installed here, so the printed t-SNE baseline is scikit-learn's 3-D
  Barnes-Hut t-SNE of the same sample features (centred norm, as for the other baselines).

Where a claim of the paper did NOT hold on our data, the test asserts what we measured and its
docstring says so with the numbers.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

N_PROBE, REGIONS = 160, 16
EMBED = {"fast": True, "steps": 2000}


def _run(name: str):
    import patternviz_widget as pv
    from patternviz_widget.engine.method.embed import as_target_probs
    from patternviz_widget.engine.method.metrics import strength_entropy_r
    from patternviz_widget.results import SAMPLE, Key, SampleRecord

    if name == "digits":
        train, probe = pv.datasets.digits("train", size=16), pv.datasets.digits("test", size=16)
        channels, classes, epochs, lr, batch = 1, 10, 3, 5e-3, 64
    else:
        train, probe = (
            pv.datasets.shapes(n=1500, size=24, seed=0),
            pv.datasets.shapes(n=N_PROBE, size=24, seed=1),
        )
        channels, classes, epochs, lr, batch = 3, 6, 5, 5e-3, 16
    torch.manual_seed(0)
    net = pv.models.SmallVGG(
        in_channels=channels, num_classes=classes, widths=(8, 16, 32), hidden=64
    )
    untrained = copy.deepcopy(net)
    hist = pv.models.train(
        net, train, epochs=epochs, lr=lr, batch_size=batch, progress=False, device="cpu"
    )
    study = pv.Study(
        net,
        probe,
        layers=net.default_layers,
        regions_per_image=REGIONS,
        batch_size=N_PROBE,
        device="cpu",
        max_images=N_PROBE,
    )
    study.capture(progress=False)
    study.capture(model=untrained, model_name="untrained", progress=False)
    study.embed(progress=False, **EMBED)
    out = {
        "name": name,
        "study": study,
        "train_accuracy": hist["train_accuracy"][-1],
        "probe_accuracy": pv.models.evaluate(net, probe.subset(range(N_PROBE)), device="cpu"),
    }
    for model in ("main", "untrained"):
        metrics = study.sample_metrics(model=model, methods=("paper", "pca"))
        rec = study.store.get(Key(model, "clean", 0, SAMPLE), SampleRecord)
        p = as_target_probs(rec.logits, 4.0, "logits")
        from sklearn.manifold import TSNE

        ts = TSNE(n_components=3, random_state=0, init="pca", perplexity=30).fit_transform(
            np.asarray(rec.features, np.float64)
        )
        metrics["tsne_sklearn"] = {"r_strength_entropy": strength_entropy_r(ts, p, center=True)}
        kps = {layer: study.knowledge_points(layer, model=model) for layer in study.layers}
        out[model] = {"metrics": metrics, "kp": kps}
    _print(out)
    return out


def _print(out) -> None:
    print(
        f"\n=== {out['name']}: train acc {out['train_accuracy']:.3f}, probe acc {out['probe_accuracy']:.3f}"
    )
    for model in ("main", "untrained"):
        m = out[model]["metrics"]
        paper = m["paper"]
        print(
            f"  [{model}] KL {paper['kl']:.4f} vs uniform {paper['kl_uniform']:.4f}, argmax agreement "
            f"{paper['argmax_agreement']:.3f}; r(|g|,H): ours {paper['r_strength_entropy']:.3f}, PCA "
            f"{m['pca']['r_strength_entropy']:.3f}, t-SNE(sklearn) {m['tsne_sklearn']['r_strength_entropy']:.3f}"
        )
        for layer, kp in out[model]["kp"].items():
            share = (
                "n/a"
                if kp.on_object_share is None
                else f"{kp.on_object_share:.3f} (chance {kp.on_object_chance:.3f})"
            )
            print(
                f"  [{model}] {layer}: KP/img {kp.mean_total:.3f}, reliable/img {kp.mean_reliable:.3f}, "
                f"r_reliable {kp.r_reliable:.3f}, KP/img full grid {kp.per_image_total_full_grid.mean():.2f}, "
                f"on-object share {share}"
            )


@pytest.fixture(scope="module")
def digits():
    return _run("digits")


@pytest.fixture(scope="module")
def shapes():
    return _run("shapes")


@pytest.mark.parametrize("which", ["digits", "shapes"])
def test_claim1_fidelity_of_the_trained_networks_embedding(which, request):
    """Claim 1: mean KL(P‖Q_M) well below the uniform posterior's; argmax Q = argmax P for most."""
    out = request.getfixturevalue(which)
    m = out["main"]["metrics"]["paper"]
    assert out["probe_accuracy"] > 0.4  # the network did learn something
    assert m["kl"] < 0.5 * m["kl_uniform"]
    assert m["argmax_agreement"] > 0.5


def test_claim2_strength_tracks_certainty_digits(digits):
    """Claim 2 on digits: r(‖g‖, H(P)) < 0, and more negative than the PCA and t-SNE norms.
    Measured: ours −0.876, PCA −0.814, t-SNE (sklearn) −0.683 — the claim holds."""
    m = digits["main"]["metrics"]
    ours = m["paper"]["r_strength_entropy"]
    assert ours < -0.5
    assert ours < m["pca"]["r_strength_entropy"]
    assert ours < m["tsne_sklearn"]["r_strength_entropy"]


def test_claim2_strength_tracks_certainty_shapes(shapes):
    """Claim 2 on shapes: r(‖g‖, H(P)) < 0 and more negative than t-SNE's, but NOT more negative
    than PCA's — the paper's claim did not hold against PCA here. Measured: ours −0.747, PCA
    −0.948, t-SNE (sklearn) −0.226 (network at 52 % probe accuracy, 6 classes)."""
    m = shapes["main"]["metrics"]
    ours = m["paper"]["r_strength_entropy"]
    assert ours < -0.5
    assert ours < m["tsne_sklearn"]["r_strength_entropy"]
    assert m["pca"]["r_strength_entropy"] < ours  # as measured: PCA's norm tracks entropy better


@pytest.mark.parametrize("which", ["digits", "shapes"])
def test_claims5_6_trained_net_has_knowledge_points_where_the_untrained_has_none(which, request):
    """Claims 5/6 (end of training vs initialisation, and depth).

    Holds: the highest layer of the trained net has knowledge points, the untrained net has none in
    any layer (digits 0.338 vs 0 KP per image of 16 kept regions; shapes 1.51 vs 0), the highest
    layer has more than the middle one (0 in both nets), and r_reliable is highest in the highest
    layer (digits 0.126 / 0 / 0.333, shapes 0 / 0 / 0.752 from lowest to highest).
    Does NOT hold on digits as a monotone trend in depth: the lowest layer has more KPs per kept
    region than the highest (0.744 vs 0.338 of 16), most of them unreliable (r_reliable 0.126, near
    the 0.1 of a random class). Counted with the default κ slope a = 1.
    """
    out = request.getfixturevalue(which)
    layers = list(out["main"]["kp"])
    low, mid, high = (out["main"]["kp"][name] for name in layers)
    assert all(out["untrained"]["kp"][name].mean_total == 0 for name in layers)
    assert high.mean_total > 0.1
    assert high.mean_total > mid.mean_total
    assert high.r_reliable > low.r_reliable and high.r_reliable > mid.r_reliable
    assert high.r_reliable > 1.0 / len(
        out["study"].store.probe.class_names
    )  # better than a random class
    if which == "digits":  # as measured: not monotone in depth there
        assert low.mean_total > high.mean_total
    else:
        assert high.mean_total > low.mean_total


def test_claim8_knowledge_points_of_the_highest_layer_sit_on_the_object(shapes):
    """Claim 8 (our extension), read with grid cells: a region is on the object when ≥ 50 % of its
    grid CELL is mask foreground (:func:`patternviz_widget.engine.method.knowledge.cell_boxes`; the receptive field of the
    highest layer covers nearly the whole 24-px image, so with it no region ever counted).
    Measured on shapes: the highest layer's KPs are on the object 0.504 of the time against a
    chance rate (all kept regions) of 0.107, i.e. ≈4.7× over-represented. The depth comparison of
    the claim could NOT be made: the two lower layers have no KPs on this small run (share 0.0 by
    definition), so the test asserts the part that is measurable."""
    kp = shapes["main"]["kp"]
    low, mid, high = kp.values()
    for k in (low, mid, high):  # the chance rate is the object's share of cells: similar per layer
        assert 0.05 < k.on_object_chance < 0.25
    assert high.mean_total > 0
    assert high.on_object_share > 2 * high.on_object_chance
