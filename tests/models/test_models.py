"""Bundled models: layer names, output shapes, the classifier head, and train()."""

from __future__ import annotations

import pytest
import torch

import patternviz_widget as pv
from patternviz_widget.engine.capture.hooks import find_head
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
        runs.append(
            pv.models.train(
                net,
                data,
                epochs=2,
                batch_size=32,
                progress=False,
                seed=5,
                on_epoch_end=lambda e, m: seen.append((e, m.training)),
            )
        )
    assert runs[0]["loss"] == runs[1]["loss"] and runs[0]["epoch"] == [1, 2]
    assert seen == [(1, False), (2, False)] * 2
    assert not net.training


def _adam_loop(net, data, epochs, lr, batch_size, seed):
    """The plain loop train(schedule="constant") stands for: Adam at a fixed lr, seeded shuffling."""
    import torch.nn.functional as F

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(epochs):
            net.train()
            total = 0.0
            for idx in torch.randperm(len(data), generator=gen).split(batch_size):
                loss = F.cross_entropy(net(data.images[idx]), data.labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / len(data))
    return losses


def test_constant_schedule_is_the_plain_adam_loop():
    data = pv.datasets.digits("train").subset(range(96))
    torch.manual_seed(0)
    a = pv.models.SmallVGG(1, 10, widths=(8, 16), hidden=32)
    b = pv.models.SmallVGG(1, 10, widths=(8, 16), hidden=32)
    b.load_state_dict(a.state_dict())
    hist = pv.models.train(
        a, data, epochs=2, batch_size=32, schedule="constant", progress=False, seed=3, threads=1
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the same thread count as the train() call, so the same sums
    try:
        expected = _adam_loop(b, data, 2, 1e-3, 32, 3)
    finally:
        torch.set_num_threads(before)
    assert hist["loss"] == pytest.approx(expected, rel=1e-5)
    assert hist["lr"] == [1e-3, 1e-3] and hist["steps"] == [3, 6]
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=1e-6)


def test_one_cycle_warms_up_then_anneals_and_reports_every_step():
    data = pv.datasets.digits("train").subset(range(64))
    net = pv.models.SmallVGG(1, 10, widths=(8, 16), hidden=32)
    seen = []
    hist = pv.models.train(net, data, epochs=5, batch_size=16, lr=4e-3, progress=False,
                           on_step_end=lambda step, m: seen.append((step, m.training)))  # fmt: skip
    lr = hist["lr"]
    assert hist["steps"] == [4, 8, 12, 16, 20] and seen == [(s, False) for s in range(1, 21)]
    assert lr[0] < lr[1] and max(lr) <= 4e-3 and lr[-1] < 1e-6  # up to the peak (30 %), then down
    assert max(lr) > 3.5e-3 and all(a > b for a, b in zip(lr[2:], lr[3:]))


def test_threads_are_set_for_training_and_restored():
    data = pv.datasets.digits("train").subset(range(32))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        small = pv.models.SmallVGG(1, 10, widths=(8, 16), hidden=32)
        assert pv.models.auto_threads(small, data.images[0]) == 1  # small convolutions: one thread
        assert pv.models.train(small, data, epochs=1, progress=False, device="cpu")["threads"] == [
            1
        ]
        assert torch.get_num_threads() == 2
        assert pv.models.train(small, data, epochs=1, progress=False, device="cpu", threads=2)[
            "threads"
        ] == [2]
        with pytest.raises(ZeroDivisionError):
            pv.models.train(
                small, data, epochs=1, progress=False, device="cpu", on_epoch_end=lambda e, m: 1 / 0
            )
        assert torch.get_num_threads() == 2  # restored after an error too
    finally:
        torch.set_num_threads(before)
    big = pv.models.SmallVGG(3, 6, widths=(32, 64, 128))
    assert pv.models.macs_per_image(big, torch.rand(3, 64, 64)) > pv.models.training.ONE_THREAD_MACS


def test_macs_count_convolutions_and_linear_layers():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5)
    )
    assert pv.models.macs_per_image(net, torch.rand(3, 8, 8)) == 4 * 8 * 8 * 3 * 9 + 4 * 8 * 8 * 5


def test_train_rejects_bad_settings():
    data = pv.datasets.digits("train").subset(range(8))
    net = pv.models.SmallVGG(1, 10, widths=(8,), hidden=8)
    with pytest.raises(InputError, match="Unknown schedule 'cosine'"):
        pv.models.train(net, data, schedule="cosine", progress=False)
    with pytest.raises(InputError, match="Unknown optimizer 'sgd'"):
        pv.models.train(net, data, optimizer="sgd", progress=False)
    with pytest.raises(InputError, match="threads must be >= 1, got 0"):
        pv.models.train(net, data, threads=0, progress=False)
    with pytest.raises(InputError, match="Unknown recipe 'digit'. Closest: 'digits'"):
        pv.models.recipe("digit")
