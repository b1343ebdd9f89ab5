"""The batched capture loop: forward passes with hooks, the kept region rows copied to CPU arrays.

Batches run under ``torch.inference_mode()``; each batch's kept rows (the layer's region plan,
paper Sec. 3.3's regional features f^(r)) leave the device at once as float32 or float16 into
arrays preallocated for the plan, so memory is bounded by the region budget, not by the data set.
NaN or Inf in a layer's map, the head input or the logits is found by one float32 sum per map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from patternviz_widget.engine.capture.data import ProbeData, to_image_tensor
from patternviz_widget.engine.capture.hooks import LayerRecorder
from patternviz_widget.engine.capture.regions import RegionPlan, check_shape, gather_rows
from patternviz_widget.errors import CaptureError, InputError


class CaptureBuffers:
    """CPU arrays sized by the region budget, filled batch by batch."""

    def __init__(self, plans: dict[str, RegionPlan], n: int, k: int, dtype: str) -> None:
        self.plans = plans
        self.dtype = torch.float16 if dtype == "float16" else torch.float32
        self.regions: dict[str, np.ndarray | None] = {layer: None for layer in plans}
        self.sample: np.ndarray | None = None
        self.logits = np.empty((n, k), np.float32)
        self.n = n
        self.done = 0

    def put_regions(self, layer: str, r0: int, rows: torch.Tensor) -> None:
        arr = rows.to(self.dtype).cpu().numpy()
        if self.regions[layer] is None:
            self.regions[layer] = np.empty((self.plans[layer].size, arr.shape[1]), arr.dtype)
        self.regions[layer][r0 : r0 + arr.shape[0]] = arr  # type: ignore[index]

    def put_sample(self, s: int, f: torch.Tensor, logits: torch.Tensor) -> None:
        f_np = f.float().cpu().numpy()
        if self.sample is None:
            self.sample = np.empty((self.n, f_np.shape[1]), np.float32)
        self.sample[s : s + f_np.shape[0]] = f_np
        self.logits[s : s + f_np.shape[0]] = logits.float().cpu().numpy()


def run_batches(
    net: nn.Module,
    rec: LayerRecorder,
    data: ProbeData,
    batch_size: int,
    num_classes: int,
    plans: dict[str, RegionPlan],
    buf: CaptureBuffers,
    images: Any,
    device: torch.device,
    what: str,
    progress: bool,
    bar_label: str = "",
) -> int:
    """Run ``net`` over ``data`` in batches and fill ``buf``; return the number of images done.

    Args:
        net: the model, already on ``device``; rec: its LayerRecorder (layers of ``plans`` + head).
        data: the probe set; batch_size: images per forward pass; num_classes: K of the logits.
        plans: each layer's fixed region plan (which (image, cell) rows to keep).
        buf: the CPU arrays to fill (``buf.done`` is kept current, so a caller that catches
            KeyboardInterrupt knows how far it got).
        images: None (the probe images), an N×C×H×W array of other images in the same order, or
            a callable ``f(x, y) -> x'`` applied per batch with gradients on and hooks silent.
        device: where the forward passes run.
        what: the key being captured, "model|condition|epoch", for messages and the progress bar.
        progress: show a tqdm bar, labelled "capture <bar_label>" (default: ``what``).

    Raises:
        CaptureError: a wrong output shape, a layer that did not run, a NaN/Inf (naming the earliest
            layer and the batch), or a value beyond float16's range when ``buf`` stores float16.
    """
    from tqdm.auto import tqdm

    n = data.n
    bar = tqdm(total=n, disable=not progress, unit="img", desc=f"capture {bar_label or what}")
    idx = {
        layer: (torch.from_numpy(p.image.astype(np.int64)), torch.from_numpy(p.cell))
        for layer, p in plans.items()
    }
    span = [0, 0, 0]  # start, end, batch number of the batch being captured

    def keep_rows(layer: str, t: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
        """Inside the hook: check the map, return (first row, kept rows, all-finite flag)."""
        s, e, bi = span
        plan = plans[layer]
        why = check_shape(layer, t, plan.geometry)
        if why:
            raise CaptureError(
                f"In batch {bi}, {why}. Capture models whose layers have the study's shapes."
            )
        r0, r1 = int(plan.offsets[s]), int(plan.offsets[e])
        b_idx, c_idx = idx[layer]
        rows = gather_rows(
            t, plan.geometry, (b_idx[r0:r1] - s).to(t.device), c_idx[r0:r1].to(t.device)
        )
        # a NaN or Inf anywhere makes the sum non-finite; one reduction, no full-size bool map
        return r0, rows.to(buf.dtype), torch.isfinite(t.sum(dtype=torch.float32))

    rec.on_output = keep_rows
    try:
        for bi, batch in enumerate(data.batches(batch_size)):
            s, e = batch.start, batch.start + batch.images.shape[0]
            span[:] = [s, e, bi]
            x = batch_inputs(batch, images, rec, device)
            with torch.inference_mode():
                rec.clear()
                out = net(x)
                logits = out if isinstance(out, torch.Tensor) else None
                if logits is None or logits.shape != (e - s, num_classes):
                    got = tuple(logits.shape) if logits is not None else type(out).__name__
                    raise CaptureError(
                        f"The model returned {got} for batch {bi}; expected ({e - s}, {num_classes})."
                    )
                if rec.sample is None:
                    raise CaptureError(
                        f"Sample layer {rec.sample_layer!r} was not called in batch {bi}."
                    )
                missing = [layer for layer in plans if layer not in rec.outputs]
                if missing:
                    raise CaptureError(f"Layer {missing[0]!r} was not called in batch {bi}.")
                # report the earliest culprit: layers in the order they ran, then head input, output
                fired = [layer for layer in rec.outputs if layer in plans]
                names = [f"layer {layer!r}" for layer in fired]
                names += [
                    f"the input of sample layer {rec.sample_layer!r}",
                    "the model output (logits)",
                ]
                flags = [rec.outputs[layer][2] for layer in fired]
                flags += [
                    torch.isfinite(rec.sample.sum(dtype=torch.float32)),
                    torch.isfinite(logits.sum(dtype=torch.float32)),
                ]
                finite = torch.stack(flags).cpu()
                if not bool(finite.all()):
                    what = names[int((~finite).nonzero()[0, 0])]
                    raise CaptureError(
                        f"{what[0].upper() + what[1:]} produced NaN or Inf in batch {bi} (images {s}..{e - 1}) "
                        "(or values so large that their sum overflows float32) "
                        f"of {what}. Check the model's weights "
                        "(a diverged training step?) and the input normalisation."
                    )
                if buf.dtype == torch.float16:  # finite in float32, but beyond float16's range?
                    fits = torch.stack(
                        [
                            torch.isfinite(rec.outputs[layer][1].sum(dtype=torch.float32))
                            for layer in plans
                        ]
                    )
                    if not bool(fits.cpu().all()):
                        layer = list(plans)[int((~fits.cpu()).nonzero()[0, 0])]
                        raise CaptureError(
                            f"Layer {layer!r} has values beyond float16's range (|x| > 65504) in batch {bi} "
                            f"(images {s}..{e - 1}) of {what}; "
                            "stored as float16 they would become ±inf. Make the study with "
                            "storage_dtype='float32'."
                        )
                for layer in plans:
                    r0, rows, _ = rec.outputs[layer]
                    buf.put_regions(layer, r0, rows)
                buf.put_sample(s, rec.sample, logits)
            buf.done = e
            bar.update(e - s)
    finally:
        bar.close()
    return buf.done


def batch_inputs(batch: Any, images: Any, rec: LayerRecorder, device: torch.device) -> torch.Tensor:
    s, e = batch.start, batch.start + batch.images.shape[0]
    if images is None:
        return batch.images.to(device, non_blocking=True)
    if callable(images):
        fn: Callable[..., Any] = images
        rec.active = False
        try:
            with torch.enable_grad():
                x = fn(batch.images.to(device), batch.labels.to(device))
        finally:
            rec.active = True
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != tuple(batch.images.shape):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(
                f"images(x, y) must return a tensor shaped like x {tuple(batch.images.shape)}; got {got}."
            )
        return x.detach().to(device)
    return to_image_tensor(images[s:e], batched=True).to(device, non_blocking=True)
