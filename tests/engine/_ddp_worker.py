"""One rank of a real DistributedDataParallel training run with a tracker, for test_distributed.py.

Run by ``python -m torch.distributed.run --nproc_per_node=2 _ddp_worker.py OUT`` (gloo, CPU). It
trains a tiny SmallVGG on digits with a DistributedSampler for ``PV_EPOCHS`` epochs (3) and, after
each epoch, rank 0 saves the DDP model's state_dict to ``OUT/state<epoch>.pt`` and every rank calls
``tracker.snapshot(epoch)``, which autosaves ``OUT/study.pvz``. Each rank writes
``OUT/rank<r>.json``: its snapshots on success, or the error it raised.

Failure injection: with ``PV_FAIL_RANK=r``, ``PV_FAIL_EPOCH=e`` and ``PV_FAIL_MODE=exit|raise``, rank
r dies (``os._exit(17)``) or raises in the second forward pass of the capture of epoch e.
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


def build_probe():
    """The probe set every rank passes whole (the capture shards it)."""
    return Subset(pv.datasets.digits("test"), range(N_PROBE))


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return pv.models.SmallVGG(in_channels=1, num_classes=10, widths=WIDTHS, hidden=HIDDEN)


def main() -> None:
    out = Path(sys.argv[1])
    epochs = int(os.environ.get("PV_EPOCHS", "3"))
    embed = os.environ.get("PV_EMBED", "0") == "1"
    fail_rank = int(os.environ.get("PV_FAIL_RANK", "-1"))
    fail_epoch = int(os.environ.get("PV_FAIL_EPOCH", "-1"))
    fail_mode = os.environ.get("PV_FAIL_MODE", "exit")
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=float(os.environ.get("PV_PG_TIMEOUT", "60"))))
    rank = dist.get_rank()
    report: dict = {"rank": rank, "snapshots": []}
    try:
        net = build_model()
        model = DDP(net)
        train = Subset(pv.datasets.digits("train"), range(N_TRAIN))
        sampler = DistributedSampler(train, shuffle=True, seed=0)
        loader = DataLoader(train, batch_size=16, sampler=sampler)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        study = pv.Study(model, build_probe(), layers=LAYERS, regions_per_image=8, batch_size=16)
        report["layers"] = study.layers
        kwargs = {"fast": True} if embed else {}
        tracker = study.tracker(path=out / "study.pvz", embed=embed, **kwargs)
        state = {"epoch": -1, "calls": 0}

        def inject(module, inputs, output):
            if torch.is_inference_mode_enabled() and state["epoch"] == fail_epoch and rank == fail_rank:
                state["calls"] += 1
                if state["calls"] == 2:
                    if fail_mode == "exit":
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
            state["epoch"] = epoch
            t0 = time.perf_counter()
            snap = tracker.snapshot(epoch)
            report["snapshots"].append({"epoch": snap.epoch, "path": snap.path, "seconds": time.perf_counter() - t0})
        report["ok"] = True
    except Exception as e:
        report["ok"] = False
        report["error"] = f"{type(e).__name__}: {e}"
        (out / f"rank{rank}.json").write_text(json.dumps(report))
        sys.exit(1)
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
