"""Bad input a realistic user gives, and the faults they meet: each case is refused early with an
error that names the fix, or gives the right result (never a silent wrong one, a hang or a raw
crash). A tiny SmallVGG on 60 digits images; the study-file faults are in
tests/results/test_bad_input_io.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers.models import DoubleNet, toy_data
from torch import nn
from torch.utils.data import IterableDataset

import patternviz_widget as pv
from patternviz_widget.errors import CaptureError, InputError
from patternviz_widget.results import SAMPLE, Key, RegionRecord, SampleRecord

N = 60


def _net(num_classes: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return pv.models.SmallVGG(1, num_classes, widths=(4, 8), hidden=16)


@pytest.fixture(scope="module")
def digits():
    return pv.datasets.digits("test")


@pytest.fixture(scope="module")
def images(digits):
    x = torch.stack([digits[i][0] for i in range(N)])
    y = torch.tensor([int(digits[i][1]) for i in range(N)])
    return x, y


def _study(digits, net=None, **kw):
    net = net if net is not None else _net()
    kw.setdefault("regions_per_image", 4)
    return pv.Study(net, digits, layers=net.default_layers, max_images=N, **kw)


@pytest.fixture(scope="module")
def captured(digits):
    s = _study(digits)
    s.capture(progress=False)
    return s


@pytest.fixture(scope="module")
def embedded(digits):
    s = _study(digits)
    s.capture(progress=False)
    s.embed(progress=False, fast=True, steps=100, region_epochs=2)
    return s


# ---- Study.watch ---------------------------------------------------------------------------------
def _features(store, epoch, layer):
    return store.get(Key("main", "clean", epoch, layer), RegionRecord).features


def test_watch_reloads_a_rewritten_file_whole(digits, tmp_path):
    path = tmp_path / "run.pvz"
    old_names = [f"old-{i}" for i in range(10)]
    a = _study(digits, class_names=old_names)
    for epoch in (0, 1, 2):
        a.capture(epoch=epoch, progress=False)
    a.save(path)
    watched = pv.Study.watch(path, interval=0.05, start=False)
    assert watched.store.epochs() == [0, 1, 2] and watched.class_names == old_names
    heard = []
    watched.store.observe(heard.append)

    # a re-run rewrites the file: other weights, other class names, one epoch so far
    new_names = [f"new-{i}" for i in range(10)]
    b = _study(digits, net=_net(seed=1), class_names=new_names)
    b.capture(epoch=0, progress=False)
    b.save(path)
    changed = watched.watcher.poll()
    store = watched.store
    assert store.epochs() == [0]  # the old run's epochs 1 and 2 are gone
    assert (
        store.meta["class_names"]
        == list(store.probe.class_names)
        == watched.class_names
        == new_names
    )
    layer = b.layers[-1]
    assert np.array_equal(_features(store, 0, layer), _features(b.store, 0, layer))
    assert {k.epoch for k in changed} == {0, 1, 2} and {k.epoch for k in heard} == {0, 1, 2}

    # the run re-snapshots epoch 0 after a training step: the new features replace the held ones
    with torch.no_grad():
        b.model.features[0].weight.mul_(1.5)
    b.capture(epoch=0, progress=False)
    b.save(path)
    assert watched.watcher.poll() and np.array_equal(
        _features(store, 0, layer), _features(b.store, 0, layer)
    )
    assert watched.watcher.poll() == []  # nothing new: no reload


def test_watch_can_start_before_the_file_exists(captured, tmp_path):
    path = tmp_path / "later.pvz"
    watched = pv.Study.watch(path, interval=0.05, start=False)
    assert len(watched.store) == 0 and watched.layers == [] and watched.watcher.poll() == []
    w = pv.PatternViz(watched)  # shown before the run has saved anything
    try:
        captured.save(path)
        added = watched.watcher.poll()
        assert watched.store.epochs() == [0] and len(added) == 3
        assert watched.layers == captured.layers and watched.num_classes == 10
        assert w.layer == captured.layers[-1] and w.catalog["num_images"] == N  # the view follows
    finally:
        w.close()


# ---- Study.compare -------------------------------------------------------------------------------
def test_compare_refuses_students_it_cannot_pair(digits, captured):
    never_captured = _study(digits, net=_net(seed=2))
    with pytest.raises(
        InputError, match=r"student study has no capture.*student_study\.capture\(\)"
    ):
        pv.Study.compare(captured, never_captured)
    renamed = _study(digits, net=_net(seed=2), class_names=[f"c{i}" for i in range(10)])
    renamed.capture(progress=False)
    with pytest.raises(
        InputError, match=r"class names differ \(class 0: '0' vs 'c0'\).*same class_names"
    ):
        pv.Study.compare(captured, renamed)
    twelve = _study(digits, net=_net(num_classes=12, seed=2))
    twelve.capture(progress=False)
    with pytest.raises(InputError, match="teacher has 10 classes but 'student' has 12"):
        pv.Study.compare(captured, twelve)
    with pytest.raises(InputError, match="student must be a pv.Study.*got NoneType"):
        pv.Study.compare(captured, None)
    with pytest.raises(InputError, match="teacher must be a pv.Study"):
        pv.Study.compare("teacher.pvz", captured)
    same = _study(digits, net=_net(seed=3))
    same.capture(progress=False)
    both = pv.Study.compare(captured, same)  # a proper student still pairs
    assert both.store.models() == ["student", "teacher"]


# ---- capture -------------------------------------------------------------------------------------
class SharedReLU(nn.Module):
    """One ReLU module called after both convs (as torchvision's BasicBlock does)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.relu(self.conv2(self.relu(self.conv1(x)))).mean((2, 3)))


def test_a_module_called_twice_in_one_forward_is_named(images):
    with pytest.raises(
        InputError,
        match=r"Layer 'relu' ran more than once in one forward pass.*BasicBlock.*runs once",
    ):
        pv.Study(SharedReLU(), images, layers=["relu"])
    s = pv.Study(SharedReLU(), images, layers=["conv2"])  # its neighbours are fine
    assert s.capture(progress=False).regions["conv2"] == N * 64


def test_float16_overflow_is_caught_at_capture_and_names_float32():
    x, y = toy_data(n=12, size=8, classes=2)
    big = (x * 1e5, y)  # DoubleNet doubles its input: regional values up to 2e5 > 65504
    s = pv.Study(
        DoubleNet(), big, layers=["scale"], storage_dtype="float16", regions_per_image=None
    )
    with pytest.raises(CaptureError, match=r"beyond float16's range.*storage_dtype='float32'"):
        s.capture(progress=False)
    assert not s.store.find(RegionRecord)
    s32 = pv.Study(DoubleNet(), big, layers=["scale"], regions_per_image=None)
    s32.capture(progress=False)
    feats = s32.store.get(Key(layer="scale"), RegionRecord).features
    assert np.isfinite(feats).all() and feats.max() > 65504


# ---- attack --------------------------------------------------------------------------------------
def test_attack_on_an_epoch_never_captured_is_refused(digits):
    s = _study(digits)
    s.capture(epoch=0, progress=False)
    with pytest.raises(
        InputError,
        match=r"epoch=5 has no clean capture \(captured epochs: \[0\]\).*study\.capture\(epoch=5\)",
    ):
        s.attack(epoch=5, steps=1, progress=False)
    assert s.store.epochs() == [0] and s.store.conditions() == ["clean"]
    summary = s.attack(method="PGD", norm="Linf", eps=0.05, steps=1, progress=False)  # any case
    assert summary.method == "pgd" and summary.norm == "linf"
    assert s.store.has(Key("main", "adversarial", 0, SAMPLE), SampleRecord)


# ---- data ----------------------------------------------------------------------------------------
class EndlessDigits(IterableDataset):
    """An endless stream of the digits (it raises instead of hanging when read past ``limit``)."""

    def __init__(self, digits, limit: int = 5000) -> None:
        self.digits, self.limit = digits, limit

    def __iter__(self):
        for i in range(self.limit):
            yield self.digits[i % N]
        raise RuntimeError("the stream was read far past max_images")


def test_an_endless_stream_with_max_images_is_read_only_that_far(digits):
    net = _net()
    s = pv.Study(
        net, EndlessDigits(digits), layers=net.default_layers, max_images=N, regions_per_image=4
    )
    assert s.data.n == N and s.capture(progress=False).images == N
    direct = _study(digits, net=net)
    direct.capture(progress=False)
    for layer in net.default_layers:
        assert np.array_equal(_features(s.store, 0, layer), _features(direct.store, 0, layer))


def test_text_labels_name_the_mapping(images):
    x, y = images
    names = np.array([f"digit {int(v)}" for v in y])
    with pytest.raises(
        InputError, match=r"got text \('digit \d'.*names\.index\(v\).*class_names=names"
    ):
        pv.Study(_net(), (x, names), layers=["features.5"])


def test_label_minus_one_is_called_negative(images):
    x, y = images
    y = y.clone()
    y[7] = -1
    with pytest.raises(
        InputError, match="Label -1 of image 7 is negative.*leave such images out"
    ) as e:
        pv.Study(_net(), (x, y), layers=["features.5"])
    assert "num_classes=" not in str(e.value)  # it does not suggest the model's own class count


class Stages(nn.Module):
    """Conv stages in an nn.ModuleList, called one by one (the list itself never runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList([nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)])
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        for stage in self.stages:
            x = torch.relu(stage(x))
        return self.head(x.mean((2, 3)))


def test_a_container_that_never_runs_names_its_children(images):
    with pytest.raises(
        InputError,
        match=r"'stages' was not called.*container \(ModuleList\).*'stages.0', 'stages.1'",
    ):
        pv.Study(Stages(), images, layers=["stages"])


def test_channels_last_images_are_read_or_named(images):
    x, y = images
    two = torch.cat([x, 1 - x], 1).permute(0, 2, 3, 1).contiguous()  # N×32×32×2, channels last
    torch.manual_seed(0)
    net = pv.models.SmallVGG(2, 10, widths=(4, 8), hidden=16)
    s = pv.Study(net, (two, y), layers=net.default_layers, regions_per_image=4)
    assert s.input_size == (32, 32) and s.capture(progress=False).images == N
    five = torch.cat([x] * 5, 1).permute(0, 2, 3, 1).contiguous()  # N×32×32×5
    net5 = pv.models.SmallVGG(5, 10, widths=(4, 8), hidden=16)
    with pytest.raises(InputError, match=r"look channels-last.*permute\(0, 3, 1, 2\)") as e:
        pv.Study(net5, (five, y), layers=net5.default_layers)
    assert "in_channels=32" not in str(e.value)


def test_uncapped_regions_warn_with_an_estimate(digits):
    net = _net()
    data = torch.utils.data.Subset(digits, range(450))
    with pytest.warns(
        UserWarning,
        match=r"'features.5' keeps 460,800 regions \(450 images × 1,024 cells\).*MiB.*max_regions=200_000",
    ):
        pv.Study(net, data, layers=net.default_layers, regions_per_image=None, max_regions=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults stay quiet
        pv.Study(net, data, layers=net.default_layers)


# ---- knowledge points ----------------------------------------------------------------------------
def test_knowledge_points_of_an_unknown_layer_say_unknown(embedded):
    with pytest.raises(InputError, match=r"Unknown layer 'features.55'.*'features.5'"):
        embedded.knowledge_points("features.55")
    assert embedded.knowledge_points("features.12").per_image_total.shape == (N,)


# ---- widget --------------------------------------------------------------------------------------
def test_widget_refuses_state_it_cannot_draw(embedded, tmp_path):
    w = pv.PatternViz(embedded)
    try:
        for bad, words in [
            ({"azimuth": "x"}, r"camera\['azimuth'\] must be a finite number"),
            ({"azimuth": float("nan")}, r"camera\['azimuth'\] must be a finite number"),
            ({"distance": -1.0}, r"camera\['distance'\] must be > 0"),
            ({"target": [0, 0]}, r"camera\['target'\] must be 3 finite numbers"),
            ({"azimut": 0.5}, r"unknown field 'azimut'; its fields are azimuth, elevation"),
        ]:
            with pytest.raises(InputError, match=words):
                w.camera = bad
        assert w.camera == {}
        w.camera = {"azimuth": 1, "elevation": 0.3}
        assert w.camera == {"azimuth": 1.0, "elevation": 0.3}
        assert w.export(tmp_path / "view.png").stat().st_size > 1000  # still exports
        with pytest.raises(InputError, match="needs a compare mode: set compare='condition'"):
            w.compare_with = "999"
        w.compare = "epoch"
        with pytest.raises(InputError, match="no other epoch to compare main|clean|0 with"):
            w.compare_with = "999"
        w.compare = ""
        for h in (-5, 0, 10**6):
            with pytest.raises(
                InputError, match="height must be a whole number of pixels from 200 to 4000"
            ):
                w.height = h
        assert w.height == 660
        n = embedded.store.get(w.key, RegionRecord).image.shape[0]
        with pytest.raises(
            InputError, match=rf"id 1000000000 is not a point of this view, which has {n} regions"
        ):
            w.select([10**9])
        assert w.select([0, n - 1]).selected_ids.tolist() == [0, n - 1]
    finally:
        w.close()


def test_export_checks_the_format_before_drawing(captured, tmp_path):
    # this study has no embedding, so drawing would fail: the format error comes first
    w = pv.PatternViz(captured)
    try:
        with pytest.raises(
            InputError,
            match=r"figure format of .*x\.xyz.*\(\.xyz\)\. Use one of \.png, \.svg, \.pdf",
        ):
            w.export(tmp_path / "x.xyz")
        assert not (tmp_path / "x.xyz").exists()
    finally:
        w.close()


def test_a_study_from_something_that_is_not_a_store_names_load():
    with pytest.raises(
        InputError, match=r"needs a ResultStore, got str\. .*pv\.Study\.load\(path\)"
    ):
        pv.Study.from_store("runs/x.pvz")


@pytest.mark.parametrize("tol", [-0.1, float("inf"), float("nan"), "1e-3", True])
def test_region_fit_refuses_a_tol_that_is_not_a_relative_change(tol):
    from patternviz_widget.engine.method.region_embed import fit_region_embedding

    f = np.ones((4, 3), np.float32)
    with pytest.raises(InputError, match=r"tol must be None .* >= 0"):
        fit_region_embedding(
            f, np.zeros(4, np.int64), np.ones((1, 3)), np.full((1, 2), 0.5), tol=tol
        )
