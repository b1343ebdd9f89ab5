"""Tracking over training: checkpoints, the tracker's snapshots, alignment on a real run."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch

from patternviz_widget.errors import InputError, StudyFileError
from patternviz_widget.pipeline.checkpoints import _check_keys, load_state_dict
from patternviz_widget.pipeline.tracking import preserved_rng


# -- checkpoint reading ----------------------------------------------------------------------------
def test_load_state_dict_reads_files_and_unwraps_nesting(tmp_path):
    net = torch.nn.Linear(3, 2)
    plain = tmp_path / "plain.pt"
    torch.save(net.state_dict(), plain)
    nested = tmp_path / "nested.ckpt"
    torch.save({"epoch": 3, "state_dict": net.state_dict()}, nested)
    for path in (plain, nested):
        state = load_state_dict(path)
        assert set(state) == {"weight", "bias"}
        torch.testing.assert_close(state["weight"], net.weight.detach())


def test_load_state_dict_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="not found.*nope.pt"):
        load_state_dict(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(StudyFileError, match="weights_only=True"):
        load_state_dict(garbage)
    with pytest.raises(InputError, match="paths or state dicts"):
        load_state_dict(42)  # type: ignore[arg-type]


def test_refuses_pickled_objects(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(3, 2), path)  # a whole pickled module, not a state dict
    with pytest.raises(StudyFileError, match="weights_only"):
        load_state_dict(path)


def test_key_check_names_missing_and_unexpected_keys():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = dict(net.state_dict())
    state.pop("1.bias")
    state["2.weight"] = torch.zeros(1)
    with pytest.raises(InputError) as err:
        _check_keys(net, state, "'ck.pt'")
    text = str(err.value)
    assert "Missing keys (1): '1.bias'" in text
    assert "Unexpected keys (1): '2.weight'" in text

    prefixed = {f"model.{k}": v for k, v in net.state_dict().items()}
    with pytest.raises(InputError, match="strip that prefix"):
        _check_keys(net, prefixed, "#0")

    wrong = dict(net.state_dict())
    wrong["1.weight"] = torch.zeros(3, 4)
    with pytest.raises(InputError, match=r"1\.weight \(3, 4\) vs model \(2, 4\)"):
        _check_keys(net, wrong, "#0")


def test_preserved_rng_leaves_the_training_stream_alone():
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    with preserved_rng(torch.device("cpu")):
        torch.manual_seed(123)
        torch.rand(100)
        np.random.rand(7)
        random.random()
    got = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]


# -- a real (tiny) tracked run ------------------------------------------------------------------
def _setup(n_probe: int = 48):
    import patternviz_widget as pv

    train = pv.datasets.shapes(n=192, size=32, seed=0)
    probe = pv.datasets.shapes(n=n_probe, size=32, seed=1)
    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=3, num_classes=6, widths=(8, 16), hidden=32)
    study = pv.Study(net, probe, layers=net.default_layers, regions_per_image=8, batch_size=48)
    return pv, train, net, study


def _regions(study, epoch, layer):
    from patternviz_widget.results import Key, RegionRecord

    return study.store.get(Key("main", "clean", epoch, layer), RegionRecord)


@pytest.mark.slow
def test_tracked_capture_keeps_region_identity_and_checkpoints_match_live(tmp_path):
    from patternviz_widget.results import SAMPLE, Key, SampleRecord

    pv, train, net, study = _setup()
    tracker = study.tracker(embed=False)
    states = {}

    def on_epoch_end(epoch, model):
        states[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return callback(epoch, model)

    callback = study.lightning_callback(tracker=tracker)
    states[0] = {k: v.detach().clone() for k, v in net.state_dict().items()}
    callback.on_train_start()  # a plain loop has no start hook: epoch 0 = the untrained model
    pv.models.train(net, train, epochs=2, progress=False, on_epoch_end=on_epoch_end)
    assert tracker.epochs == [0, 1, 2]
    assert study.store.epochs() == [0, 1, 2]
    for layer in study.layers:
        first = _regions(study, 0, layer)
        for epoch in (1, 2):
            later = _regions(study, epoch, layer)
            # the same (image, cell) in row m at every epoch ...
            np.testing.assert_array_equal(later.image, first.image)
            np.testing.assert_array_equal(later.grid, first.grid)
            np.testing.assert_array_equal(later.box, first.box)
            # ... seen by a model that changed
            assert not np.allclose(later.features, first.features)

    # the same weights from checkpoint files give the same features as the live capture
    paths = []
    for epoch in (0, 1, 2):
        paths.append(tmp_path / f"epoch{epoch}.pt")
        torch.save(states[epoch], paths[-1])
    final = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.train()
    _, _, net2, study2 = _setup()
    net2.load_state_dict(final)
    net2.train()
    snaps = study2.capture_checkpoints(paths, epochs=[0, 1, 2], embed=False)
    assert [s.epoch for s in snaps] == [0, 1, 2]
    for epoch in (0, 1, 2):
        live = study.store.get(Key("main", "clean", epoch, SAMPLE), SampleRecord)
        replay = study2.store.get(Key("main", "clean", epoch, SAMPLE), SampleRecord)
        np.testing.assert_allclose(replay.logits, live.logits, rtol=1e-5, atol=1e-5)
        for layer in study.layers:
            np.testing.assert_allclose(
                _regions(study2, epoch, layer).features,
                _regions(study, epoch, layer).features,
                rtol=1e-5,
                atol=1e-5,
            )
    # the model got its own weights and mode back
    for k, v in net2.state_dict().items():
        torch.testing.assert_close(v, final[k])
    assert net2.training


def test_capture_checkpoints_checks_before_touching_the_model(tmp_path):
    pv, _, net, study = _setup(n_probe=8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    good = tmp_path / "good.pt"
    torch.save(net.state_dict(), good)
    bad = {k: v for k, v in net.state_dict().items() if not k.startswith("classifier.4")}
    with pytest.raises(InputError, match=r"Missing keys \(2\): 'classifier.4.weight'"):
        study.capture_checkpoints([good, bad], embed=False)
    with pytest.raises(InputError, match="not found"):
        study.capture_checkpoints([good, tmp_path / "missing.pt"], embed=False)
    with pytest.raises(InputError, match="increasing"):
        study.capture_checkpoints([good, good], epochs=[3, 1], embed=False)
    assert study.store.epochs() == []  # nothing was captured
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_tracker_arguments_are_checked():
    _, _, _, study = _setup(n_probe=8)
    with pytest.raises(InputError, match="features.99"):
        study.tracker(layers=["features.99"])
    with pytest.raises(InputError, match="every"):
        study.tracker(every=0)


def test_step_honours_every():
    _, _, _, study = _setup(n_probe=8)
    tracker = study.tracker(every=2, embed=False)
    tracker.snapshot(0)
    taken = [tracker.step() for _ in range(5)]
    assert [s.epoch if s else None for s in taken] == [None, 2, None, 4, None]
    assert study.store.epochs() == [0, 2, 4]


def test_watch_picks_up_epochs_saved_by_another_writer(tmp_path):
    import patternviz_widget as pv

    _, _, _, study = _setup(n_probe=8)
    path = tmp_path / "run.pvz"
    tracker = study.tracker(path=path, embed=False)
    tracker.snapshot(0)
    watched = pv.Study.watch(path, interval=0.05, start=False)  # a reader, e.g. another kernel
    assert watched.store.epochs() == [0]
    seen = []
    watched.store.observe(lambda key: seen.append(key.epoch))
    assert watched.watcher.poll() == []  # nothing new yet
    tracker.snapshot(1)
    tracker.snapshot(2)
    added = watched.watcher.poll()
    assert sorted({k.epoch for k in added}) == [1, 2]
    assert watched.store.epochs() == [0, 1, 2]
    assert set(seen) == {1, 2}  # observers (the widget) heard about each new record
    # the background thread does the same on its own
    watched.watcher.start()
    tracker.snapshot(3)
    deadline = time.monotonic() + 20
    while 3 not in watched.store.epochs() and time.monotonic() < deadline:
        time.sleep(0.05)
    watched.watcher.stop()
    assert watched.store.epochs() == [0, 1, 2, 3]
    assert not watched.watcher.running
