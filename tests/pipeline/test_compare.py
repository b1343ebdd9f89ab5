"""Study.compare: teacher | student in one store, layers paired, student read with the teacher's Λ."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import patternviz_widget as pv
from patternviz_widget.errors import InputError
from patternviz_widget.pipeline.compare import pair_layers
from patternviz_widget.results import SAMPLE, Key, RegionEmbedding, RegionRecord, SampleEmbedding


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3


def _net(width: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 6, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 64, 3),
    )  # fmt: skip


def _study(net: nn.Module, layers=("1", "3"), data=None, **kw) -> pv.Study:
    kw.setdefault("regions_per_image", 5)
    st = pv.Study(net, data or _data(), layers=list(layers), batch_size=8, **kw)
    st.capture(progress=False)
    return st


def _fake_embedding(st: pv.Study, layer: str, seed: int = 0) -> None:
    """Put a fixed Λ (and M, μ) under the teacher's clean keys, as embed() would."""
    rng = np.random.default_rng(seed)
    rec = st.store.get(Key("main", "clean", 0, layer), RegionRecord)
    lam = rng.normal(size=(3, rec.features.shape[1])).astype(np.float32)
    h = rec.features.astype(np.float32) @ lam.T
    w = np.full(h.shape[0], 0.2, np.float32)
    ms = float(np.linalg.norm(h, axis=1).mean())
    st.store.put(
        Key("main", "clean", 0, layer), RegionEmbedding(h=h, Lambda=lam, w=w, mean_strength=ms)
    )
    from patternviz_widget.results import SampleRecord

    s = st.store.get(Key("main", "clean", 0, SAMPLE), SampleRecord)
    m = rng.normal(size=(3, s.features.shape[1])).astype(np.float32) / 10
    mu = np.eye(3, dtype=np.float32)
    st.store.put(
        Key("main", "clean", 0, SAMPLE),
        SampleEmbedding(g=s.features @ m.T, mu=mu, pi=np.full(3, 1 / 3, np.float32), M=m),
    )


def test_pair_layers_by_name_depth_and_explicit():
    assert pair_layers(["a", "b", "c"], ["c", "a"]) == [("a", "a"), ("c", "c")]
    assert pair_layers(["t1", "t2", "t3"], ["s1", "s2"], by="depth") == [
        ("t1", "s1"), ("t2", "s2"), ("t3", "s2"),
    ]  # fmt: skip
    assert pair_layers(["t1"], ["s1", "s2"], by="depth") == [("t1", "s1")]
    assert pair_layers(["a", "b"], ["x", "y"], pairs={"b": "x"}) == [("b", "x")]
    with pytest.raises(InputError, match="share no name. Pass by='depth'"):
        pair_layers(["a"], ["x"])
    with pytest.raises(InputError, match="Closest: 'y'"):
        pair_layers(["a"], ["x", "y"], pairs={"a": "yy"})
    with pytest.raises(InputError, match="Unknown pairing 'dept'"):
        pair_layers(["a"], ["a"], by="dept")


def test_compare_puts_both_models_in_one_store_and_projects_with_teacher_lambda():
    teacher, student = _study(_net(seed=1)), _study(_net(seed=2))
    _fake_embedding(teacher, "3")
    both = pv.Study.compare(teacher, student)
    assert both.store.models() == ["student", "teacher"]
    assert both.store.layers() == ["1", "3"]
    assert both.store.meta["compare"]["pairs"] == {"student": [["1", "1"], ["3", "3"]]}
    t_key, s_key = Key("teacher", "clean", 0, "3"), Key("student", "clean", 0, "3")
    lam = both.store.get(t_key, RegionEmbedding).Lambda
    f_s = both.store.get(s_key, RegionRecord).features
    h_s = both.store.get(s_key, RegionEmbedding)
    np.testing.assert_allclose(h_s.h, f_s @ lam.T, rtol=1e-5, atol=1e-5)
    assert h_s.mean_strength == both.store.get(t_key, RegionEmbedding).mean_strength
    np.testing.assert_array_equal(
        both.store.get(Key("student", "clean", 0, SAMPLE), SampleEmbedding).mu, np.eye(3)
    )
    assert not both.store.has(Key("student", "clean", 0, "1"), RegionEmbedding)  # teacher had none
    assert set(both.models) == {"teacher", "student"}


def test_depth_pairing_renames_student_layers():
    with pytest.raises(InputError, match="regions_per_image=None"):  # sampled per layer name
        pv.Study.compare(_study(_net(seed=1)), _study(_net(seed=2), layers=("0", "2")), by="depth")
    teacher = _study(_net(seed=1), layers=("1", "3"), regions_per_image=None)
    student = _study(_net(seed=2), layers=("0", "2"), regions_per_image=None)
    both = pv.Study.compare(teacher, student, by="depth")
    assert both.store.meta["compare"]["pairs"] == {"student": [["1", "0"], ["3", "2"]]}
    assert both.store.find(RegionRecord, model="student") == [
        Key("student", "clean", 0, "1"),
        Key("student", "clean", 0, "3"),
    ]


def test_different_probe_sets_are_refused():
    teacher = _study(_net(seed=1))
    x, y = _data(24)
    student = _study(_net(seed=2), data=(x[:20], y[:20]))
    with pytest.raises(InputError, match="different probe images"):
        pv.Study.compare(teacher, student)


def test_region_rows_that_do_not_pair_are_refused():
    teacher, student = _study(_net(seed=1)), _study(_net(seed=2), seed=7)
    with pytest.raises(InputError, match="keep different regions"):
        pv.Study.compare(teacher, student)


def test_channel_mismatch_with_teacher_lambda_is_a_clear_error():
    teacher, student = _study(_net(seed=1)), _study(_net(width=5, seed=2))
    _fake_embedding(teacher, "1")
    with pytest.raises(InputError, match="channel count"):
        pv.Study.compare(teacher, student)
    both = pv.Study.compare(teacher, student, project=False)  # each model on its own is fine
    assert both.store.models() == ["student", "teacher"]


def test_several_students_share_the_teacher_frame():
    teacher = _study(_net(seed=1))
    _fake_embedding(teacher, "3")
    students = {"logit": _study(_net(seed=2)), "feature": _study(_net(seed=3))}
    both = pv.Study.compare(teacher, students)
    assert both.store.models() == ["feature", "logit", "teacher"]
    assert both.store.meta["compare"]["models"] == ["teacher", "logit", "feature"]
    lam = both.store.get(Key("teacher", "clean", 0, "3"), RegionEmbedding).Lambda
    for name in students:
        emb = both.store.get(Key(name, "clean", 0, "3"), RegionEmbedding)
        np.testing.assert_array_equal(emb.Lambda, lam)
    with pytest.raises(InputError, match="other than 'teacher'"):
        pv.Study.compare(teacher, {"teacher": students["logit"]})


def test_distill_report_counts_and_distances_in_the_teacher_frame():
    teacher = _study(_net(seed=1))
    teacher.embed(progress=False, fast=True)
    same = _study(_net(seed=1))  # a student identical to the teacher: distances must be zero
    other = pv.Study(_net(seed=5), _data(), layers=["1", "3"], regions_per_image=5, batch_size=8)
    for e in (0, 1):
        other.capture(epoch=e, progress=False)
    rep = pv.Study.compare(teacher, {"copy": same, "other": other}).distill_report()
    assert rep.models == ["teacher", "copy", "other"] and rep.layers == ["1", "3"]
    np.testing.assert_allclose(rep.kp_total[1], rep.kp_total[0])
    np.testing.assert_allclose(rep.cos_median["copy"], 0.0, atol=1e-5)
    np.testing.assert_allclose(rep.strength_mean_abs["copy"], 0.0, atol=1e-5)
    assert rep.cos_share_small["copy"].tolist() == [1.0, 1.0]
    assert rep.cos_hist["other"].sum(1).tolist() == [120, 120]  # every region counted once
    assert rep.epochs["other"].tolist() == [0, 1] and rep.emergence_total["other"].shape == (2, 2)
    assert "copy" in rep.table()
    with pytest.raises(InputError, match="pv.Study.compare"):
        teacher.distill_report()
