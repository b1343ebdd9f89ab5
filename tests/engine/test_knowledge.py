"""Knowledge points (paper Sec. 3.4) on embeddings of known geometry: which regions are
knowledge points, which are reliable, counts per image and r_reliable by hand, the threshold τ
(monotone, never refits), and the on-object share with masks (our extension) by hand."""

from __future__ import annotations

import numpy as np
import pytest

from patternviz_widget.engine.method import knowledge as K

MU = np.eye(3)  # three classes, orthogonal unit class directions μ_c


def numpy_posterior(h, mu, mean_strength, kappa_max=1000.0):
    """p(c|h) = softmax_c(κ(‖h̃‖) μ_cᵀ h̃/‖h̃‖), h̃ = h/mean_strength, κ(l) = min(κ_max, l)."""
    ht = h / mean_strength
    n = np.linalg.norm(ht, axis=1)
    z = np.minimum(kappa_max, n)[:, None] * (ht / n[:, None]) @ mu.T
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def geometry():
    """4 images (labels 0, 1, 2, 0), 3 regions each; 'far' = 6·μ_c (posterior peak ≈ 0.995),
    'near' = 0.05·μ_c (≈ 0.34 < τ), mean strength fixed at 1 so nothing is rescaled."""
    labels = np.array([0, 1, 2, 0])
    rows = [  # (image, h)
        (0, 6 * MU[0]),
        (0, 6 * MU[1]),
        (0, 0.05 * MU[0]),  # reliable, unreliable, near
        (1, 6 * MU[1]),
        (1, 0.05 * MU[2]),
        (1, 0.05 * MU[1]),  # reliable, near, near
        (2, 6 * MU[2]),
        (2, 6 * MU[2]),
        (2, 6 * MU[0]),  # reliable ×2, unreliable
        (3, 0.05 * MU[1]),
        (3, 0.02 * MU[0]),
        (3, 0.01 * MU[2]),  # nothing
    ]
    image = np.array([r[0] for r in rows])
    h = np.array([r[1] for r in rows], dtype=np.float64)
    return h, image, labels


def test_far_regions_are_knowledge_points_and_near_origin_ones_are_not():
    h, image, labels = geometry()
    kpts = K.knowledge_points_arrays(h, MU, 1.0, image, labels, threshold=0.4)
    far = np.linalg.norm(h, axis=1) > 1
    np.testing.assert_array_equal(kpts.is_kp, far)
    np.testing.assert_allclose(kpts.posterior, numpy_posterior(h, MU, 1.0), atol=1e-6)
    np.testing.assert_array_equal(kpts.predicted, np.argmax(h, axis=1))
    # reliable = KP whose class is the image's true class (category agreement, not a mask)
    np.testing.assert_array_equal(kpts.is_reliable, far & (np.argmax(h, axis=1) == labels[image]))
    # counts per image and r_reliable by hand
    np.testing.assert_array_equal(kpts.per_image_total, [2, 1, 3, 0])
    np.testing.assert_array_equal(kpts.per_image_reliable, [1, 1, 2, 0])
    assert kpts.mean_total == pytest.approx(6 / 4)
    assert kpts.mean_reliable == pytest.approx(4 / 4)
    assert kpts.r_reliable == pytest.approx(4 / 6)
    np.testing.assert_array_equal(kpts.kept_per_image, [3, 3, 3, 3])
    assert kpts.on_object is None and kpts.on_object_share is None  # no masks: no extension


def test_counts_scale_with_the_mean_strength_and_the_full_grid():
    """h is divided by the layer's mean strength first: the same h read with a 10× larger mean
    strength sits near the origin. Full-grid counts rescale by cells / kept."""
    h, image, labels = geometry()
    assert (
        K.knowledge_points_arrays(h, MU, 100.0, image, labels).is_kp.sum() == 0
    )  # ‖h̃‖ ≤ 0.06: peak ≈ 0.35
    # mean strength 10: ‖h̃‖ = 0.6 for the far rows, peak e^0.6/(e^0.6 + 2) ≈ 0.48 ≥ 0.4, still KPs
    scaled = K.knowledge_points_arrays(h, MU, 10.0, image, labels)
    by_hand = numpy_posterior(h, MU, 10.0).max(1)
    np.testing.assert_allclose(scaled.posterior.max(1), by_hand, atol=1e-6)
    np.testing.assert_array_equal(scaled.is_kp, by_hand >= 0.4)
    assert scaled.is_kp.sum() == 6 and by_hand.max() < 0.5
    grid = K.knowledge_points_arrays(h, MU, 1.0, image, labels, grid_cells=12)
    np.testing.assert_allclose(grid.per_image_total_full_grid, np.array([2, 1, 3, 0]) * 12 / 3)


def test_threshold_changes_counts_monotonically():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(400, 3)) * rng.uniform(0.05, 4, size=(400, 1))
    image = np.repeat(np.arange(40), 10)
    labels = rng.integers(0, 3, 40)
    taus = [0.0, 0.34, 0.4, 0.5, 0.7, 0.9, 0.99]
    totals = [
        K.knowledge_points_arrays(h, MU, 1.0, image, labels, threshold=t).per_image_total
        for t in taus
    ]
    for a, b in zip(totals, totals[1:]):
        assert (b <= a).all()
    np.testing.assert_array_equal(totals[0], 10)  # τ = 0: every region
    assert len({float(t.sum()) for t in totals}) >= 5  # the counts do move with τ
    with pytest.raises(ValueError, match="threshold"):
        K.knowledge_points_arrays(h, MU, 1.0, image, labels, threshold=1.5)


def test_on_object_share_by_hand():
    """Masks: the left half (x < 4) of an 8×8 image is the object. A region is on the object when
    ≥ 50 % of the pixels whose centres lie in its box are foreground (our extension)."""
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[:, :, :4] = 1
    box = np.array(
        [
            [0, 0, 4, 4],  # all foreground                      -> on
            [4, 0, 8, 4],  # all background                      -> off
            [2, 0, 6, 4],  # exactly half                        -> on (≥)
            [3, 0, 8, 4],  # 1 of 5 columns                      -> off
            [0.6, 0, 4, 4],  # centres 1.5 .. 3.5: all foreground  -> on
            [3.6, 0, 5.6, 4],  # centres 4.5, 5.5 only: background -> off
            [-5, -5, 2, 20],  # clipped to columns 0, 1            -> on
            [4.2, 0, 4.4, 4],  # covers no pixel centre            -> off
        ],
        dtype=np.float64,
    )
    image = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    expect_on = np.array([1, 0, 1, 0, 1, 0, 1, 0], bool)
    np.testing.assert_array_equal(K.boxes_on_object(box, image, masks), expect_on)
    # knowledge points: rows 0, 1, 3, 4 far along their image's class, the rest near the origin
    h = np.array(
        [
            6 * MU[0],
            6 * MU[0],
            0.05 * MU[0],
            6 * MU[1],
            6 * MU[1],
            0.05 * MU[1],
            0.05 * MU[1],
            0.01 * MU[2],
        ]
    )
    kpts = K.knowledge_points_arrays(h, MU, 1.0, image, np.array([0, 1]), box=box, masks=masks)
    kp_rows = np.array([1, 1, 0, 1, 1, 0, 0, 0], bool)
    np.testing.assert_array_equal(kpts.is_kp, kp_rows)
    np.testing.assert_array_equal(kpts.on_object, expect_on)
    assert kpts.on_object_share == pytest.approx(
        (expect_on & kp_rows).sum() / kp_rows.sum()
    )  # 2 / 4
    assert kpts.on_object_chance == pytest.approx(expect_on.mean())  # 4 / 8
    none = K.knowledge_points_arrays(
        h * 0.001, MU, 1.0, image, np.array([0, 1]), box=box, masks=masks
    )
    assert none.is_kp.sum() == 0 and none.on_object_share == 0.0


@pytest.fixture(scope="module")
def small_study():
    import torch

    import patternviz_widget as pv

    probe = pv.datasets.shapes(n=32, size=32, seed=1)
    torch.manual_seed(0)
    net = pv.models.SmallVGG(in_channels=3, num_classes=6, widths=(8, 16), hidden=32)
    study = pv.Study(
        net, probe, layers=net.default_layers, regions_per_image=6, batch_size=32, device="cpu"
    )
    study.capture(progress=False)
    study.embed(progress=False, steps=100, region_epochs=2, importance_steps=2, partners=10)
    return study


def _snapshot(study):
    from patternviz_widget.results import RegionEmbedding, SampleEmbedding

    out = {}
    for kind in (SampleEmbedding, RegionEmbedding):
        for key in study.store.find(kind):
            rec = study.store.get(key, kind)
            for name in ("g", "mu", "pi", "M", "h", "Lambda", "w"):
                if hasattr(rec, name):
                    out[(str(key), name)] = np.array(getattr(rec, name), copy=True)
    return out


def test_study_threshold_only_rethresholds_and_never_refits(small_study):
    from patternviz_widget.results import (
        SAMPLE,
        Key,
        RegionEmbedding,
        RegionRecord,
        SampleEmbedding,
    )

    study = small_study
    before = _snapshot(study)
    n_keys = len(study.store.find())
    layer = study.layers[-1]
    # κ slope 1: the default slope follows the untrained net's short g's and puts every peak at
    # ≈ 1/K, which leaves nothing to re-threshold
    peaks = study.knowledge_points(layer, kappa_slope=1.0).posterior.max(1)
    # τ = 0, then thresholds spread over the measured posterior peaks (an untrained net's peaks
    # sit just above 1/K, so fixed τ's would all give 0), then the paper's 0.4
    taus = [0.0, *np.quantile(peaks, [0.1, 0.4, 0.7, 0.95]).tolist(), 0.4]
    taus = sorted(taus)
    res = [study.knowledge_points(layer, threshold=t, kappa_slope=1.0) for t in taus]
    after = _snapshot(study)
    assert before.keys() == after.keys()
    for k in before:
        assert np.array_equal(before[k], after[k]), k
    assert len(study.store.find()) == n_keys  # nothing written
    for a, b in zip(res, res[1:]):
        assert (b.per_image_total <= a.per_image_total).all()
        np.testing.assert_array_equal(a.posterior, b.posterior)  # same embedding, same posterior
    np.testing.assert_array_equal(res[0].per_image_total, res[0].kept_per_image)
    print(
        "mean KP per image vs τ:",
        [(round(t, 4), round(r.mean_total, 3)) for t, r in zip(taus, res)],
    )
    assert len({r.mean_total for r in res}) >= 4  # the counts do move with τ
    # the study's answer is knowledge_points_arrays on the stored arrays (probe masks included)
    key = Key("main", "clean", 0, layer)
    emb = study.store.get(key, RegionEmbedding)
    rec = study.store.get(key, RegionRecord)
    mu = study.store.get(key.replace(layer=SAMPLE), SampleEmbedding).mu
    direct = K.knowledge_points_arrays(
        emb.h,
        mu,
        emb.mean_strength,
        rec.image,
        study.store.probe.labels,
        threshold=0.4,
        box=rec.box,
        masks=study.store.probe.masks,
        grid_cells=rec.grid_shape[0] * rec.grid_shape[1],
    )
    at_04 = res[taus.index(0.4)]
    np.testing.assert_array_equal(direct.is_kp, at_04.is_kp)
    assert direct.on_object_share == at_04.on_object_share and at_04.on_object_share is not None


def test_float32_posterior_agrees_with_float64_on_a_fitted_study(small_study):
    """The posterior is computed in float32 (the widget's first view waits for it): on the fitted
    embeddings of every layer, at κ slopes from the default to one that puts most regions at the
    cap κ_max = 1000, it stays within TOL of the float64 computation, and the knowledge-point and
    reliable flags and the predicted class are the same wherever float64 is not within TOL of a
    decision (the peak of τ, or a tie between the two largest classes)."""
    from patternviz_widget.engine.method import kappa as kp
    from patternviz_widget.results import SAMPLE, RegionEmbedding, SampleEmbedding

    # float32 rounds a logit κ·cos by about κ_max · 6e-8 = 6e-5, so p moves by about that share of
    # itself; measured: at most 2.0e-5 here (κ at the cap, near-coincident class directions of an
    # untrained net), 3.3e-6 on the display benchmark's 10^6 regions (no KP flag changed there)
    TOL = 1e-4
    store = small_study.store
    worst, compared = 0.0, 0
    for key in store.find(RegionEmbedding):
        emb = store.get(key, RegionEmbedding)
        mu = store.get(key.replace(layer=SAMPLE), SampleEmbedding).mu
        for slope in (1.0, 30.0, 1e4):
            kappa = kp.LinearKappa(kp.REGION_KAPPA_MAX, slope)
            p32, s32 = K.region_posterior(emb.h, mu, emb.mean_strength, kappa)
            p64, s64 = K.region_posterior(emb.h, mu, emb.mean_strength, kappa, dtype=np.float64)
            assert p32.dtype == p64.dtype == np.float32 and p32.shape == p64.shape
            np.testing.assert_allclose(s32, s64, rtol=1e-6)
            np.testing.assert_allclose(p32.sum(1), 1.0, atol=1e-5)
            worst = max(worst, float(np.abs(p32 - p64).max()))
            ref = K.knowledge_points_arrays(
                emb.h, mu, emb.mean_strength, np.zeros(len(emb.h), int), [0], kappa=kappa
            )
            peak, top2 = p64.max(1), np.sort(p64, 1)[:, -2:]
            clear = np.abs(peak - 0.4) > TOL
            untied = top2[:, 1] - top2[:, 0] > TOL
            np.testing.assert_array_equal(ref.is_kp[clear], (peak >= 0.4)[clear])
            np.testing.assert_array_equal(ref.predicted[untied], p64.argmax(1)[untied])
            compared += len(p64)
    print(f"float32 vs float64 posterior: largest difference {worst:.2e} over {compared} rows")
    assert compared > 0 and worst < TOL
