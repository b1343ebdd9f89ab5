"""Capture: exact values on a hand-computable net, the bundled models on the bundled data, region
identity across captures, storage dtype, other inputs, Ctrl-C and non-finite activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.models import BrokenNet, DoubleNet, TinyConvNet, toy_data

import patternviz_widget as pv
from patternviz_widget.errors import CaptureError, InputError
from patternviz_widget.results import SAMPLE, Key, RegionRecord, SampleRecord


def _records(study, **key):
    base = Key(**key)
    sample = study.store.get(base, SampleRecord)
    regions = {
        layer: study.store.get(base.replace(layer=layer), RegionRecord) for layer in study.layers
    }
    return sample, regions


def test_exact_features_of_a_hand_computable_net():
    x, y = toy_data(n=6, size=4, classes=2)
    study = pv.Study(DoubleNet(), (x, y), layers=["scale"], regions_per_image=None, batch_size=4)
    summary = study.capture(progress=False)
    assert summary.images == 6 and summary.regions == {"scale": 96}
    assert summary.keys == [Key(layer=SAMPLE), Key(layer="scale")]
    sample, regions = _records(study)
    f = 2 * x.mean(dim=(1, 2, 3))
    np.testing.assert_allclose(sample.features[:, 0], f.numpy(), rtol=1e-6)
    np.testing.assert_allclose(sample.logits, torch.stack([f, -f], 1).numpy(), rtol=1e-6)
    r = regions["scale"]
    assert r.features.shape == (96, 1) and r.features.dtype == np.float32 and r.grid_shape == (4, 4)
    expect = 2 * x[r.image, 0, r.grid[:, 0], r.grid[:, 1]]
    np.testing.assert_allclose(r.features[:, 0], expect.numpy(), rtol=1e-6)
    # a 1×1 conv sees exactly its own pixel
    np.testing.assert_array_equal(
        r.box, np.stack([r.grid[:, 1], r.grid[:, 0], r.grid[:, 1] + 1, r.grid[:, 0] + 1], 1)
    )
    assert sample.source == "head"


def _vgg_head_input(net, x):
    return net.classifier[:4](net.pool(net.features(x)))


def _resnet_head_input(net, x):
    h = net.stem(x)
    for name in net.default_layers:
        h = getattr(net, name)(h)
    return torch.flatten(net.pool(h), 1)


def _vit_head_input(net, x):
    t = net.patch_embed(x).flatten(2).transpose(1, 2)
    t = torch.cat([net.cls_token.expand(len(x), -1, -1), t], 1) + net.pos_embed
    return net.norm(net.blocks(t))[:, 0]


CASES = {
    "vgg-digits": (lambda: pv.models.SmallVGG(1, 10), "digits", _vgg_head_input),
    "resnet-shapes": (lambda: pv.models.SmallResNet(3, 5), "shapes", _resnet_head_input),
    "vit-digits": (
        lambda: pv.models.SmallViT(1, 10, image_size=32, depth=2),
        "digits",
        _vit_head_input,
    ),
    "vit-shapes": (
        lambda: pv.models.SmallViT(3, 5, image_size=32, patch_size=8, depth=2),
        "shapes",
        _vit_head_input,
    ),
}


@pytest.fixture(scope="module")
def datasets():
    return {
        "digits": pv.datasets.digits("test", size=32),
        "shapes": pv.datasets.shapes(n=40, size=32, num_classes=5, seed=0),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bundled_models_on_bundled_data(case, datasets):
    torch.manual_seed(0)
    make, data_name, head_input = CASES[case]
    net, data = make(), datasets[data_name]
    study = pv.Study(
        net, data, layers=net.default_layers, max_images=40, batch_size=16, regions_per_image=12
    )
    study.capture(progress=False)
    sample, regions = _records(study)
    x = data.images[:40]
    with torch.no_grad():
        net.eval()
        f = head_input(net, x)
        logits = net(x)
    assert sample.features.shape == (40, f.shape[1]) and sample.logits.shape == logits.shape
    np.testing.assert_allclose(sample.features, f.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sample.logits, logits.numpy(), rtol=1e-4, atol=1e-5)
    maps = {}
    hooks = [
        dict(net.named_modules())[n].register_forward_hook(
            lambda m, i, o, n=n: maps.__setitem__(n, o)
        )
        for n in net.default_layers
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for layer, r in regions.items():
        info = study.store.meta["layer_info"][layer]
        rows, cols = r.grid_shape
        assert r.features.shape == (40 * min(12, rows * cols), info["channels"])
        assert np.array_equal(np.unique(r.image), np.arange(40))
        assert (r.grid[:, 0] < rows).all() and (r.grid[:, 1] < cols).all()
        assert (
            (r.box[:, 0] >= 0).all()
            and (r.box[:, 2] <= 32).all()
            and (r.box[:, 2] > r.box[:, 0]).all()
        )
        m = maps[layer]
        if r.kind == "tokens":
            assert m.shape[1] == 1 + rows * cols  # the class token was dropped
            expect = m[r.image, 1 + r.grid[:, 0].astype(int) * cols + r.grid[:, 1]]
        else:
            expect = m[r.image, :, r.grid[:, 0], r.grid[:, 1]]
        np.testing.assert_allclose(r.features, expect.numpy(), rtol=1e-4, atol=1e-5)
    kinds = {r.kind for r in regions.values()}
    assert kinds == ({"tokens"} if "vit" in case else {"conv"})


def test_regions_are_the_same_rows_in_every_capture_and_float16_storage():
    x, y = toy_data(n=10, size=16)
    net = TinyConvNet()
    study = pv.Study(
        net,
        (x, y),
        layers=["relu1", "pool2"],
        regions_per_image=5,
        storage_dtype="float16",
        batch_size=4,
    )
    study.capture(epoch=0, progress=False)
    with torch.no_grad():
        net.conv1.weight.mul_(1.5)
    other = TinyConvNet()
    study.capture(epoch=3, progress=False)
    study.capture(epoch=0, model=other, model_name="student", progress=False)
    study.capture(epoch=0, condition="adversarial", images=x.flip(-1), progress=False)
    recs = [study.store.get(k, RegionRecord) for k in study.store.find(RegionRecord, layer="relu1")]
    assert len(recs) == 4
    for r in recs[1:]:
        assert np.array_equal(r.image, recs[0].image) and np.array_equal(r.grid, recs[0].grid)
        assert r.features.dtype == np.float16
    assert not np.array_equal(recs[0].features, recs[1].features)
    assert study.store.models() == ["main", "student"]
    # float16 rows are the float32 values rounded
    with torch.no_grad():
        full = net.relu1(net.conv1(x))
    r = study.store.get(Key(epoch=3, layer="relu1"), RegionRecord)
    expect = full[r.image, :, r.grid[:, 0], r.grid[:, 1]].numpy()
    np.testing.assert_allclose(r.features.astype(np.float32), expect, rtol=2e-3, atol=1e-3)


def test_other_images_and_per_batch_transforms_are_captured_in_order():
    x, y = toy_data(n=9, size=8)
    net = TinyConvNet()
    study = pv.Study(net, (x, y), layers=["conv2"], batch_size=4)
    study.capture(condition="flipped", images=x.flip(-1).numpy(), progress=False)
    seen = []

    def zero(xb, yb):
        seen.append(yb.tolist())
        assert torch.is_grad_enabled()
        return torch.zeros_like(xb)

    study.capture(condition="zeros", images=zero, progress=False)
    assert seen == [y[:4].tolist(), y[4:8].tolist(), y[8:].tolist()]
    with torch.no_grad():
        ref_flip = net(x.flip(-1))
        ref_zero = net(torch.zeros_like(x))
    np.testing.assert_allclose(
        study.store.get(Key(condition="flipped"), SampleRecord).logits, ref_flip.numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        study.store.get(Key(condition="zeros"), SampleRecord).logits, ref_zero.numpy(), rtol=1e-5
    )
    with pytest.raises(InputError, match="same order"):
        study.capture(images=x[:5], progress=False)


def test_common_grid_pools_every_layer_to_the_same_cells():
    x, y = toy_data(n=4, size=16)
    net = TinyConvNet()
    study = pv.Study(net, (x, y), layers=["relu1", "relu2"], grid=(2, 2), regions_per_image=None)
    study.capture(progress=False)
    r1 = study.store.get(Key(layer="relu1"), RegionRecord)
    assert r1.grid_shape == (2, 2) and r1.features.shape == (16, 4)
    with torch.no_grad():
        pooled = F.adaptive_avg_pool2d(net.relu1(net.conv1(x)), 2)
    np.testing.assert_allclose(r1.features[0], pooled[0, :, 0, 0].numpy(), rtol=1e-5)
    # the pooled box is the union of the receptive fields it pools: cell (0, 0) = conv1 cells 0..7
    assert r1.box[0].tolist() == [0, 0, 9, 9]


def test_ctrl_c_keeps_the_captured_batches_and_restores_the_model(capsys):
    x, y = toy_data(n=12, size=8)
    net = BrokenNet()
    net.train()
    study = pv.Study(net, (x, y), layers=["conv2"], batch_size=4)
    net.interrupt_at = net.calls + 2  # the third batch
    with pytest.raises(KeyboardInterrupt):
        study.capture(progress=False)
    assert net.training
    assert all(len(m._forward_hooks) == 0 for name, m in net.named_modules() if name != "conv2")
    sample = study.store.get(Key(), SampleRecord)
    regions = study.store.get(Key(layer="conv2"), RegionRecord)
    assert sample.features.shape[0] == 8 and regions.image.max() == 7
    assert study.store.meta["partial"][str(Key())] == 8
    assert "interrupted after 8 of 12 images" in capsys.readouterr().err
    net.interrupt_at = None
    study.capture(progress=False)  # a full capture replaces the partial one
    assert "partial" not in study.store.meta
    assert study.store.get(Key(), SampleRecord).features.shape[0] == 12


def test_non_finite_activations_name_the_layer_and_batch():
    x, y = toy_data(n=12, size=8)
    net = BrokenNet()
    study = pv.Study(net, (x, y), layers=["conv1", "conv2"], batch_size=4)
    net.nan_at = net.calls + 1
    with pytest.raises(
        CaptureError, match=r"Layer 'conv2' produced NaN or Inf in batch 1 \(images 4\.\.7\)"
    ):
        study.capture(progress=False)
    assert sum(len(m._forward_hooks) for m in net.modules()) == 1  # only BrokenNet's own


def test_progress_bar_shows_the_key(capsys):
    x, y = toy_data(n=6, size=8)
    study = pv.Study(TinyConvNet(), (x, y), layers=["conv1"])
    study.capture(progress=True)
    assert "capture main|clean|0" in capsys.readouterr().err


def test_a_loaded_study_cannot_capture_without_a_model(tmp_path):
    x, y = toy_data(n=6, size=8)
    study = pv.Study(TinyConvNet(), (x, y), layers=["conv1"])
    study.capture(progress=False)
    loaded = pv.Study.load(study.save(tmp_path / "s.pvz"))
    with pytest.raises(InputError, match="no model"):
        loaded.capture(progress=False)
