"""Capture and tracking inside torchrun / DistributedDataParallel: one real 2-process DDP training
run on CPU (gloo) tracks epochs 1, 3 and 4 while rank 1 raises in the capture of epoch 2 and dies
(os._exit) in the capture of epoch 5. Its study file equals a single-process capture of the
weights rank 0 saved; the raise reached every rank, which trained on; the death stopped rank 0
within seconds, and the file on disk is the last good one (epoch 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, Subset

import patternviz_widget as pv
from patternviz_widget.engine.capture.data import as_probe_data
from patternviz_widget.errors import InputError
from patternviz_widget.pipeline.distributed import (
    shard_data,
    shard_plan,
    shard_range,
    strip_wrapper_prefix,
    unwrap_model,
)
from patternviz_widget.results import (
    SAMPLE,
    Key,
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
    SampleRecord,
)

WORKER = Path(__file__).with_name("_ddp_worker.py")
sys.path.insert(0, str(WORKER.parent))
import _ddp_worker as worker  # noqa: E402


def _torchrun(
    out: Path, timeout: float = 150, **env: str
) -> tuple[subprocess.CompletedProcess, float]:
    """Run the worker on 2 CPU processes; --standalone rendezvous picks a free port itself."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--monitor-interval=0.5", str(WORKER), str(out)]  # fmt: skip
    full = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=timeout)
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """One DDP job: 5 epochs; rank 1 raises at epoch 2 and dies at epoch 5; rank 0 embeds and
    saves; rank 1's view of the study file's folder cannot be written (only rank 0 writes)."""
    out = tmp_path_factory.mktemp("ddp")
    (out / "blocked").write_text("a file, so no folder can be made here")  # rank 1 never writes
    proc, seconds = _torchrun(
        out,
        PV_EPOCHS="5",
        PV_EMBED="1",
        PV_FAIL_RANK="1",
        PV_RAISE_EPOCH="2",
        PV_DIE_EPOCH="5",
        PV_PG_TIMEOUT="30",
        PV_OTHER_RANKS_DIR=str(out / "blocked"),
    )
    reports = {
        r: json.loads((out / f"rank{r}.json").read_text())
        for r in (0, 1)
        if (out / f"rank{r}.json").exists()
    }
    return out, proc, seconds, reports


def _reference(out: Path, epochs: list[int]) -> pv.Study:
    """A single-process study of the weights rank 0 saved after each epoch (DDP state dicts, keys
    "module.*", read by capture_checkpoints into the plain model)."""
    net = worker.build_model()
    study = pv.Study(
        net, worker.build_probe(), layers=worker.LAYERS, regions_per_image=8, batch_size=64
    )
    state = torch.load(out / f"state{epochs[0]}.pt", weights_only=True)
    assert all(k.startswith("module.") for k in state)
    study.capture_checkpoints([out / f"state{e}.pt" for e in epochs], epochs=epochs, embed=False)
    return study


@pytest.mark.slow
def test_ddp_training_run_tracks_the_same_study_as_one_process(ddp_run):
    out, proc, _, reports = ddp_run
    assert set(reports) == {0, 1}, proc.stdout[-3000:] + proc.stderr[-3000:]
    for r in (0, 1):  # every rank holds rank 0's snapshots (rank 0 embedded and saved)
        assert [s["epoch"] for s in reports[r]["snapshots"]] == [1, 3, 4]
        assert reports[r]["layers"] == ["features.5", "features.12"]  # "module." stripped
    assert reports[1]["snapshots"] == reports[0]["snapshots"]
    assert (out / "saved_by_rank0.pvz").is_file() and not (out / "saved_by_rank1.pvz").exists()
    ddp = pv.Study.load(out / "study.pvz")
    assert ddp.store.epochs() == [1, 3, 4]
    ref = _reference(out, [1, 3, 4])
    np.testing.assert_array_equal(ddp.store.probe.labels, ref.store.probe.labels)
    for e in (1, 3, 4):
        a = ddp.store.get(Key("main", "clean", e, SAMPLE), SampleRecord)
        b = ref.store.get(Key("main", "clean", e, SAMPLE), SampleRecord)
        assert a.features.shape == b.features.shape == (worker.N_PROBE, worker.HIDDEN)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.logits, b.logits, rtol=1e-4, atol=1e-5)
        assert ddp.store.find(SampleEmbedding, epoch=e), f"rank 0 did not embed epoch {e}"
        for layer in ("features.5", "features.12"):
            ra = ddp.store.get(Key("main", "clean", e, layer), RegionRecord)
            rb = ref.store.get(Key("main", "clean", e, layer), RegionRecord)
            # the same sampled cells of the same images, in the same rows ...
            np.testing.assert_array_equal(ra.image, rb.image)
            np.testing.assert_array_equal(ra.grid, rb.grid)
            np.testing.assert_array_equal(ra.box, rb.box)
            # ... holding the same features: rank 1's half came from rank 1's shard and plan
            np.testing.assert_allclose(ra.features, rb.features, rtol=1e-4, atol=1e-5)
            assert ddp.store.find(RegionEmbedding, epoch=e, layer=layer)
    # the weights changed between epochs, so the equality above is not one epoch compared thrice
    f1 = ddp.store.get(Key("main", "clean", 1, "features.12"), RegionRecord).features
    f4 = ddp.store.get(Key("main", "clean", 4, "features.12"), RegionRecord).features
    assert np.abs(f1 - f4).max() > 1e-2


@pytest.mark.slow
def test_a_rank_raising_mid_capture_raises_on_every_rank_and_training_goes_on(ddp_run):
    out, proc, _, reports = ddp_run
    for r in (0, 1):
        first = reports[r]["errors"][0]
        assert first["epoch"] == 2
        assert "DistributedCaptureError: The capture failed on rank 1 of 2" in first["error"]
        assert "injected failure on rank 1" in first["error"]
        assert first["seconds"] < 20
    assert 2 not in pv.Study.load(out / "study.pvz").store.epochs()


@pytest.mark.slow
def test_a_rank_dying_mid_capture_stops_the_others_and_keeps_the_last_good_file(ddp_run):
    out, proc, seconds, reports = ddp_run
    assert proc.returncode != 0
    assert "exitcode  : 17" in proc.stderr  # rank 1 died as injected
    assert seconds < 120, f"the job took {seconds:.0f} s to stop"
    assert [e["epoch"] for e in reports[1]["errors"]] == [2]  # rank 1 died before it could report
    # rank 0 noticed the dead peer in the capture's collective and raised our error (unless torchrun
    # stopped it first)
    died = [e for e in reports[0]["errors"] if e["epoch"] == 5]
    if died:
        assert "DistributedCaptureError" in died[0]["error"] and died[0]["seconds"] < 30
    study = pv.Study.load(out / "study.pvz")  # the last good file: epochs 1, 3, 4, whole
    assert study.store.epochs() == [1, 3, 4]
    rec = study.store.get(Key("main", "clean", 4, "features.12"), RegionRecord)
    assert rec.features.shape[0] == worker.N_PROBE * 8
    assert "partial" not in study.store.meta


def test_shards_cover_the_probe_set_and_keep_the_single_process_plan():
    """The rows of the shards, put back in rank order, are the single-process plan's rows."""
    net = worker.build_model()
    study = pv.Study(net, worker.build_probe(), layers=["features.5"], regions_per_image=8)
    plan = study.region_plans["features.5"]
    for world in (2, 3, 5):
        bounds = [shard_range(64, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == 64
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        parts = [shard_plan(plan, s, e) for s, e in bounds]
        np.testing.assert_array_equal(np.concatenate([p.cell for p in parts]), plan.cell)
        np.testing.assert_array_equal(
            np.concatenate([p.image + s for p, (s, _) in zip(parts, bounds)]), plan.image
        )
        assert all(p.offsets[0] == 0 and p.offsets[-1] == p.size for p in parts)


class _Stream(IterableDataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __iter__(self):
        for i in range(0, len(self.labels), 5):  # chunks that do not align with the batches
            yield self.images[i : i + 5], self.labels[i : i + 5]


@pytest.mark.parametrize("kind", ["tensors", "dataset", "iterable"])
def test_a_shard_of_the_probe_data_reads_exactly_its_images(kind):
    full = pv.datasets.digits("test")
    images, labels = full.images[:23], full.labels[:23]
    source = {"tensors": (images, labels), "dataset": Subset(full, range(23)),
              "iterable": DataLoader(_Stream(images, labels), batch_size=None)}[kind]  # fmt: skip
    probe = as_probe_data(source)
    assert probe.kind == kind and probe.n == 23
    for start, end in [(0, 8), (8, 17), (17, 23)]:
        part = shard_data(probe, start, end)
        batches = list(part.batches(4))
        sizes = [b.images.shape[0] for b in batches]
        assert [b.start for b in batches] == list(np.cumsum([0] + sizes[:-1])) and max(sizes) <= 4
        got = torch.cat([b.images for b in batches])
        np.testing.assert_array_equal(
            got.numpy(), np.asarray(images[start:end], dtype=np.float32).reshape(got.shape)
        )
        np.testing.assert_array_equal(
            torch.cat([b.labels for b in batches]).numpy(), np.asarray(labels[start:end])
        )


def test_wrapped_models_are_unwrapped_and_their_prefixes_accepted():
    net = worker.build_model()
    dp = torch.nn.DataParallel(net)
    assert unwrap_model(dp) is net
    assert strip_wrapper_prefix("module.features.5", net) == "features.5"
    assert strip_wrapper_prefix("_orig_mod.module.features.5", net) == "features.5"
    assert strip_wrapper_prefix("features.5", net) == "features.5"
    study = pv.Study(
        dp,
        worker.build_probe(),
        layers=["module.features.5"],
        regions_per_image=None,
        max_images=16,
    )
    assert study.layers == ["features.5"] and study.model is net
    study.capture(progress=False)
    with pytest.raises(InputError, match="TorchScript"):
        pv.Study(
            torch.jit.trace(worker.build_model().eval(), torch.zeros(1, 1, 32, 32)),
            worker.build_probe(),
            layers=["features.5"],
        )


@pytest.mark.slow
def test_compiled_models_capture_what_the_plain_model_does():
    """A whole compiled model is captured through its plain module; a compiled submodule runs
    eagerly during capture so its hooks fire (without that, dynamo skips hooks added later)."""
    probe = worker.build_probe()
    plain = pv.Study(
        worker.build_model(), probe, layers=["features.5"], regions_per_image=None, max_images=16
    )
    plain.capture(progress=False)
    want = plain.store.get(Key("main", "clean", 0, "features.5"), RegionRecord).features
    whole = worker.build_model()
    compiled = torch.compile(whole.eval(), backend="eager")
    compiled(torch.zeros(2, 1, 32, 32))  # compiled before the hooks exist (eval: BN stats stay)
    s1 = pv.Study(
        compiled, probe, layers=["_orig_mod.features.5"], regions_per_image=None, max_images=16
    )
    assert s1.model is whole
    s1.capture(progress=False)
    sub = worker.build_model()
    sub.features = torch.compile(sub.features, backend="eager")
    sub.eval()(torch.zeros(2, 1, 32, 32))
    s2 = pv.Study(
        sub, probe, layers=["features._orig_mod.5"], regions_per_image=None, max_images=16
    )
    s2.capture(progress=False)
    for s, layer in ((s1, "features.5"), (s2, "features._orig_mod.5")):
        got = s.store.get(Key("main", "clean", 0, layer), RegionRecord).features
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_without_a_process_group_capture_is_single_process():
    assert not dist.is_initialized()
    study = pv.Study(
        worker.build_model(),
        worker.build_probe(),
        layers=["features.5"],
        regions_per_image=4,
        max_images=8,
    )
    with pytest.raises(InputError, match="not initialised"):
        study.capture(progress=False, process_group=object())
    study.capture(progress=False, process_group=False)
    assert study.store.epochs() == [0]
