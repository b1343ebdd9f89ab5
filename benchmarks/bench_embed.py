"""Section 2: embedding fit — ours vs scikit-learn PCA, scikit-learn t-SNE, openTSNE and UMAP.

For each size (number of regional features M) one synthetic capture is generated
(:mod:`benchmarks.synthetic`) and written to disk; every method then runs in its own fresh Python
process (:func:`benchmarks._common.run_worker`), which reports the fit's wall time and the process's
peak RSS. A method whose estimated time at the next size (extrapolated from the sizes it ran, see
:func:`estimate`) exceeds the limit is not run and is reported as "not run, est. X min"; a run that
hits the limit is killed and reported as "exceeded".

Class discrimination is scored the same way for every method: k-NN (k = 10) trained on the
regions of 80 % of the images and tested on the regions of the other 20 % (split by image, so a
region's neighbours in its own image cannot help), in the embedding and in the feature space. It is
scored on all regions and on object regions only (background regions carry no class by construction).
At most ``KNN_TRAIN`` / ``KNN_TEST`` points are used so that 10^6 stays cheap.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import fmt_s, rss_mb, run_worker

KNN_K = 10
KNN_TRAIN = 50_000
KNN_TEST = 5_000
#: time exponent b in t ~ n^b used when a method has run at one size only
DEFAULT_EXPONENT = {
    "ours": 1.0,
    "ours_fast": 1.0,
    "pca": 1.0,
    "tsne_sklearn": 1.15,
    "opentsne": 1.1,
    "umap": 1.2,
}
METHODS = ["ours", "ours_fast", "pca", "tsne_sklearn", "opentsne", "umap"]
LABELS = {
    "ours": "ours (paper embedding, 3-D)",
    "ours_fast": "ours, fast preset (3-D)",
    "pca": "scikit-learn PCA (3-D)",
    "tsne_sklearn": "scikit-learn t-SNE (2-D)",
    "opentsne": "openTSNE (2-D)",
    "umap": "UMAP (2-D)",
}


# ---------------------------------------------------------------------------------------------
# child side: one method, one size
# ---------------------------------------------------------------------------------------------
def fit_one(
    method: str,
    data_dir: str,
    n_jobs: int = 2,
    ours_kwargs: dict | None = None,
    smoke: bool = False,
) -> dict:
    """Fit ``method`` on the capture saved in ``data_dir``; return seconds, RSS and k-NN scores.

    ``smoke``: few iterations and no warm-up (checks the plumbing; figures meaningless)."""
    d = _load(data_dir)
    x = d["features"]
    rss0 = rss_mb()
    warm = 0.0
    t = time.perf_counter()
    if method in ("ours", "ours_fast"):
        from patternviz_widget.pipeline import embed as study_embed  # noqa: F401

        from . import ours  # noqa: F401  (imports outside the timed fit)
    elif not smoke:
        # imports, numba JIT and thread pools warm up on a tiny slice, so the timed fit measures
        # the algorithm; the warm-up is reported apart (UMAP's JIT costs ~10-20 s once per process)
        _fit_baseline(method, x[:300].copy(), n_jobs)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    if method in ("ours", "ours_fast"):
        from .ours import fit_regions

        emb, info = fit_regions(d, fast=method == "ours_fast", **(ours_kwargs or {}))
    else:
        emb, info = _fit_baseline(method, x, n_jobs, smoke), {}
    fit_s = time.perf_counter() - t
    emb = np.asarray(emb, dtype=np.float32)
    return {
        "method": method,
        "n": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "fit_s": round(fit_s, 3),
        "warmup_s": round(warm, 3),
        "rss_inputs_mb": round(rss0, 1),
        "finite": bool(np.isfinite(emb).all()),
        "emb_dim": int(emb.shape[1]),
        "knn": knn_scores(emb, d),
        "info": info,
    }


def _fit_baseline(method: str, x: np.ndarray, n_jobs: int, smoke: bool = False) -> np.ndarray:
    """Each baseline with its library's defaults (2-D for t-SNE/UMAP, 3-D for PCA)."""
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=3, random_state=0).fit_transform(x)
    if method == "tsne_sklearn":
        from sklearn.manifold import TSNE

        few = {"max_iter": 250, "perplexity": 5.0} if smoke else {}
        return TSNE(n_components=2, init="pca", random_state=0, n_jobs=n_jobs, **few).fit_transform(
            x
        )
    if method == "opentsne":
        from openTSNE import TSNE

        few = {"n_iter": 20, "early_exaggeration_iter": 10, "perplexity": 5} if smoke else {}
        return np.asarray(TSNE(n_components=2, n_jobs=n_jobs, random_state=0, **few).fit(x))
    if method == "umap":
        import warnings

        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # no random_state: umap-learn would then run single-threaded
            few = {"n_epochs": 10, "n_neighbors": 5} if smoke else {}
            return umap.UMAP(n_components=2, n_jobs=n_jobs, **few).fit_transform(x)
    raise ValueError(f"unknown method {method!r}; one of {METHODS}")


def _load(data_dir: str) -> dict[str, Any]:
    p = Path(data_dir)
    out: dict[str, Any] = {f.stem: np.load(f) for f in p.glob("*.npy")}
    rows, cols = (int(v) for v in (p / "grid_shape.txt").read_text().split())
    out["grid_shape"] = (rows, cols)
    return out


def split_indices(
    image: np.ndarray, labels: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (train, test) region indices: test = the regions of every 5th image of each class
    (so every class is on both sides), each side subsampled to KNN_TRAIN / KNN_TEST."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((np.arange(labels.size), labels))  # images grouped by class
    rank = np.empty(labels.size, dtype=np.int64)
    starts = np.searchsorted(labels[order], labels[order], side="left")
    rank[order] = np.arange(labels.size) - starts
    test_mask = (rank[image] % 5) == 0
    train = np.flatnonzero(~test_mask)
    test = np.flatnonzero(test_mask)
    if train.size > KNN_TRAIN:
        train = np.sort(rng.choice(train, KNN_TRAIN, replace=False))
    if test.size > KNN_TEST:
        test = np.sort(rng.choice(test, KNN_TEST, replace=False))
    return train, test


def knn_scores(x: np.ndarray, d: dict[str, Any]) -> dict[str, float]:
    """Return k-NN accuracy (k = 10) on all test regions and on object test regions."""
    from sklearn.neighbors import KNeighborsClassifier

    y = d["labels"][d["image"]]
    train, test = split_indices(d["image"], d["labels"])
    clf = KNeighborsClassifier(n_neighbors=KNN_K, n_jobs=1).fit(x[train], y[train])
    pred = clf.predict(x[test])
    obj = d["on_object"][test]
    return {
        "all": round(float((pred == y[test]).mean()), 4),
        "object": round(float((pred[obj] == y[test][obj]).mean()), 4)
        if obj.any()
        else float("nan"),
    }


def feature_space_knn(data_dir: str) -> dict:
    """k-NN accuracy in the original feature space (the ceiling the embeddings are compared to)."""
    d = _load(data_dir)
    t = time.perf_counter()
    return {"knn": knn_scores(d["features"], d), "fit_s": round(time.perf_counter() - t, 3)}


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------
def save_data(n: int, dim: int, path: Path, seed: int = 0) -> None:
    """Generate the synthetic capture of ``n`` regions x ``dim`` channels into ``path``."""
    from .synthetic import make_regional

    data = make_regional(n, dim=dim, seed=seed)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("features", "image", "grid", "labels", "logits", "sample_features", "on_object"):
        np.save(path / f"{name}.npy", getattr(data, name))
    (path / "grid_shape.txt").write_text(" ".join(map(str, data.grid_shape)))


def estimate(method: str, runs: list[dict], n: int) -> float | None:
    """Predict seconds at size ``n`` from this method's finished runs (t ~ n^b)."""
    done = [(r["n"], r["fit_s"]) for r in runs if r.get("status") == "ok"]
    if not done:
        return None
    b = DEFAULT_EXPONENT.get(method, 1.2)
    if len(done) >= 2:
        (n1, t1), (n2, t2) = done[-2], done[-1]
        if n2 > n1 and t1 > 0.5 and t2 > t1:
            b = min(2.0, max(1.0, math.log(t2 / t1) / math.log(n2 / n1)))
    n0, t0 = done[-1]
    return t0 * (n / n0) ** b


def run(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000),
    dim: int = 128,
    methods: tuple[str, ...] = tuple(METHODS),
    limit_s: float = 600.0,
    n_jobs: int = 2,
    seed: int = 0,
    ours_kwargs: dict | None = None,
    smoke: bool = False,
    real_sizes: tuple[int, ...] = (),
    real_kwargs: dict | None = None,
    real_methods: tuple[str, ...] | None = None,
    on_partial=None,
    log=print,
) -> dict:
    """Run the embedding section and return its JSON-able result (also printed as lines).

    ``sizes``: synthetic sweep (:mod:`benchmarks.synthetic`, ``dim`` channels). ``real_sizes``:
    the same comparison on real features (:mod:`benchmarks.real`), after the sweep."""
    rows: list[dict] = []
    real_info: dict = {}

    def result() -> dict:
        _add_ratios(rows)
        return {
            "sizes": list(sizes),
            "real_sizes": list(real_sizes),
            "real": real_info,
            "dim": dim,
            "limit_s": limit_s,
            "n_jobs": n_jobs,
            "rows": rows,
        }

    with tempfile.TemporaryDirectory(prefix="pvbench_embed_") as tmp:
        for data_kind, sweep in (("synthetic", sizes), ("real", real_sizes)):
            kind_methods = (
                methods if data_kind == "synthetic" or real_methods is None else real_methods
            )
            per_method: dict[str, list[dict]] = {m: [] for m in kind_methods}
            stopped: dict[str, str] = {}
            for n in sweep:
                data_dir = Path(tmp) / f"{data_kind}{n}"
                t = time.perf_counter()
                if data_kind == "synthetic":
                    save_data(n, dim, data_dir, seed)
                    d_dim = dim
                else:
                    from .real import save_real_data

                    real_info = save_real_data(n, data_dir, seed=seed, **(real_kwargs or {}))
                    d_dim = real_info["dim"]
                log(
                    f"[embed] {data_kind} n={n:,} dim={d_dim}: data in {fmt_s(time.perf_counter() - t)}"
                )
                base = {"data": data_kind, "n": n, "dim": d_dim}
                ref = run_worker(
                    "benchmarks.bench_embed:feature_space_knn", {"data_dir": str(data_dir)}, limit_s
                )
                rows.append({**ref, **base, "method": "feature space"})
                for m in kind_methods:
                    if m in stopped:
                        rows.append(
                            {**base, "method": m, "status": "not run", "reason": stopped[m]}
                        )
                        continue
                    est = estimate(m, per_method[m], n)
                    if est is not None and est > limit_s:
                        reason = f"not run, est. {est / 60:.1f} min > limit {limit_s / 60:.0f} min"
                        rows.append(
                            {
                                **base,
                                "method": m,
                                "status": "not run",
                                "est_s": round(est, 1),
                                "reason": reason,
                            }
                        )
                        log(f"[embed]   {m:13s} {reason}")
                        continue
                    res = run_worker(
                        "benchmarks.bench_embed:fit_one",
                        {
                            "method": m,
                            "data_dir": str(data_dir),
                            "n_jobs": n_jobs,
                            "ours_kwargs": ours_kwargs,
                            "smoke": smoke,
                        },
                        limit_s + 120,  # + loading/warm-up/k-NN; the fit itself is checked below
                    )
                    res.update({**base, "method": m})
                    if res.get("status") == "ok" and res["fit_s"] > limit_s:
                        res["status"] = "exceeded"
                    if res.get("status") in ("timeout", "exceeded"):
                        stopped[m] = f"stopped: exceeded {limit_s / 60:.0f} min at n={n:,}"
                    per_method[m].append(res)
                    rows.append(res)
                    log(f"[embed]   {m:13s} " + _line(res))
                    if on_partial is not None:  # keep what was measured if the run is cut short
                        on_partial(result())
    return result()


def _line(r: dict) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status')}: {r.get('reason') or r.get('error', '')[-300:]}"
    return (
        f"fit {fmt_s(r['fit_s'])}  peak RSS {r['peak_rss_mb']:.0f} MiB  "
        f"kNN all {r['knn']['all']:.3f} object {r['knn']['object']:.3f}"
    )


def _add_ratios(rows: list[dict]) -> None:
    """Add ``ours_time_ratio`` (our fit seconds / this method's, same data and n) to finished rows."""
    ours = {
        (r["data"], r["n"]): r["fit_s"]
        for r in rows
        if r["method"] == "ours" and r.get("status") == "ok"
    }
    for r in rows:
        k = (r["data"], r["n"])
        if r.get("status") == "ok" and r["method"] != "feature space" and k in ours:
            r["ours_time_ratio"] = round(ours[k] / r["fit_s"], 3) if r["fit_s"] > 0 else None
