"""One rank of the capture-scaling benchmark, run under ``torchrun``:

    python -m torch.distributed.run --standalone --nproc_per_node=P -m benchmarks._capture_scaling OUT.json N ...

Every rank builds the same study (:func:`benchmarks.bench_capture.make_model_and_data`, the same
N images) and times ``study.capture()``: with P > 1 each rank captures its shard and rank 0 gathers
the records (``patternviz_widget.pipeline.distributed``); with P = 1 it is the plain single-process
capture. Barriers fence each timed capture, so a time is the slowest rank's plus the gather. Rank 0
writes the times to OUT.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time


def main(out: str, n_images: int, size: int, width: int, batch_size: int, repeats: int) -> None:
    import torch
    import torch.distributed as dist

    import patternviz_widget as pv

    from .bench_capture import make_model_and_data

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    model, images, labels, layers = make_model_and_data(n_images, size, width)
    t = time.perf_counter()
    study = pv.Study(model, (images, labels), layers=layers, batch_size=batch_size, device="cpu")
    setup_s = time.perf_counter() - t

    def fence() -> None:
        if world > 1:
            dist.barrier()

    study.capture(progress=False)  # warm-up
    times = []
    for _ in range(repeats):
        fence()
        t = time.perf_counter()
        study.capture(progress=False)
        fence()
        times.append(time.perf_counter() - t)
    if rank == 0:
        regions = {layer: int(study.region_plans[layer].size) for layer in layers}
        with open(out, "w") as fh:
            json.dump(
                {
                    "processes": world,
                    "torch_threads": torch.get_num_threads(),
                    "n_images": n_images,
                    "capture_s": [round(x, 4) for x in times],
                    "capture_median_s": round(statistics.median(times), 4),
                    "study_setup_s": round(setup_s, 3),
                    "regions_kept": regions,
                },
                fh,
            )
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], *(int(x) for x in a[1:6]))
