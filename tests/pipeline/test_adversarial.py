"""study.attack: adversarial records pair one to one with clean ones; the trace is what capture sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import patternviz_widget as pv
from patternviz_widget.errors import InputError
from patternviz_widget.results import ArrayRecord, Key, RegionRecord, SampleRecord


def _data(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.2 * torch.rand(n, 1, 8, 8, generator=g)
    for c in range(3):
        x[y == c, :, 2 * c : 2 * c + 2, :] += 0.7
    return x, y


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    x, y = _data()
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 64, 3),
    )  # fmt: skip
    opt = torch.optim.Adam(m.parameters(), lr=2e-2)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    m.zero_grad(set_to_none=True)
    return m


def _study(net: nn.Module) -> pv.Study:
    return pv.Study(net, _data(), layers=["1", "3"], regions_per_image=8, batch_size=16)


def test_adversarial_rows_pair_with_clean_and_trace_matches_capture(net):
    st = _study(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    summary = st.attack(eps=0.2, steps=4, progress=False, record_layers=["1", "3"])
    assert net.training and all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    for layer in ("1", "3"):
        clean = st.store.get(Key("main", "clean", 0, layer), RegionRecord)
        adv = st.store.get(Key("main", "adversarial", 0, layer), RegionRecord)
        np.testing.assert_array_equal(adv.image, clean.image)
        np.testing.assert_array_equal(adv.grid, clean.grid)
        trace = st.store.get(Key("main", "adversarial", 0, layer), ArrayRecord)
        feats = trace.arrays["features"].astype(np.float32)
        assert feats.shape == (5, clean.features.shape[0], clean.features.shape[1])
        np.testing.assert_allclose(
            feats[0], clean.features, rtol=2e-3, atol=2e-3
        )  # iteration 0 = clean
        np.testing.assert_allclose(feats[-1], adv.features, rtol=2e-3, atol=2e-3)
        assert not np.allclose(feats[-1], feats[0])
    info = st.store.get(Key("main", "adversarial", 0, pv.results.SAMPLE), ArrayRecord)
    adv_logits = st.store.get(Key("main", "adversarial", 0, pv.results.SAMPLE), SampleRecord).logits
    np.testing.assert_array_equal(info.arrays["adv_pred"], adv_logits.argmax(1))
    assert float(info.arrays["linf"].max()) <= 0.2 + 1e-6
    correct = info.arrays["clean_pred"] == info.arrays["labels"]
    expect = (correct & (info.arrays["adv_pred"] != info.arrays["labels"])).sum() / correct.sum()
    assert summary.success_rate == pytest.approx(expect)
    assert summary.success_curve[0] == 0.0 and summary.success_curve[-1] == pytest.approx(expect)
    assert summary.trace == {"1": "features", "3": "features"}


def test_stronger_attack_succeeds_more(net):
    st = _study(net)
    rates = [st.attack(eps=e, steps=5, progress=False).success_rate for e in (0.02, 0.3)]
    assert rates[0] < rates[1]


def test_fgsm_is_one_step(net):
    st = _study(net)
    s = st.attack(method="fgsm", eps=0.1, progress=False)
    assert s.steps == 1 and s.iterations.tolist() == [0, 1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "pgdd"}, "Closest: 'pgd'"),
        ({"eps": 1.5}, "out of range"),
        ({"eps": 0.1, "targeted": True}, "needs target="),
        ({"eps": 0.1, "targeted": True, "target": 7}, r"class in 0..2"),
        ({"eps": 0.1, "record_layers": ["9"]}, "not one of this study's layers"),
        ({"eps": 0.1, "record_every": 0}, "record_every must be >= 1"),
    ],
)
def test_bad_attack_arguments_fail_before_any_work(net, kwargs, match):
    st = _study(net)
    with pytest.raises(InputError, match=match):
        st.attack(progress=False, **kwargs)
    assert "adversarial" not in st.store.conditions()


def test_targeted_attack_reports_target_hits(net):
    st = _study(net)
    s = st.attack(eps=0.4, steps=8, targeted=True, target=2, progress=False)
    info = st.store.get(Key("main", "adversarial", 0, pv.results.SAMPLE), ArrayRecord)
    assert s.success_rate == pytest.approx(float((info.arrays["adv_pred"] == 2).mean()))
    assert s.success_rate > 0.8


def test_a_new_attack_replaces_the_last_one(net):
    st = _study(net)
    st.attack(eps=0.3, steps=3, progress=False, record_layers=["1"])
    key = Key("main", "adversarial", 0, "3")
    st.store.put(
        key, pv.results.RegionEmbedding(h=np.zeros((1, 3)), Lambda=np.zeros((3, 6)), w=np.ones(1))
    )
    st.attack(eps=0.01, steps=2, progress=False)
    assert not st.store.has(key, pv.results.RegionEmbedding)  # stale projection dropped
    assert not st.store.has(Key("main", "adversarial", 0, "1"), ArrayRecord)  # old trace dropped
    info = st.store.get(Key("main", "adversarial", 0, pv.results.SAMPLE), ArrayRecord)
    assert info.meta["eps"] == 0.01 and info.arrays["iterations"].tolist() == [0, 1, 2]


def test_attack_report_reads_the_attack_in_the_clean_frame(net):
    st = _study(net)
    st.capture(progress=False)
    st.embed(progress=False, fast=True)
    st.attack(eps=0.3, steps=4, progress=False, record_layers=["3"])
    adv3 = Key("main", "adversarial", 0, "3")
    assert st.store.has(adv3, pv.results.RegionEmbedding)  # projected right after the attack
    clean = st.store.get(adv3.replace(condition="clean"), pv.results.RegionEmbedding)
    adv = st.store.get(adv3, pv.results.RegionEmbedding)
    np.testing.assert_array_equal(adv.Lambda, clean.Lambda)  # the clean Λ, not a refit
    rep = st.attack_report()
    assert rep.layer == "3" and rep.deltas.layers == ["1", "3"]
    assert np.all(rep.deltas.orientation >= 0) and np.all(np.isfinite(rep.deltas.strength))
    trace_h = st.store.get(adv3, ArrayRecord).arrays["h"]
    np.testing.assert_allclose(trace_h[0], clean.h, rtol=1e-4, atol=1e-4)  # iteration 0 = clean
    np.testing.assert_allclose(trace_h[-1], adv.h, rtol=1e-4, atol=1e-4)
    assert rep.trajectories is not None and rep.trajectories.strength.shape[0] == 5
    assert rep.kp.attacked.sum() == (rep.kp.c_ori != rep.kp.c_adv)[rep.kp.attacked].sum()
    assert "Δ_orientation" in rep.table()
    assert st.attack_report(layer="1").trajectories is None  # not traced
    with pytest.raises(InputError, match="Closest: '3'"):
        st.attack_report(layer="33")


def test_a_report_reads_the_study_and_never_writes_into_it(net):
    st = _study(net)
    st.capture(progress=False)
    st.attack(eps=0.3, steps=2, progress=False)  # before any embedding: nothing projected yet
    st.embed(keys=st.store.find(condition="clean"), progress=False, fast=True)
    before = sorted(f"{key}|{kind}" for (key, kind), _ in st.store.items_with_kind())
    assert not st.store.has(Key("main", "adversarial", 0, "3"), pv.results.RegionEmbedding)
    rep = st.attack_report()  # projects the attack with the clean Λ to read it ...
    assert rep.deltas.layers == ["1", "3"] and np.all(np.isfinite(rep.deltas.strength))
    pv.figures.attack_deltas(st)
    after = sorted(f"{key}|{kind}" for (key, kind), _ in st.store.items_with_kind())
    assert after == before  # ... but keeps those projections to itself
