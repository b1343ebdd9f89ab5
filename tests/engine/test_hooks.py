"""LayerRecorder: records the right tensors, always removes its hooks and restores the mode."""

from __future__ import annotations

import pytest
import torch
from helpers.models import BrokenNet, TinyConvNet
from torch import nn

from patternviz_widget.engine.capture.hooks import LayerRecorder, find_head, on_device, resolve
from patternviz_widget.errors import InputError, LayerNotFoundError


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_records_layer_outputs_and_the_flattened_head_input():
    net = TinyConvNet()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad(), LayerRecorder(net, ["conv1", "pool2"], "head") as rec:
        net(x)
        c1 = net.conv1(x)
        assert torch.equal(rec.outputs["conv1"], c1)
        pooled = net.pool2(net.relu2(net.conv2(net.relu1(c1))))
        assert torch.equal(rec.outputs["pool2"], pooled)
        assert torch.equal(rec.sample, pooled.mean(dim=(2, 3)))
    assert _hook_count(net) == 0


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_hooks_removed_and_train_mode_restored_after_an_exception(exc):
    net = BrokenNet(fail_at=0) if exc is RuntimeError else BrokenNet(interrupt_at=0)
    net.train()
    before = _hook_count(net)  # BrokenNet's own poison hook stays
    with pytest.raises(exc), LayerRecorder(net, ["conv1", "conv2"], "head"):
        assert not net.training
        net(torch.rand(1, 1, 8, 8))
    assert net.training and _hook_count(net) == before


def test_eval_mode_is_kept_when_the_model_was_in_eval_mode():
    net = TinyConvNet().eval()
    with LayerRecorder(net, ["conv1"]):
        pass
    assert not net.training


def test_inactive_recorder_records_nothing():
    net = TinyConvNet()
    with LayerRecorder(net, ["conv1"], "head") as rec:
        rec.active = False
        net(torch.rand(1, 1, 8, 8))
        assert rec.outputs == {} and rec.sample is None


def test_unknown_layer_lists_the_closest_names():
    with pytest.raises(
        LayerNotFoundError, match=r"Layer 'conv3' not found.*Closest: 'conv2', 'conv1'"
    ):
        resolve(TinyConvNet(), ["conv3"])


def test_find_head_is_the_last_linear_with_k_outputs():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3))
    assert find_head(net, 3) == "3"
    with pytest.raises(InputError, match="sample_layer="):
        find_head(net, 7)


def test_on_device_moves_back_only_if_it_moved():
    net = TinyConvNet()
    with on_device(net, torch.device("cpu")) as m:
        assert next(m.parameters()).device.type == "cpu"
    assert next(net.parameters()).device.type == "cpu"
