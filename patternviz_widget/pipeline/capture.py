"""Capture: sample features f and regional features f^(r) (paper Sec. 3) of a study's layers.

The batched loop is :func:`patternviz_widget.engine.capture.loop.run_batches`; this module checks
the request, stores the records and handles interruption and ``torchrun`` sharding. Batched forward passes under ``torch.inference_mode()`` on ``study.device``, in eval mode (the
previous mode is restored, hooks are always removed). Each batch's kept rows leave the device at
once as float32 (or float16 when ``study.storage_dtype == "float16"``) into arrays preallocated for
the study's region budget, so memory is bounded by the budget, not by the data set size, and
nothing accumulates on the GPU.

NaN or Inf anywhere in a captured layer's map, the head input or the logits raises CaptureError
naming the earliest such layer and the batch (checked by one float32 sum per map). float16 storage
keeps about 3 significant digits; a kept value beyond ±65504 (which float16 would store as ±inf)
raises CaptureError naming ``storage_dtype="float32"``.

Ctrl-C (KeyboardInterrupt) during a capture stores what was captured so far: the records then
cover only the first ``n`` probe images (RegionRecord rows of those images; SampleRecord rows
``0..n-1``), ``store.meta["partial"][str(key)] = n`` says so, a one-line message is printed to
stderr, and the KeyboardInterrupt is re-raised so that a training loop around it stops too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from patternviz_widget.engine.capture.hooks import (
    LayerRecorder,
    find_head,
    model_device,
    on_device,
    resolve,
)
from patternviz_widget.engine.capture.loop import CaptureBuffers, run_batches
from patternviz_widget.engine.capture.regions import RegionPlan
from patternviz_widget.errors import DistributedCaptureError, InputError
from patternviz_widget.pipeline import distributed as dist
from patternviz_widget.results.keys import SAMPLE, Key
from patternviz_widget.results.records import RegionRecord, SampleRecord
from patternviz_widget.results.store import ResultStore

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState


@dataclass
class CaptureSummary:
    """What one capture wrote: ``keys`` (the SampleRecord key first), regions kept per layer,
    images captured and wall-clock ``seconds``. (A capture cut short by Ctrl-C re-raises
    KeyboardInterrupt instead of returning; see the module docstring.)"""

    keys: list[Key]
    regions: dict[str, int] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0


def run_capture(
    state: StudyState,
    epoch: int = 0,
    condition: str = "clean",
    model: nn.Module | str | None = None,
    images: Any = None,
    progress: bool = True,
    model_name: str | None = None,
    layers: list[str] | None = None,
    process_group: Any = None,
) -> CaptureSummary:
    """Capture on this process, or sharded over a ``torch.distributed`` group when one is active.

    The entry point of :meth:`patternviz_widget.Study.capture`: ``process_group`` None uses the
    initialised default group (every rank must call it), False captures on this process alone.
    Other arguments as in :func:`capture`.
    """
    group = dist.resolve_group(process_group)
    if group is not None:
        return capture_distributed(
            state, group, epoch, condition, model, images, progress, model_name, layers
        )
    model, layers = dist.plain_args(state, model, layers)
    with dist.eager_compiled(
        model if model is not None and not isinstance(model, str) else state.model
    ):
        return capture(state, epoch, condition, model, images, progress, model_name, layers)


def capture(
    state: StudyState,
    epoch: int = 0,
    condition: str = "clean",
    model: nn.Module | str | None = None,
    images: Any = None,
    progress: bool = True,
    model_name: str | None = None,
    layers: list[str] | None = None,
) -> CaptureSummary:
    """Return a :class:`CaptureSummary` after capturing ``study``'s layers into ``study.store``.

    Writes a SampleRecord (f = the flattened input of the classifier head, and the logits) under
    ``Key(model_name, condition, epoch, SAMPLE)`` and one RegionRecord per layer, whose rows are
    the study's fixed region plan (the same (image, cell) rows in every capture).

    Args:
        epoch: the training epoch this capture stands for.
        condition: "clean", "adversarial", ...
        model: None for ``study.model``; another ``nn.Module`` with the same layer names (a
            checkpoint, a student) to capture instead; or a string, read as ``model_name``.
        images: None for the study's images; an N×C×H×W tensor/array of other images in the same
            order (e.g. adversarial ones); or a callable ``f(x, y) -> x'`` applied to every batch
            on the device with gradients enabled and hooks silent (e.g. an attack).
        progress: show a tqdm progress bar.
        model_name: the ``model`` field of the keys (default ``study.model_name``).
        layers: a subset of ``study.layers`` (default all of them).
    """
    t0 = time.perf_counter()
    if isinstance(model, str):
        model_name, model = model, None
    net = state.model if model is None else model
    if not isinstance(net, nn.Module):
        raise InputError(
            "This study has no model (it was loaded from a file). Pass model=<nn.Module> to capture."
            if net is None
            else f"model must be an nn.Module or a model name, got {type(net).__name__}."
        )
    name = model_name or state.model_name
    if not isinstance(name, str) or not name or "|" in name:
        raise InputError(f"model_name must be a non-empty string without '|', got {name!r}.")
    if not isinstance(condition, str) or not condition or "|" in condition:
        raise InputError(f"condition must be a non-empty string without '|', got {condition!r}.")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        raise InputError(f"epoch must be an integer, got {epoch!r}.")
    layers = list(state.layers if layers is None else layers)
    for layer in layers:
        if layer not in state.region_plans:
            raise InputError(
                f"Layer {layer!r} is not one of this study's layers {list(state.region_plans)}."
            )
    resolve(net, layers)
    head = state.sample_layer
    if net is not state.model and head not in dict(net.named_modules()):
        head = find_head(net, state.num_classes)
    n = state.data.n
    if images is not None and not callable(images):
        if not hasattr(images, "shape") or images.shape[0] != n:
            got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
            raise InputError(
                f"images must hold the study's {n} images in the same order; got {got}."
            )

    base = Key(name, condition, int(epoch), SAMPLE)
    plans = {layer: state.region_plans[layer] for layer in layers}
    buf = CaptureBuffers(plans, n, state.num_classes, state.storage_dtype)
    done = 0
    try:
        with on_device(net, state.device), LayerRecorder(net, layers, head) as rec:
            what = f"{base.model}|{base.condition}|epoch {base.epoch}"
            done = run_batches(
                net,
                rec,
                state.data,
                state.batch_size,
                state.num_classes,
                plans,
                buf,
                images,
                state.device,
                what,
                progress,
                bar_label=f"{base.model}|{base.condition}|{base.epoch}",
            )
    except KeyboardInterrupt:
        done = buf.done
        if done:
            _store(state, base, plans, buf, head, done)
        print(
            f"patternviz: capture of {base.model}|{base.condition}|epoch {base.epoch} interrupted after "
            f"{done} of {n} images; kept the records of those images.",
            file=sys.stderr,
        )
        raise
    keys = _store(state, base, plans, buf, head, done)
    return CaptureSummary(
        keys=keys,
        regions={layer: int(p.offsets[done]) for layer, p in plans.items()},
        images=done,
        seconds=time.perf_counter() - t0,
    )


def _store(
    state: StudyState,
    base: Key,
    plans: dict[str, RegionPlan],
    buf: CaptureBuffers,
    head: str,
    done: int,
) -> list[Key]:
    store = state.store
    keys = [base] + [base.replace(layer=layer) for layer in plans]
    partial = store.meta.setdefault("partial", {})
    for k in keys:
        if done < buf.n:
            partial[str(k)] = done
        else:
            partial.pop(str(k), None)
    if not partial:
        store.meta.pop("partial", None)
    feats = buf.sample if buf.sample is not None else np.empty((0, 0), np.float32)
    store.put(base, SampleRecord(features=feats[:done], logits=buf.logits[:done], source=head))
    for (layer, plan), key in zip(plans.items(), keys[1:]):
        m = int(plan.offsets[done])
        arr = buf.regions[layer]
        if arr is None:
            arr = np.empty(
                (0, plan.geometry.channels),
                np.float16 if buf.dtype == torch.float16 else np.float32,
            )
        store.put(
            key,
            RegionRecord(
                features=arr[:m],
                image=plan.image[:m],
                grid=plan.grid[:m],
                box=plan.box[:m],
                grid_shape=plan.geometry.grid,
                kind=plan.geometry.kind,
            ),
        )
    return keys


# ---- inside a torchrun job (see patternviz_widget.pipeline.distributed) ---------------------------


def _rank_device(state: StudyState, net: nn.Module) -> torch.device:
    """This rank's capture device: the study's, with the CUDA index of the rank's model (or of
    ``torch.cuda.current_device()``) when the study's says just "cuda"."""
    dev = state.device
    if dev.type == "cuda" and dev.index is None:
        md = model_device(net)
        if md is not None and md.type == "cuda":
            return md
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def _fingerprint(state: StudyState, net: nn.Module, layers: list[str]) -> dict[str, Any]:
    """What every rank must agree on: probe set, region plan, weights."""
    crc = zlib.crc32(np.ascontiguousarray(state.store.probe.labels).tobytes())
    crc = zlib.crc32(f"{state.data.n}|{state.seed}".encode(), crc)
    for layer in layers:
        p = state.region_plans[layer]
        crc = zlib.crc32(np.ascontiguousarray(p.cell).tobytes(), zlib.crc32(layer.encode(), crc))
    total = sq = 0.0
    with torch.no_grad():
        for p in net.parameters():
            d = p.detach().double()
            total += float(d.sum())
            sq += float((d * d).sum())
    return {"data": crc, "weights": (total, sq), "n": state.data.n}


def _check_fingerprints(prints: list[dict[str, Any]]) -> None:
    ref = prints[0]
    for r, fp in enumerate(prints[1:], start=1):
        if fp["data"] != ref["data"]:
            raise DistributedCaptureError(
                f"Rank {r} holds other probe data or another region plan than rank 0 ({fp['n']} vs "
                f"{ref['n']} images, or other labels, seed or layers). Build the Study on every rank "
                "with the same full probe set and seed (not a DistributedSampler shard): the capture "
                "shards the probe images across ranks itself."
            )
        a, b = np.array(fp["weights"]), np.array(ref["weights"])
        if not np.allclose(a, b, rtol=1e-6, atol=1e-9):
            raise DistributedCaptureError(
                f"Rank {r}'s model weights differ from rank 0's (sum {a[0]:.6g} vs {b[0]:.6g}): a "
                "distributed capture shows one model sharded over ranks. Wrap the model in "
                "DistributedDataParallel (it keeps the ranks in sync), or capture each rank's own "
                "model with process_group=False."
            )


@contextlib.contextmanager
def _rank0_buffers(net: nn.Module, group: Any) -> Iterator[None]:
    """Within the block the model's buffers are rank 0's (broadcast); each rank's own come back after."""
    import torch.distributed as tdist

    bufs = [b for b in net.buffers()]
    saved = [b.detach().clone() for b in bufs]
    try:
        with torch.no_grad():
            for b in bufs:
                dist.collective(
                    "broadcasting rank 0's buffers",
                    tdist.broadcast,
                    b,
                    src=dist.source_rank(group),
                    group=group,
                )
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(bufs, saved):
                b.copy_(s)


# ---- capture -------------------------------------------------------------------------------


def capture_distributed(
    state: StudyState,
    group: Any,
    epoch: int = 0,
    condition: str = "clean",
    model: nn.Module | str | None = None,
    images: Any = None,
    progress: bool = True,
    model_name: str | None = None,
    layers: list[str] | None = None,
) -> CaptureSummary:
    """Capture ``study`` sharded over the ranks of ``group``; rank 0's store gets the full records.

    Every rank of ``group`` must call this with the same arguments (it is a collective). Arguments
    as in :func:`patternviz_widget.pipeline.capture.capture`; ``images`` given as an array holds all
    N probe images on every rank (each rank uses its shard), a callable runs on each rank's shard.
    Returns the summary of the whole capture (the same on every rank). Raises
    :class:`DistributedCaptureError` on every rank when any rank fails.
    """
    import torch.distributed as tdist

    t0 = time.perf_counter()
    rank, world = dist.group_rank(group)
    if isinstance(model, str):
        model_name, model = model, None
    net = dist.unwrap_model(state.model if model is None else model)
    if not isinstance(net, nn.Module):
        raise InputError(
            "This study has no model (it was loaded from a file). Pass model=<nn.Module> to capture."
            if net is None
            else f"model must be an nn.Module or a model name, got {type(net).__name__}."
        )
    layers = [
        dist.strip_wrapper_prefix(x, net) for x in (state.layers if layers is None else layers)
    ]
    for layer in layers:
        if layer not in state.region_plans:
            raise InputError(
                f"Layer {layer!r} is not one of this study's layers {list(state.region_plans)}."
            )
    n = state.data.n
    if images is not None and not callable(images):
        if not hasattr(images, "shape") or images.shape[0] != n:
            got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
            raise InputError(
                f"images must hold the study's {n} images in the same order on every rank (each rank "
                f"captures its shard); got {got}."
            )
    start, end = dist.shard_range(n, rank, world)

    prints = [None] * world
    dist.collective(
        "comparing the ranks' studies",
        tdist.all_gather_object,
        prints,
        _fingerprint(state, net, layers),
        group=group,
        first=True,
    )
    _check_fingerprints(prints)  # type: ignore[arg-type]

    error: BaseException | None = None
    part: ResultStore | None = None
    keys: list[Any] = []
    with _rank0_buffers(net, group):
        try:
            if end > start:
                proxy = dataclasses.replace(
                    state,
                    store=ResultStore(),
                    model=dist.unwrap_model(state.model) if model is None else state.model,
                    device=_rank_device(state, net),
                    data=dist.shard_data(state.data, start, end),
                    region_plans={
                        x: dist.shard_plan(state.region_plans[x], start, end) for x in layers
                    },
                )
                shard_images = images if images is None or callable(images) else images[start:end]
                with dist.eager_compiled(net):
                    summary = capture(
                        proxy,
                        epoch,
                        condition,
                        None if model is None else net,
                        shard_images,
                        progress and rank == 0,
                        model_name,
                        layers,
                    )
                part, keys = proxy.store, summary.keys
        except (Exception, KeyboardInterrupt) as e:
            error = e
    status = [None] * world
    mine = None if error is None else f"{type(error).__name__}: {error}"
    dist.collective(
        "agreeing on the capture's outcome", tdist.all_gather_object, status, mine, group=group
    )
    failed = [(r, msg) for r, msg in enumerate(status) if msg is not None]
    if failed:
        if isinstance(error, KeyboardInterrupt):
            raise error
        r, msg = failed[0]
        raise DistributedCaptureError(
            f"The capture failed on rank {r} of {world}: {msg}. Every rank stops here: no rank stored "
            "this capture and the study file on disk keeps its last good state."
        ) from error

    name = model_name or state.model_name
    base = Key(name, condition, int(epoch), SAMPLE)
    all_keys = [base] + [base.replace(layer=x) for x in layers]
    dst = dist.source_rank(group)
    for key in all_keys:
        rec = (
            part.get(key, SampleRecord if key.layer == SAMPLE else RegionRecord)
            if part is not None and keys
            else None
        )
        if key.layer == SAMPLE:
            payload = None if rec is None else (rec.features, rec.logits, rec.source)
        else:
            payload = None if rec is None else rec.features
        parts = [None] * world if rank == 0 else None
        dist.collective(
            f"gathering {key} to rank 0", tdist.gather_object, payload, parts, dst=dst, group=group
        )
        if rank != 0:
            continue
        got = [p for p in parts if p is not None]  # type: ignore[union-attr]
        if key.layer == SAMPLE:
            record: Any = SampleRecord(
                features=np.concatenate([p[0] for p in got]),
                logits=np.concatenate([p[1] for p in got]),
                source=got[0][2],
            )
        else:
            plan = state.region_plans[key.layer]
            record = RegionRecord(
                features=np.concatenate(got),
                image=plan.image,
                grid=plan.grid,
                box=plan.box,
                grid_shape=plan.geometry.grid,
                kind=plan.geometry.kind,
            )
        state.store.put(key, record)
    if rank == 0:
        partial = state.store.meta.get("partial")
        if isinstance(partial, dict):
            for key in all_keys:
                partial.pop(str(key), None)
            if not partial:
                state.store.meta.pop("partial", None)
    state.distributed_rank = rank
    return CaptureSummary(
        keys=all_keys,
        regions={x: int(state.region_plans[x].size) for x in layers},
        images=n,
        seconds=time.perf_counter() - t0,
    )
