"""Section "region": the paper's regional-feature fit at the size of the paper's experiments (500 images × 196 regions × 512 channels) —
500 images × 196 regions (a 14×14 grid) × 512 channels — with the region-matching table r'
searched once (our default, ``rematch_every=0``; docs/method.md, where we differ) and searched at every importance
step (``rematch_every=1``, what the official code does), side by side in one run: each schedule in
a fresh process on the same synthetic features (:mod:`benchmarks.synthetic`), same device, same
seeds and otherwise the paper's hyper-parameters (20 importance steps, 100 partners, 20 Λ epochs).

Reported: seconds per stage (importance w, v; the final r' search; the Λ fit), the ratio, peak RSS,
and how far apart the two results are — the direction (cosine) and norm of every region's h, and
the regions' importance w — so the faster schedule is never a different picture unannounced.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._common import fmt_s, run_worker

SCHEDULES = {0: "r' searched once (default, ours)", 1: "r' searched every step (official code)"}


def fit_one(data_path: str, rematch_every: int, out_path: str, device: str | None = None,
            smoke: bool = False) -> dict[str, Any]:
    """Worker: fit one schedule on the saved features; save h and w to ``out_path``."""
    from .ours import fit_regions

    with np.load(data_path) as z:
        d = {k: z[k] for k in z.files}
    h, info = fit_regions(d, device=device, smoke=smoke, rematch_every=int(rematch_every), keep_w=True)
    np.savez(out_path, h=h, w=info.pop("w"))
    return info


def run(n_images: int = 500, grid: tuple[int, int] = (14, 14), dim: int = 512,
        schedules: tuple[int, ...] = (0, 1), device: str | None = None, smoke: bool = False,
        timeout_s: float = 3600.0, log=print) -> dict[str, Any]:
    """Run the section and return its JSON-able result."""
    from .synthetic import make_regional

    r = grid[0] * grid[1]
    data = make_regional(n_images * r, dim=dim, grid=grid, seed=0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pvbench_region_") as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, features=data.features, image=data.image, sample_features=data.sample_features,
                 logits=data.logits)
        outs = {}
        for sched in schedules:
            out = Path(tmp) / f"fit_{sched}.npz"
            res = run_worker("benchmarks.bench_region:fit_one",
                             {"data_path": str(path), "rematch_every": sched, "out_path": str(out),
                              "device": device, "smoke": smoke}, timeout_s)
            res.update(rematch_every=sched, schedule=SCHEDULES.get(sched, f"every {sched} steps"))
            rows.append(res)
            if res["status"] == "ok":
                with np.load(out) as z:
                    outs[sched] = (z["h"], z["w"])
                st = res["region_stages_s"]
                log(f"[region] {res['schedule']}: {fmt_s(res['region_fit_s'])} (importance "
                    f"{fmt_s(st.get('importance'))}, final search {fmt_s(st.get('match'))}, Λ fit "
                    f"{fmt_s(st.get('fit'))}), peak RSS {res.get('peak_rss_mb')} MiB")
            else:
                log(f"[region] {res['schedule']}: {res['status']} {res.get('error', '')[-300:]}")
    result: dict[str, Any] = {"n_images": int(data.sample_features.shape[0]), "regions_per_image": r,
                              "channels": dim, "grid": list(grid), "rows": rows}
    ok = {x["rematch_every"]: x for x in rows if x["status"] == "ok"}
    if 0 in ok and 1 in ok:
        result["every_step_over_once"] = round(ok[1]["region_fit_s"] / ok[0]["region_fit_s"], 2)
        (h0, w0), (h1, w1) = outs[0], outs[1]
        n0, n1 = np.linalg.norm(h0, axis=1), np.linalg.norm(h1, axis=1)
        cos = (h0 * h1).sum(1) / np.maximum(n0 * n1, 1e-12)
        result["agreement"] = {
            "h_cosine_median": round(float(np.median(cos)), 4),
            "h_cosine_p05": round(float(np.quantile(cos, 0.05)), 4),
            "h_norm_correlation": round(float(np.corrcoef(n0, n1)[0, 1]), 4),
            "w_equal_share": round(float(np.isclose(w0, w1, rtol=1e-3, atol=1e-7).mean()), 4),
            # (undefined when either w is constant, e.g. every image kept the uniform start)
            "w_correlation": (round(float(np.corrcoef(w0, w1)[0, 1]), 4)
                              if w0.std() > 0 and w1.std() > 0 else None),
        }
        log(f"[region] every step / once = {result['every_step_over_once']}x; agreement {result['agreement']}")
    return result
