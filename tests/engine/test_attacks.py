"""FGSM/PGD guarantees: inside the ε ball and the bounds, model untouched, success grows with ε."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from patternviz_widget.engine.attack.attacks import fgsm, pgd, success
from patternviz_widget.errors import CaptureError, InputError


def _blobs(n: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class 1×8×8 images in [0, 1]: class 1 is brighter on the left half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.35 + 0.1 * torch.rand(n, 1, 8, 8, generator=g)
    x[:, :, :, :4] += 0.2 * (2 * y.float() - 1).view(-1, 1, 1, 1)
    return x.clamp(0, 1), y


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.1),
        nn.Flatten(), nn.Linear(4 * 64, 2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x, y = _blobs()
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.zero_grad(set_to_none=True)
    net.train()  # left in train mode on purpose: attacks must restore it
    return net, x, y


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_inside_eps_ball_and_bounds(trained, norm):
    net, x, y = trained
    eps = 0.05 if norm == "linf" else 0.4
    adv = pgd(net, x, y, eps=eps, steps=5, norm=norm, random_start=True, seed=1)
    d = (adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float(size.max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert float(size.max()) > 0.5 * eps  # it actually moved


def test_fgsm_linf_moves_every_pixel_by_eps_or_hits_bounds(trained):
    net, x, y = trained
    adv = fgsm(net, x, y, eps=0.03)
    d = (adv - x).abs()
    inside = (adv > 0) & (adv < 1)
    grad_nonzero = d > 0
    assert torch.allclose(
        d[inside & grad_nonzero], torch.full_like(d[inside & grad_nonzero], 0.03), atol=1e-6
    )


def test_attack_leaves_model_untouched_and_restores_mode(trained):
    net, x, y = trained
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [p.requires_grad for p in net.parameters()]
    assert net.training
    pgd(net, x[:32], y[:32], eps=0.05, steps=3)
    assert net.training, "train mode must be restored"
    assert all(p.grad is None for p in net.parameters()), "no parameter gradients accumulated"
    assert [p.requires_grad for p in net.parameters()] == flags
    # BatchNorm running stats too: the attack runs in eval mode
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    net.eval()
    fgsm(net, x[:8], y[:8], eps=0.01)
    assert not net.training
    net.train()


@pytest.mark.slow
def test_success_rate_rises_with_eps(trained):
    net, x, y = trained
    rates = [
        float(success(net, pgd(net, x, y, eps=e, steps=10), y).float().mean())
        for e in (0.0, 0.02, 0.1, 0.3)
    ]
    assert rates[0] < 0.1  # the clean model is accurate
    assert all(b >= a for a, b in zip(rates, rates[1:])), rates
    assert rates[-1] > 0.9, rates


def test_targeted_attack_reaches_target(trained):
    net, x, y = trained
    target = 1 - y
    adv = pgd(net, x[:64], y[:64], eps=0.3, steps=15, targeted=True, target=target[:64])
    assert float(success(net, adv, y[:64], targeted=True, target=target[:64]).float().mean()) > 0.9


def test_record_sees_every_iteration_starting_clean(trained):
    net, x, y = trained
    seen: list[tuple[int, torch.Tensor]] = []
    pgd(net, x[:4], y[:4], eps=0.05, steps=4, record=lambda t, xt: seen.append((t, xt.clone())))
    assert [t for t, _ in seen] == [0, 1, 2, 3, 4]
    assert torch.equal(seen[0][1], x[:4])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": -0.1}, "eps=-0.1 is out of range"),
        ({"eps": 1.0}, r"\[0, 1\)"),
        ({"eps": 0.1, "norm": "l3"}, "Closest: 'l2'"),
        ({"eps": 0.1, "steps": 0}, "steps must be >= 1"),
        ({"eps": 0.1, "targeted": True}, "needs target="),
        ({"eps": 0.1, "bounds": (1, 0)}, "low < high"),
    ],
)
def test_bad_arguments_name_the_fix(trained, kwargs, match):
    net, x, y = trained
    with pytest.raises(InputError, match=match):
        pgd(net, x[:4], y[:4], **kwargs)


def test_inputs_outside_bounds_are_refused(trained):
    net, x, y = trained
    with pytest.raises(InputError, match="Pass bounds="):
        fgsm(net, x[:4] * 3 - 1, y[:4], eps=0.1)


def test_model_without_input_gradient_is_a_clear_error():
    class NoGrad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 2)

        def forward(self, x):
            with torch.no_grad():
                return self.fc(x.flatten(1))

    x, y = _blobs(8)
    with pytest.raises(CaptureError, match="no_grad"):
        pgd(NoGrad(), x, y, eps=0.1, steps=2)
