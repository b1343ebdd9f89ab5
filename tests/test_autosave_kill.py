"""Crash-safe autosave: SIGKILL a real training run while it writes its 3rd snapshot; the study file
still loads, with every finished snapshot and nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

# The child trains a tiny SmallVGG on shapes with a tracker autosaving to PATH. It prints a marker
# after each finished snapshot. To kill *inside* the 3rd file write (not between writes) it slows
# the disk down from the 3rd save on: each array written sleeps a little, after printing WRITING.
CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import torch
    import patternviz_widget as pv

    path, embed = sys.argv[1], sys.argv[2] == "1"
    real_write = np.lib.format.write_array
    saves = {"n": 0}

    def slow_write(*args, **kwargs):
        if saves["n"] >= 2:
            print("WRITING", flush=True)
            time.sleep(0.2)
        return real_write(*args, **kwargs)

    np.lib.format.write_array = slow_write
    train = pv.datasets.shapes(n=96, size=32, seed=0)
    probe = pv.datasets.shapes(n=24, size=32, seed=1)
    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=3, num_classes=6, widths=(8, 16), hidden=32)
    study = pv.Study(net, probe, layers=net.default_layers, regions_per_image=8)
    tracker = study.tracker(path=path, embed=embed)

    def done(epoch, model):
        snap = tracker.step()
        saves["n"] += 1
        print(f"SAVED {snap.epoch}", flush=True)

    tracker.snapshot(0)
    saves["n"] += 1
    print("SAVED 0", flush=True)
    pv.models.train(net, train, epochs=5, progress=False, on_epoch_end=done)
    print("FINISHED", flush=True)
    """
)


def _run_and_kill(path: Path, embed: bool) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "1" if embed else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 240
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.strip())
            if line.startswith("WRITING"):
                proc.send_signal(signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    err = proc.stderr.read() if proc.stderr else ""  # type: ignore[union-attr]
    assert "WRITING" in lines, f"the child never reached the 3rd save: {lines}\n{err[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("embed", [False])
def test_sigkill_during_the_third_save_keeps_the_first_two(tmp_path, embed):
    import patternviz_widget as pv
    from patternviz_widget.results import SAMPLE, Key, RegionRecord, SampleRecord

    path = tmp_path / "run.pvz"
    lines = _run_and_kill(path, embed)
    assert [x for x in lines if x.startswith("SAVED")] == ["SAVED 0", "SAVED 1"]
    # the kill hit the write itself: a half-written temporary file was left next to the study
    leftovers = list(tmp_path.glob(".run.pvz.*.tmp"))
    assert leftovers and leftovers[0].stat().st_size > 0

    study = pv.Study.load(path)
    store = study.store
    assert store.epochs() == [0, 1]  # epoch 2 (in progress) is lost, nothing else
    assert [s["epoch"] for s in store.meta["tracking"]["snapshots"]] == [0, 1]
    layers = study.layers
    assert len(layers) == 2
    for epoch in (0, 1):
        sample = store.get(Key("main", "clean", epoch, SAMPLE), SampleRecord)
        assert sample.logits.shape == (24, 6) and np.isfinite(sample.logits).all()
        for layer in layers:
            rec = store.get(Key("main", "clean", epoch, layer), RegionRecord)
            assert rec.features.shape[0] == 24 * 8
            assert np.isfinite(rec.features).all()
    first, second = (store.get(Key("main", "clean", e, layers[-1]), RegionRecord) for e in (0, 1))
    np.testing.assert_array_equal(first.grid, second.grid)
    assert not np.array_equal(first.features, second.features)
