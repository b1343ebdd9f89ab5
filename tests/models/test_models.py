"""Bundled models: layer names, output shapes, the classifier head, and train()."""

from __future__ import annotations

import pytest
import torch

import patternviz_widget as pv
from patternviz_widget.engine.hooks import find_head
from patternviz_widget.errors import InputError

MODELS = {
    "vgg": (lambda c, k, s: pv.models.SmallVGG(c, k), "classifier.4"),
    "resnet": (lambda c, k, s: pv.models.SmallResNet(c, k), "fc"),
    "vit": (lambda c, k, s: pv.models.SmallViT(c, k, image_size=s, patch_size=8), "head"),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(("c", "k", "s"), [(1, 10, 32), (3, 6, 64)])
def test_forward_layers_and_head(name, c, k, s):
    make, head = MODELS[name]
    net = make(c, k, s).eval()
    with torch.no_grad():
        out = net(torch.rand(2, c, s, s))
    assert out.shape == (2, k)
    names = dict(net.named_modules())
    assert len(net.default_layers) >= 3 and all(n in names for n in net.default_layers)
    assert find_head(net, k) == head


def test_vit_checks_its_patch_grid():
    with pytest.raises(InputError, match="multiple of patch_size"):
        pv.models.SmallViT(image_size=30, patch_size=4)


def test_train_is_seeded_and_calls_back_every_epoch():
    data = pv.datasets.digits("train").subset(range(128))
    runs, seen = [], []
    for _ in range(2):
        torch.manual_seed(0)
        net = pv.models.SmallVGG(1, 10)
        runs.append(pv.models.train(net, data, epochs=2, batch_size=32, progress=False, seed=5,
                                    on_epoch_end=lambda e, m: seen.append((e, m.training))))
    assert runs[0]["loss"] == runs[1]["loss"] and runs[0]["epoch"] == [1, 2]
    assert seen == [(1, False), (2, False)] * 2
    assert not net.training


@pytest.mark.slow
def test_small_vgg_learns_digits_to_95_percent():
    torch.manual_seed(0)
    net = pv.models.SmallVGG(1, 10)
    hist = pv.models.train(net, pv.datasets.digits("train"), epochs=5, progress=False, seed=0,
                           test_data=pv.datasets.digits("test"))
    assert hist["test_accuracy"][-1] >= 0.95
    assert pv.models.evaluate(net, pv.datasets.digits("test")) == pytest.approx(hist["test_accuracy"][-1])
