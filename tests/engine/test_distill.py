"""Knowledge distillation: the KD loss falls on a tiny run, the teacher stays frozen, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from patternviz_widget.engine.distill.train import distill, kd_loss
from patternviz_widget.errors import InputError, LayerNotFoundError


def _data(n: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.2 * torch.rand(n, 1, 6, 6, generator=g)
    for c in range(3):  # class c lights up row band c
        x[y == c, :, 2 * c : 2 * c + 2, :] += 0.7
    return x, y


def _net(width: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(width * 36, 3),
    )  # fmt: skip


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    x, y = _data()
    net = _net(seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.zero_grad(set_to_none=True)
    return net


def test_kd_loss_is_hintons_formula():
    zs = torch.tensor([[1.0, 0.0, -1.0]])
    zt = torch.tensor([[0.0, 2.0, 0.0]])
    y = torch.tensor([1])
    total, soft, ce = kd_loss(zs, zt, y, temperature=2.0, alpha=0.25)
    ps, pt = torch.softmax(zs / 2, 1), torch.softmax(zt / 2, 1)
    kl = float((pt * (pt.log() - ps.log())).sum())
    assert math.isclose(float(soft), 4 * kl, rel_tol=1e-5)
    assert math.isclose(float(ce), float(-torch.log_softmax(zs, 1)[0, 1]), rel_tol=1e-6)
    assert math.isclose(float(total), 0.25 * float(soft) + 0.75 * float(ce), rel_tol=1e-6)


def test_logit_kd_lowers_the_loss_and_leaves_teacher_untouched(teacher):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    teacher.train()
    student = _net(seed=2)
    snaps: list[int] = []

    class Tracker:
        def snapshot(self, epoch: int) -> None:
            snaps.append(epoch)

    hist = distill(
        teacher,
        student,
        _data(),
        epochs=4,
        lr=1e-2,
        batch_size=32,
        tracker=Tracker(),
        progress=False,
    )
    assert hist.mode == "logit" and hist.epoch == [1, 2, 3, 4]
    assert hist.distill_loss[-1] < 0.7 * hist.distill_loss[0], hist.distill_loss
    assert hist.agreement[-1] > hist.agreement[0]
    assert snaps == [0, 1, 2, 3, 4]
    assert teacher.training, "the teacher's mode is restored"
    assert all(p.grad is None for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    teacher.eval()


def test_feature_mimicking_pulls_the_layer_towards_the_teacher(teacher):
    x, y = _data()
    student = _net(seed=3)
    hist = distill(
        teacher,
        student,
        (x, y),
        epochs=4,
        feature_layer="2",
        lr=1e-2,
        batch_size=16,
        progress=False,
    )
    assert hist.mode == "feature" and hist.adapter is None
    assert hist.distill_loss[-1] < 0.5 * hist.distill_loss[0], hist.distill_loss


def test_channel_mismatch_gets_a_1x1_adapter(teacher):
    student = _net(width=6, seed=4)
    hist = distill(teacher, student, _data(), epochs=1, feature_layer="2", progress=False)
    assert isinstance(hist.adapter, nn.Conv2d) and hist.adapter.kernel_size == (1, 1)
    assert (hist.adapter.in_channels, hist.adapter.out_channels) == (6, 4)


def test_spatial_mismatch_is_a_clear_error(teacher):
    student = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 3))
    with pytest.raises(InputError, match="same spatial size"):
        distill(
            teacher,
            student,
            _data(),
            epochs=1,
            feature_layer="2",
            student_layer="1",
            progress=False,
        )


def test_unknown_layer_names_close_matches(teacher):
    with pytest.raises(LayerNotFoundError, match="Closest: '2'"):
        distill(teacher, _net(), _data(), epochs=1, feature_layer="22", progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"epochs": 1, "alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"epochs": 1, "temperature": 0}, "temperature must be > 0"),
    ],
)
def test_bad_arguments(teacher, kwargs, match):
    with pytest.raises(InputError, match=match):
        distill(teacher, _net(), _data(), progress=False, **kwargs)


def test_bad_data_and_same_model(teacher):
    with pytest.raises(InputError, match="same non-zero length"):
        distill(
            teacher, _net(), (torch.zeros(4, 1, 6, 6), torch.zeros(3)), epochs=1, progress=False
        )
    with pytest.raises(InputError, match="fresh copy"):
        distill(teacher, teacher, _data(), epochs=1, progress=False)
