"""``study.diagnostics()`` and the knowledge-point warning, on real training: a net trained for 21
steps (posterior still uniform at T = 4) against the quickstart's net trained for three epochs.

The first is degenerate by construction — its class directions nearly coincide and every region's
posterior is flat — so the views must say so instead of showing "0 knowledge points"; the second
must show knowledge points at every layer, more in the highest, with importance weights that left
uniform (the quickstart's default path at the notebook's FAST setting: 150 images, the paper's
embedding settings)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def _study(epochs: int, fast: bool):
    import patternviz_widget as pv

    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=1, num_classes=10)
    pv.models.train(net, pv.datasets.digits("train"), epochs=epochs, progress=False, device="cpu")
    study = pv.Study(
        net,
        pv.datasets.digits("test"),
        layers=net.default_layers,
        num_classes=10,
        max_images=150,
        device="cpu",
    )
    study.capture(progress=False)
    study.embed(progress=False, fast=fast)
    return study, net.default_layers


@pytest.fixture(scope="module")
def barely_trained():
    return _study(1, fast=True)


@pytest.fixture(scope="module")
def trained():
    return _study(3, fast=False)  # the quickstart notebook's FAST setting: paper preset, 150 images


def test_a_net_with_a_uniform_posterior_is_reported_as_such_not_as_zero_knowledge_points(
    barely_trained,
):
    from patternviz_widget.figures.knowledge import format_table, knowledge_curve, knowledge_table

    study, layers = barely_trained
    diag = study.diagnostics()
    assert len(diag) == 1 + len(layers)
    assert all(d.degenerate for d in diag), repr(diag)
    assert all("posterior near uniform" in d.reason for d in diag)
    print(diag)
    for layer in layers:
        kp = study.knowledge_points(layer)
        assert kp.warning and "classes not separated yet" in kp.warning
    table = format_table(knowledge_table(study))
    assert "posterior ≈ uniform" in table and "note: posterior near uniform" in table
    fig = knowledge_curve(study)
    gids = {a.get_gid() for ax in fig.axes for a in ax.patches}
    assert "kp-uniform-0" in gids


def test_the_quickstart_net_shows_knowledge_points_at_every_layer_more_in_the_highest(trained):
    study, layers = trained
    diag = {d.key.layer: d for d in study.diagnostics()}
    print(study.diagnostics())
    kps = []
    for layer in layers:
        d = diag[layer]
        assert not d.degenerate, d.reason
        assert d.importance_loss_last < d.importance_loss_first, (
            layer,
            d.importance_loss_first,
            d.importance_loss_last,
        )
        assert d.w_from_uniform > 0.2, (
            layer,
            d.w_from_uniform,
        )  # L1 distance per image; uniform: 0
        kp = study.knowledge_points(layer)
        assert kp.warning is None
        kps.append(kp.mean_total)
    print("KP / image, lowest -> highest layer:", [round(k, 2) for k in kps])
    assert min(kps) > 0.3  # measured: 0.64 / 1.02 / 2.03 (κ slope 1)
    assert kps[-1] > kps[0]
