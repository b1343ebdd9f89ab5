"""Tracking over training: checkpoints, the tracker's snapshots, alignment on a real run."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from patternviz_widget.engine.checkpoints import _check_keys, load_state_dict
from patternviz_widget.engine.tracking import preserved_rng
from patternviz_widget.errors import InputError, StudyFileError


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
