"""The Procrustes alignment (paper Sec. 3.2) keeps the picture from jumping between epochs on
a REAL tracked run, not only on synthetic rotations (tests/engine/test_align.py).

A SmallVGG is trained on digits for 4 epochs with a tracker capturing epochs 0..4. Each trained
epoch's sample embedding is then fitted from scratch (no warm start; seed = the epoch, as separate
fits are), which leaves every epoch in a frame of its own; chaining the two-pass Procrustes rotation
(epoch e onto the already aligned e-1) must bring the mean displacement between consecutive epochs
well down, while every point keeps its strength (a rotation). Measured: separate fits 0.246, 1.024,
1.193; aligned 0.244, 0.650, 0.429 (sum ×0.54); the study's warm start + rotation 0.047, 0.161, 0.222.

The study's own sequence (warm start from the mean of the last ≤3 M's, then the rotation) is
printed beside it. There the warm start already holds the frame, so the rotation is close to the
identity: on this run the same fits with and without the final rotation move by 0.449 vs 0.449
(epochs 1→4 summed), and a full refit with align=False vs True differs little and not one-signed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def _mean_disp(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean())


def test_alignment_lowers_epoch_to_epoch_displacement_on_a_real_run():
    import patternviz_widget as pv
    from patternviz_widget.engine.method.align import apply_rotation, procrustes_rotation
    from patternviz_widget.results import SAMPLE, Key, SampleEmbedding

    train = pv.datasets.digits("train", size=16)
    probe = pv.datasets.digits("test", size=16)
    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=1, num_classes=10, widths=(8, 16, 32), hidden=64)
    study = pv.Study(net, probe, layers=net.default_layers[-1:], max_images=80, regions_per_image=4)
    tracker = study.tracker(embed=False)
    tracker.snapshot(0)
    for e in range(1, 5):
        pv.models.train(net, train, epochs=1, progress=False)
        tracker.snapshot(e)
    from patternviz_widget.engine.method.embed import as_target_probs, fit_sample_embedding
    from patternviz_widget.results import SampleRecord

    labels = study.store.probe.labels
    g = []
    for e in range(1, 5):
        rec = study.store.get(Key("main", "clean", e, SAMPLE), SampleRecord)
        p = as_target_probs(rec.logits, 4.0, "logits")
        g.append(fit_sample_embedding(rec.features, p, labels=labels, steps=600, seed=e).g)
    aligned = [g[0]]
    for e in range(1, len(g)):
        r = procrustes_rotation(g[e], aligned[-1], drop_outliers=0.1)
        aligned.append(apply_rotation(r, g=g[e])["g"])
        np.testing.assert_allclose(  # a rotation: every point keeps its strength
            np.linalg.norm(aligned[-1], axis=1), np.linalg.norm(g[e], axis=1), rtol=1e-4, atol=1e-6
        )
    raw = [_mean_disp(g[e], g[e - 1]) for e in range(1, len(g))]
    rot = [_mean_disp(aligned[e], aligned[e - 1]) for e in range(1, len(g))]
    study.embed(progress=False, fast=True, steps=600)  # the study's way: warm start + rotation
    tracked = [
        study.store.get(Key("main", "clean", e, SAMPLE), SampleEmbedding).g for e in range(1, 5)
    ]
    warm = [_mean_disp(tracked[e], tracked[e - 1]) for e in range(1, len(tracked))]
    print(
        "mean displacement, epochs 1→2, 2→3, 3→4: separate fits "
        f"{np.round(raw, 3)}, aligned {np.round(rot, 3)}; study (warm + aligned) {np.round(warm, 3)}"
    )
    assert sum(rot) < 0.7 * sum(raw)
    assert all(a <= 1.02 * b for a, b in zip(rot, raw))  # 1→2 barely rotates: 0.244 vs 0.246
