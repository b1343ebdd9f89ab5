"""Bad input to Study / capture: each case raises our error type with a message that names
the fix. (Study files: tests/results/test_io.py.)"""

from __future__ import annotations

import pytest
import torch
from helpers.models import BrokenNet, DictNet, MapNet, TinyConvNet, toy_data
from torch import nn
from torch.utils.data import TensorDataset

import patternviz_widget as pv
from patternviz_widget.errors import CaptureError, InputError, LayerNotFoundError


def _study(model=None, data=None, layers=("conv1",), **kw):
    return pv.Study(
        model if model is not None else TinyConvNet(),
        data if data is not None else toy_data(),
        list(layers),
        **kw,
    )


def test_unknown_layer_lists_close_names():
    with pytest.raises(
        LayerNotFoundError, match=r"Layer 'conv_2' not found in TinyConvNet\. Closest: 'conv2'"
    ) as e:
        _study(layers=["conv_2"])
    assert isinstance(e.value, ValueError) and isinstance(e.value, KeyError)


def test_unknown_sample_layer_lists_close_names():
    with pytest.raises(LayerNotFoundError, match="Closest: 'head'"):
        _study(sample_layer="haed")


def test_model_must_be_a_module():
    with pytest.raises(
        InputError, match=r"model must be a torch\.nn\.Module classifier, got function"
    ):
        _study(model=lambda x: x)
    with pytest.raises(InputError, match=r"pv\.Study\.load\(path\)"):
        pv.Study(None, toy_data(), ["conv1"])


class _FlatNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class _DictLayerNet(_FlatNet):
    def __init__(self):
        super().__init__()
        self.block = _DictBlock()

    def forward(self, x):
        return self.fc(self.block(self.conv(x))["y"].mean(dim=(2, 3)))


class _DictBlock(nn.Module):
    def forward(self, x):
        return {"y": x}


def test_layer_output_of_an_unsupported_shape_or_type():
    with pytest.raises(
        InputError, match=r"Layer 'fc' outputs a tensor of shape \(1, 3\); regions need an N×C×H×W"
    ):
        _study(model=_FlatNet(), layers=["fc"])
    with pytest.raises(
        InputError, match=r"Layer 'block' returned a dict, not a tensor\. Pick a layer"
    ):
        _study(model=_DictLayerNet(), layers=["block"])


def test_non_finite_activations_say_which_layer_and_batch():
    x, y = toy_data(n=8)
    net = BrokenNet()
    study = pv.Study(net, (x, y), ["conv2"], batch_size=4)
    net.nan_at = net.calls  # from the first capture batch on
    with pytest.raises(
        CaptureError,
        match=r"Layer 'conv2' produced NaN or Inf in batch 0 \(images 0\.\.3\).*input normalisation",
    ):
        study.capture(progress=False)


def test_labels_out_of_range():
    x, _ = toy_data(n=6)
    with pytest.raises(
        InputError,
        match=r"Label 5 of image 2 is out of range: the model has 3 classes, so labels must be 0\.\.2",
    ):
        _study(data=(x, torch.tensor([0, 1, 5, 0, 1, 2])))
    with pytest.raises(InputError, match="Label -1 of image 0"):
        _study(data=(x, torch.tensor([-1, 1, 2, 0, 1, 2])))


def test_single_class():
    x, _ = toy_data(n=6)
    with pytest.raises(InputError, match="Every probe image has label 1.*at least two classes"):
        _study(data=(x, torch.ones(6, dtype=torch.long)))


def test_one_hot_labels():
    x, y = toy_data(n=6)
    with pytest.raises(
        InputError, match=r"class indices of shape \(N,\), got shape \(6, 3\) \(one-hot\?\)"
    ):
        _study(data=(x, torch.nn.functional.one_hot(y, 3)))
    with pytest.raises(InputError, match="Item 0 has a label of 3 values"):
        _study(data=TensorDataset(x, torch.nn.functional.one_hot(y, 3)))


def test_fractional_labels():
    x, _ = toy_data(n=4)
    with pytest.raises(InputError, match="whole class indices"):
        _study(data=(x, torch.tensor([0.0, 1.5, 2.0, 0.0])))


@pytest.mark.parametrize(
    "data",
    [
        (torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)),
        TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0)),
    ],
    ids=["tensors", "dataset"],
)
def test_empty_data(data):
    with pytest.raises(InputError, match="data is empty: pass at least two images"):
        _study(data=data)


def test_wrong_channel_count_names_expected_channels():
    x, y = toy_data(n=4, channels=1)
    with pytest.raises(
        InputError,
        match=r"expects 3 input channels \(its first conv 'conv1' has in_channels=3\) but the images have 1.*repeat the grey channel",
    ):
        _study(model=TinyConvNet(in_channels=3), data=(x, y))


class _LinearFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3 * 8 * 8, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        return self.out(self.fc1(x.flatten(1)).unsqueeze(-1).unsqueeze(-1).mean(dim=(2, 3)))


def test_a_model_that_fails_on_the_input_is_wrapped():
    with pytest.raises(
        InputError, match=r"The model failed on one image of shape \(1, 8, 8\).*mat1 and mat2"
    ):
        _study(model=_LinearFirst(), layers=["fc1"])


def test_model_output_must_be_n_by_k():
    with pytest.raises(
        InputError, match=r"class scores of shape N×K.*returned shape \(1, 3, 8, 8\)"
    ):
        _study(model=MapNet(), layers=["conv"])
    with pytest.raises(
        InputError, match=r"returned a dict.*Wrap it so forward\(\) returns the logits"
    ):
        _study(model=DictNet(), layers=["conv"])


def test_num_classes_and_class_names_must_match_the_model():
    with pytest.raises(InputError, match="num_classes=5 but the model outputs 3 scores"):
        _study(num_classes=5)
    with pytest.raises(InputError, match="class_names has 2 names but the model has 3 classes"):
        _study(class_names=["a", "b"])


def test_data_of_an_unknown_type_or_inconsistent_lengths():
    with pytest.raises(InputError, match="data must be a torch Dataset, a DataLoader or an"):
        _study(data=42)
    x, _ = toy_data(n=6)
    with pytest.raises(InputError, match="Got 6 images but 4 labels"):
        _study(data=(x, torch.arange(4)))


def test_images_of_different_sizes():
    items = [(torch.rand(1, 8, 8), 0), (torch.rand(1, 8, 8), 1), (torch.rand(1, 9, 9), 2)]
    with pytest.raises(InputError, match="resize"):
        _study(data=items, batch_size=2)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"storage_dtype": "float64"}, "Unknown storage_dtype 'float64'"),
        ({"grid": (0, 2)}, r"grid must be None or \(rows, cols\)"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"regions_per_image": 2.5}, "regions_per_image must be an integer"),
        ({"max_regions": 5}, r"max_regions=5 is smaller than the number of images \(12\)"),
        ({"model_name": "a|b"}, "model_name must be a non-empty string without"),
        ({"device": "tpu9"}, "Unknown device"),
    ],
)
def test_bad_settings(kw, msg):
    with pytest.raises(InputError, match=msg):
        _study(**kw)


def test_duplicate_layers():
    with pytest.raises(InputError, match=r"lists \['conv1'\] more than once"):
        _study(layers=["conv1", "conv1"])
