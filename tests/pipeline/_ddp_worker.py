"""One rank of a real DistributedDataParallel training run with a tracker, for test_distributed.py.

Run by ``python -m torch.distributed.run --nproc_per_node=2 _ddp_worker.py OUT`` (gloo, CPU). It
trains a tiny SmallVGG on digits with a DistributedSampler for ``PV_EPOCHS`` epochs and, after
each epoch, rank 0 saves the DDP model's state_dict to ``OUT/state<epoch>.pt`` and every rank calls
``tracker.snapshot(epoch)``, which autosaves ``OUT/study.pvz`` (rank 0 embeds with a short fit when
``PV_EMBED=1``). Each rank rewrites ``OUT/rank<r>.json`` after every epoch: its snapshots and the
errors its snapshots raised.

Failure injection on rank ``PV_FAIL_RANK``, in the second forward pass of a capture: at epoch
``PV_RAISE_EPOCH`` it raises (every rank gets the error, records it and trains on); at epoch
``PV_DIE_EPOCH`` it dies (``os._exit(17)``); a survivor that gets an error then exits with 1.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, Subset

import patternviz_widget as pv

N_PROBE, N_TRAIN, WIDTHS, HIDDEN = 64, 128, (4, 8), 16
LAYERS = ["module.features.5", "features.12"]  # with and without DDP's prefix


def _write(path: Path, report: dict) -> None:
    """Write atomically: torchrun may SIGTERM this rank mid-write once a peer has died."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, path)


def build_probe():
    """The probe set every rank passes whole (the capture shards it)."""
    return Subset(pv.datasets.digits("test"), range(N_PROBE))


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return pv.models.SmallVGG(in_channels=1, num_classes=10, widths=WIDTHS, hidden=HIDDEN)


def main() -> None:
    out = Path(sys.argv[1])
    env = os.environ.get
    epochs, embed = int(env("PV_EPOCHS", "3")), env("PV_EMBED", "0") == "1"
    fail_rank, raise_epoch, die_epoch = (
        int(env(k, "-1")) for k in ("PV_FAIL_RANK", "PV_RAISE_EPOCH", "PV_DIE_EPOCH")
    )
    dist.init_process_group(
        "gloo", timeout=datetime.timedelta(seconds=float(env("PV_PG_TIMEOUT", "60")))
    )
    rank = dist.get_rank()
    report: dict = {"rank": rank, "snapshots": [], "errors": []}
    net = build_model()
    model = DDP(net)
    train = Subset(pv.datasets.digits("train"), range(N_TRAIN))
    sampler = DistributedSampler(train, shuffle=True, seed=0)
    loader = DataLoader(train, batch_size=16, sampler=sampler)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    study = pv.Study(model, build_probe(), layers=LAYERS, regions_per_image=8, batch_size=16)
    report["layers"] = study.layers
    short_fit = {"fast": True, "steps": 100, "region_epochs": 2, "importance_steps": 2}
    # PV_OTHER_RANKS_DIR: the study file's folder as ranks other than 0 see it (another node's disk)
    folder = Path(env("PV_OTHER_RANKS_DIR")) if rank != 0 and env("PV_OTHER_RANKS_DIR") else out
    tracker = study.tracker(path=folder / "study.pvz", embed=embed, **(short_fit if embed else {}))
    state = {"epoch": -1, "calls": 0}

    def inject(module, inputs, output):
        if (
            torch.is_inference_mode_enabled()
            and rank == fail_rank
            and state["epoch"] in (raise_epoch, die_epoch)
        ):
            state["calls"] += 1
            if state["calls"] == 2:
                if state["epoch"] == die_epoch:
                    os._exit(17)
                raise RuntimeError(f"injected failure on rank {rank}")

    net.features[0].register_forward_hook(inject)
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if rank == 0:
            torch.save(model.state_dict(), out / f"state{epoch}.pt")
        state["epoch"], state["calls"] = epoch, 0
        t0 = time.perf_counter()
        try:
            snap = tracker.snapshot(epoch)
        except pv.errors.CaptureError as e:
            report["errors"].append(
                {
                    "epoch": epoch,
                    "error": f"{type(e).__name__}: {e}",
                    "seconds": time.perf_counter() - t0,
                }
            )
            _write(out / f"rank{rank}.json", report)
            if epoch == die_epoch:
                os._exit(1)  # a peer is gone: no teardown handshake to wait for
            continue
        report["snapshots"].append(
            {"epoch": snap.epoch, "path": snap.path, "kp_total": snap.kp_total}
        )
        study.save(out / f"saved_by_rank{rank}.pvz")  # only rank 0 writes
        _write(out / f"rank{rank}.json", report)
    report["ok"] = True
    _write(out / f"rank{rank}.json", report)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
