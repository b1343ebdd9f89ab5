"""One command for every benchmark: ``python -m benchmarks.run`` (``scripts/bench`` sets up first).

Sections (``--sections``, comma-separated; default all):

* ``capture``  — capture of 4 layers vs a plain forward pass (ratio; target <= 1.10), and the same
  capture in 1 vs 2 processes under torchrun (seconds, speed-up; not in --smoke)
* ``embed``    — ours vs scikit-learn PCA / t-SNE, openTSNE, UMAP on 10^4..10^6 regional
  features: seconds, peak RSS, k-NN accuracy in the embedding vs in feature space
* ``region``   — the paper's region fit, 500 images x 196 regions x 512 channels: r' searched once
  (default) vs at every step (official code), seconds per stage, ratio and agreement
* ``display``  — JupyterLab + headless Chromium: display() -> first frame and drag frame time,
  10^5 and 10^6 points, ours vs jupyter-scatter
* ``scrub``    — epoch change -> new frame, with and without prefetch
* ``quickstart`` — the quickstart's first cell (train, capture, embed at the paper preset), ours vs
  the previous implementation kept as a reference path, with how far apart the two results are
* ``contention`` — the same embed quiet vs beside a second process training a conv net on the same
  cores, loaded / quiet per variant
* ``memory``   — peak RSS of capture + embedding for 10,000 images x 4 layers, default budget
* ``training`` — every bundled recipe (``pv.models.recipe``) trained as shipped: test accuracy,
  seconds (wall and CPU), torch threads, and each recipe model's step time at 1 vs 2 threads

``--smoke`` runs every section at tiny sizes (the test suite does this) and writes to a temporary
folder unless ``--out`` is given. The device is chosen automatically (CUDA when present);
``--device cpu`` forces one. Results: ``benchmarks/results/<section>.json`` and ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import report
from ._common import RESULTS_DIR, machine_info, now, write_json

SECTIONS = (
    "capture",
    "embed",
    "region",
    "display",
    "scrub",
    "memory",
    "quickstart",
    "contention",
    "training",
)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(float(s)) for s in text.split(",") if s)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes (seconds); results go to a temp dir unless --out",
    )
    p.add_argument("--out", type=Path, default=None, help=f"results folder (default {RESULTS_DIR})")
    p.add_argument(
        "--device", default=None, help="cpu / cuda (default: CUDA when present, else CPU)"
    )
    p.add_argument("--embed-sizes", type=_sizes, default=None, help="e.g. 1e4,1e5,1e6")
    p.add_argument(
        "--embed-real-sizes",
        type=_sizes,
        default=None,
        help="sizes of the real-feature cross-check (trained SmallVGG on shapes); default 1e4; '' = none",
    )
    p.add_argument(
        "--embed-dim", type=int, default=128, help="channels of the regional features (64..512)"
    )
    p.add_argument("--embed-methods", default="ours,ours_fast,pca,tsne_sklearn,opentsne,umap")
    p.add_argument(
        "--limit-min",
        type=float,
        default=10.0,
        help="per-method time limit for the embedding section",
    )
    p.add_argument(
        "--region-images",
        type=int,
        default=500,
        help="images of the region section (x 196 regions x 512 channels)",
    )
    p.add_argument(
        "--region-schedules",
        default="0,1",
        help="rematch_every values to time: 0 = r' searched once (default), 1 = every step (official)",
    )
    p.add_argument(
        "--region-timeout-min",
        type=float,
        default=30.0,
        help="time limit per schedule of the region section",
    )
    p.add_argument("--display-sizes", type=_sizes, default=None, help="e.g. 1e5,1e6")
    p.add_argument(
        "--display-dprs", default="1,2", help="device pixel ratios of the display section"
    )
    p.add_argument(
        "--display-repeats", type=int, default=3, help="alternating repeats (medians reported)"
    )
    p.add_argument(
        "--display-widgets",
        default="ours,jscatter,floor",
        help="display section widgets: ours, ours-gpu (points forced onto the GPU), jscatter, "
        "floor (a trivial anywidget), old",
    )
    p.add_argument(
        "--old-bundle",
        default=None,
        help="a previous build of widget.js: display and scrub also time our widget drawn by it",
    )
    p.add_argument("--capture-images", type=int, default=None)
    p.add_argument("--memory-images", type=int, default=None)
    p.add_argument(
        "--memory-embed",
        choices=("paper", "fast"),
        default="paper",
        help="embedding preset of the memory section (default: the paper's settings)",
    )
    p.add_argument(
        "--memory-timeout-min", type=float, default=40.0, help="time limit of the memory section"
    )
    p.add_argument(
        "--quickstart-repeats",
        type=int,
        default=2,
        help="alternating repeats of the quickstart / contention embeds (medians)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        print(f"unknown section(s) {bad}; choose from {SECTIONS}", file=sys.stderr)
        return 2
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="pvbench_smoke_")) if args.smoke else RESULTS_DIR
    )
    smoke = args.smoke
    command = "python -m benchmarks.run " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    print(f"[bench] {command.strip()}  ->  {out}")
    failed = []
    for section in sections:
        machine = machine_info()
        t0 = time.perf_counter()
        started = now()

        def partial(
            result: dict,
            section: str = section,
            machine: dict = machine,
            started: str = started,
            t0: float = t0,
        ) -> None:
            doc = {
                "section": section,
                "status": "partial",
                "smoke": smoke,
                "command": command.strip(),
                "started": started,
                "seconds": round(time.perf_counter() - t0, 1),
                "machine": machine,
                "load_avg_after": machine_info()["load_avg_1_5_15"],
                "result": result,
            }
            write_json(section, doc, out)
            report.write(out)

        try:
            result = _run_section(section, args, smoke, partial)
            status = "ok"
        except Exception:  # noqa: BLE001  (one broken section must not lose the others)
            traceback.print_exc()
            result, status = {"error": traceback.format_exc()[-3000:]}, "error"
            failed.append(section)
        doc = {
            "section": section,
            "status": status,
            "smoke": smoke,
            "command": command.strip(),
            "started": started,
            "seconds": round(time.perf_counter() - t0, 1),
            "machine": machine,
            "load_avg_after": machine_info()["load_avg_1_5_15"],
            "result": result,
        }
        path = write_json(section, doc, out)
        report.write(out)  # after every section, so an interrupted run keeps what it measured
        print(f"[bench] {section}: {status} in {doc['seconds']} s -> {path}")
    md = report.write(out)
    print(f"[bench] table -> {md}")
    return 1 if failed else 0


def _run_section(section: str, a: argparse.Namespace, smoke: bool, partial=None) -> dict:
    if section == "capture":
        from . import bench_capture

        n = a.capture_images or (64 if smoke else 2048)
        return bench_capture.run(
            n_images=n,
            repeats=1 if smoke else 5,
            device=a.device,
            width=8 if smoke else 32,
            profile=not smoke,
            size=32 if smoke else 64,
            batch_size=32 if smoke else 64,
            **({"scaling_configs": None} if smoke else {}),
        )
    if section == "embed":
        from . import bench_embed

        sizes = a.embed_sizes or ((1_280,) if smoke else (10_000, 100_000, 1_000_000))
        methods = tuple(m.strip() for m in a.embed_methods.split(",") if m.strip())
        ours_kwargs = {"device": a.device, **({"smoke": True} if smoke else {})}
        real = (
            a.embed_real_sizes
            if a.embed_real_sizes is not None
            else ((640,) if smoke else (10_000,))
        )
        return bench_embed.run(
            sizes=sizes,
            dim=16 if smoke else a.embed_dim,
            methods=methods,
            limit_s=(60.0 if smoke else 60.0 * a.limit_min),
            ours_kwargs=ours_kwargs,
            smoke=smoke,
            real_sizes=real,
            real_kwargs={"train_images": 60, "epochs": 1} if smoke else None,
            real_methods=("ours", "pca") if smoke else None,
            on_partial=partial,
        )
    if section == "region":
        from . import bench_region

        if smoke:
            return bench_region.run(
                n_images=24, grid=(4, 4), dim=16, device=a.device, smoke=True, timeout_s=300
            )
        schedules = tuple(int(s) for s in a.region_schedules.split(",") if s.strip())
        return bench_region.run(
            n_images=a.region_images,
            device=a.device,
            schedules=schedules,
            timeout_s=60.0 * a.region_timeout_min,
        )
    if section == "display":
        from . import bench_display

        sizes = a.display_sizes or (
            (2_000, 3_000) if smoke else (100_000, 1_000_000)
        )  # two: the 2nd size's path is tested
        old = str(Path(a.old_bundle).resolve()) if a.old_bundle else None
        return bench_display.display(
            sizes=sizes,
            timeout_s=120 if smoke else 600,
            drag_steps=8 if smoke else 40,
            widgets=tuple(w.strip() for w in a.display_widgets.split(",") if w.strip()),
            dprs=(1,)
            if smoke
            else tuple(float(d) if "." in d else int(d) for d in a.display_dprs.split(",")),
            repeats=1 if smoke else a.display_repeats,
            old_bundle=old,
        )
    if section == "scrub":
        from . import bench_display

        old = str(Path(a.old_bundle).resolve()) if a.old_bundle else None
        return bench_display.scrub(
            n=2_000 if smoke else 100_000,
            epochs=3 if smoke else 9,
            settle_s=0.5 if smoke else 2.0,
            timeout_s=120 if smoke else 300,
            old_bundle=old,
        )
    if section == "memory":
        from . import bench_memory

        n = a.memory_images or (64 if smoke else 10_000)
        return bench_memory.run(
            n_images=n,
            smoke=smoke,
            device=a.device,
            preset=a.memory_embed,
            timeout_s=60.0 * a.memory_timeout_min,
        )
    if section in ("quickstart", "contention"):
        from . import bench_quickstart

        return bench_quickstart.run(
            contention=section == "contention",
            smoke=smoke,
            repeats=1 if smoke else a.quickstart_repeats,
            timeout_s=300 if smoke else 3600,
        )
    if section == "training":
        from . import bench_training

        return bench_training.run(smoke=smoke, device=a.device)
    raise AssertionError(section)


if __name__ == "__main__":
    sys.exit(main())
