"""Study set-up: attributes, metadata and the probe record a person and the widget rely on."""

from __future__ import annotations

import numpy as np
import torch
from helpers.models import TinyConvNet, toy_data

import patternviz_widget as pv


def test_study_attributes_meta_and_probe():
    x, y = toy_data(n=9, size=16, channels=3)
    net = TinyConvNet(in_channels=3)
    study = pv.Study(
        net, (x, y), layers="conv2", class_names=["a", "b", "c"], device="cpu", regions_per_image=7
    )
    assert study.model is net and study.layers == ["conv2"] and study.num_classes == 3
    assert study.device == torch.device("cpu") and study.sample_layer == "head"
    assert study.class_names == ["a", "b", "c"] and study.input_size == (16, 16)
    meta = study.store.meta
    assert meta["layers"] == ["conv2"] and meta["num_classes"] == 3 and meta["model_name"] == "main"
    assert meta["seed"] == 2020 and meta["class_names"] == ["a", "b", "c"]
    assert meta["layer_info"]["conv2"] == {
        "kind": "conv",
        "grid_shape": [8, 8],
        "native_grid": [8, 8],
        "channels": 8,
        "box_method": "receptive_field",
        "regions": 63,
    }
    probe = study.store.probe
    assert probe.labels.tolist() == y.tolist() and probe.masks is None
    assert probe.thumbnails.shape == (9, 16, 16, 3) and probe.thumbnails.dtype == np.uint8
    # images in [0, 1] map to 0..255 unchanged in layout: pixel (r, c) channel k
    assert probe.thumbnails[4, 3, 5, 1] == int(x[4, 1, 3, 5] * 255 + 0.5)
    assert probe.data_index.tolist() == list(range(9)) and probe.input_size == (16, 16)
    # the model's mode and device are untouched by set-up
    assert net.training
    assert "images=9" in repr(study)


def test_shapes_probe_has_masks_thumbnails_and_class_names():
    ds = pv.datasets.shapes(n=20, size=96, num_classes=5, seed=3)
    net = pv.models.SmallVGG(3, 5)
    study = pv.Study(net, ds, layers=net.default_layers[-1:])
    probe = study.store.probe
    assert probe.class_names == ["circle", "square", "triangle", "star", "cross"]
    assert probe.masks.shape == (20, 96, 96) and np.array_equal(probe.masks, ds.masks.numpy())
    assert probe.thumbnails.shape == (20, 64, 64, 3)  # longer side capped at 64 px


def test_grey_digits_become_grey_rgb_thumbnails_and_normalised_images_are_rescaled():
    x, y = toy_data(n=4, size=8)
    x = (x - 0.5) * 4  # outside [0, 1]: min-max per image
    study = pv.Study(TinyConvNet(), (x, y), layers=["conv1"])
    th = study.store.probe.thumbnails
    assert (th[..., 0] == th[..., 1]).all() and th.reshape(4, -1).min(1).tolist() == [0] * 4
    assert th.reshape(4, -1).max(1).tolist() == [255] * 4
