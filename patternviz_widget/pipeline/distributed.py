"""Process groups, shards and collectives for capture and tracking inside ``torchrun`` /
``DistributedDataParallel`` jobs (docs: the "Distributed (torchrun)" guide,
``docs/guides/distributed.md``). The sharded capture itself is
:func:`patternviz_widget.pipeline.capture.capture_distributed`; a tracker's snapshot is shared by
:func:`patternviz_widget.pipeline.tracking.share_snapshot`.

Every rank builds the same :class:`~patternviz_widget.Study` (same model architecture, the same
full probe data, the same seed), so every rank holds the same region plan: the kept cells of image
i (of the regional features of Li, Wang, Zhang, NeurIPS 2021, Sec. 3.3; which cells a study keeps
is this project's region budget, :func:`~patternviz_widget.engine.capture.regions.plan_regions`) are drawn
by ``numpy.random.default_rng([seed, crc32(layer), i])``, which does not depend on how the images
are split across processes. A distributed capture then:

1. checks, in one ``all_gather_object``, that every rank has the same probe set, region plan and
   weights (a rank fed its own ``DistributedSampler`` shard, or a model that is not synchronised,
   raises on every rank with the fix);
2. broadcasts the model's buffers (BatchNorm running statistics) from rank 0 for the capture and
   restores each rank's own afterwards, so the study shows rank 0's model, the one whose
   ``state_dict`` a training script saves;
3. captures on each rank only its contiguous shard ``[n·r/W, n·(r+1)/W)`` of the probe images, on
   that rank's device (no rank holds the whole probe set's activations);
4. agrees on success in one ``all_gather_object`` of each rank's status: if any rank raised, every
   rank raises :class:`DistributedCaptureError` naming the rank and its error, nothing is stored
   and no file is written (the study file on disk stays the last good one);
5. gathers the shards to rank 0 (``gather_object``, one record at a time), which stores the full
   records exactly as a single-process capture would. Only rank 0 embeds and writes study files;
   ``Study.save`` on another rank returns the path without writing.

A rank that dies (killed, out of memory) makes the collectives of the others fail as soon as the
backend notices (gloo: the connection closes; NCCL: the watchdog), at the latest after the process
group's ``timeout`` (``torch.distributed.init_process_group(timeout=...)``); that failure is raised
as :class:`DistributedCaptureError` too, and ``torchrun`` stops the remaining workers.

Models wrapped in ``DistributedDataParallel`` / ``DataParallel`` or compiled with
``torch.compile`` are unwrapped (:func:`unwrap_model`): hooks go on the plain module, which shares
the trained parameters, and layer names may be given with or without the ``module.`` /
``_orig_mod.`` prefixes. Submodules compiled on their own run eagerly during a capture
(``torch.compiler.set_stance("force_eager")``) so that their hooks fire. TorchScript models run no
Python hooks at all and are refused with the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import Subset

from patternviz_widget.engine.capture.data import Batch, ProbeData
from patternviz_widget.engine.capture.regions import RegionPlan
from patternviz_widget.errors import DistributedCaptureError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState

__all__ = [
    "DistributedCaptureError",
    "collective",
    "eager_compiled",
    "plain_args",
    "resolve_group",
    "shard_data",
    "shard_plan",
    "shard_range",
    "source_rank",
    "strip_wrapper_prefix",
    "unwrap_model",
    "writes_files",
]

#: Name prefixes that wrappers add to ``named_modules()``: DDP / DataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


# ---- models --------------------------------------------------------------------------------


def unwrap_model(model: Any) -> Any:
    """Return the plain module inside DDP / DataParallel / ``torch.compile`` wrappers (any nesting).

    The plain module shares its parameters and buffers with the wrapper, so training through the
    wrapper changes what a capture of the plain module sees. Anything that is not an ``nn.Module``
    is returned as is. Raises InputError for a TorchScript model (it runs no Python hooks).
    """
    seen = 0
    while isinstance(model, nn.Module) and seen < 16:
        seen += 1
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(
            getattr(model, "_orig_mod", None), nn.Module
        ):
            model = model._orig_mod
        else:
            break
    if isinstance(model, torch.jit.ScriptModule):
        raise InputError(
            "This model is a TorchScript module (torch.jit.script / torch.jit.trace): it runs no "
            "Python hooks, so its layers cannot be captured. Pass the original nn.Module instead "
            "(load the same state_dict into it); torch.compile'd models work as they are."
        )
    return model


def strip_wrapper_prefix(name: Any, model: nn.Module) -> Any:
    """Return the layer ``name`` as the unwrapped ``model`` names it: leading ``module.`` /
    ``_orig_mod.`` prefixes (from DDP, DataParallel, torch.compile) are removed when the name is
    not a module of ``model`` as given. Non-strings are returned unchanged (validation reports them)."""
    if not isinstance(name, str):
        return name
    modules = dict(model.named_modules())
    out = name
    while out not in modules and out.startswith(WRAPPER_PREFIXES):
        out = out.split(".", 1)[1]
    return out if out in modules else name


def eager_compiled(model: Any = None) -> contextlib.AbstractContextManager:
    """A context in which ``torch.compile``'d submodules of ``model`` run eagerly, so forward hooks
    inside them fire (``torch.compiler.set_stance("force_eager")``). A no-op when ``model`` holds
    no compiled submodule (importing the compiler costs about a second)."""
    compiled = isinstance(model, nn.Module) and any(
        type(m).__name__ == "OptimizedModule" for m in model.modules()
    )
    stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
    if not compiled or stance is None:
        return contextlib.nullcontext()
    return stance("force_eager")


def plain_args(state: Any, model: Any, layers: Any) -> tuple[Any, Any]:
    """Return ``(model, layers)`` of a capture call with wrappers removed: the model unwrapped
    (:func:`unwrap_model`), layer names without ``module.`` / ``_orig_mod.`` prefixes."""
    model = unwrap_model(model) if isinstance(model, nn.Module) else model
    net = model if isinstance(model, nn.Module) else getattr(state, "model", None)
    if isinstance(layers, (list, tuple)) and isinstance(net, nn.Module):
        layers = [strip_wrapper_prefix(x, net) for x in layers]
    return model, layers


# ---- process groups -------------------------------------------------------------------------


def resolve_group(process_group: Any = None) -> Any:
    """Return the process group a capture should shard over, or None for a single-process capture.

    ``None`` detects an initialised default group (``torchrun`` + ``init_process_group``);
    ``False`` forces a single-process capture even inside a job (each rank on its own); a
    ``ProcessGroup`` is used as given. A group of one process is a single-process capture.
    """
    if process_group is False:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        if process_group is not None:
            raise InputError(
                "process_group= was given but this torch build has no torch.distributed."
            )
        return None
    if not dist.is_initialized():
        if process_group is not None:
            raise InputError(
                "process_group= was given but torch.distributed is not initialised. Call "
                "torch.distributed.init_process_group(...) first (torchrun sets the environment), "
                "or leave process_group=None for a single-process capture."
            )
        return None
    group = dist.group.WORLD if process_group is None else process_group
    if dist.get_rank(group) < 0:
        raise InputError(
            "This process is not a member of the given process_group; call capture with a group "
            "this rank belongs to (or process_group=False on ranks outside it)."
        )
    if dist.get_world_size(group) == 1:
        return None
    return group


def group_rank(group: Any) -> tuple[int, int]:
    """Return ``(rank, world_size)`` of this process in ``group``."""
    import torch.distributed as dist

    return dist.get_rank(group), dist.get_world_size(group)


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Return the probe images ``[start, end)`` that ``rank`` of ``world`` captures: contiguous,
    in rank order, sizes differing by at most one."""
    return n * rank // world, n * (rank + 1) // world


def writes_files(state: StudyState) -> bool:
    """False on the ranks other than 0 of the study's last distributed capture (they hold only
    their shard's results; rank 0 writes the study file); True everywhere else."""
    return state.distributed_rank == 0


def collective(what: str, fn: Any, *args: Any, first: bool = False, **kwargs: Any) -> Any:
    """Run one collective; turn a backend failure (a dead peer, a timeout) into our error."""
    try:
        return fn(*args, **kwargs)
    except DistributedCaptureError:
        raise
    except Exception as e:  # gloo raises RuntimeError, NCCL DistBackendError, both time out
        hint = (
            " Every rank of the group must call the capture (or snapshot): a capture run on rank 0 "
            "alone (under `if rank == 0:`) meets the other ranks' own collectives and hangs until "
            "the timeout or fails; pass process_group=False there."
            if first
            else ""
        )
        raise DistributedCaptureError(
            f"The distributed capture stopped while {what}: {type(e).__name__}: {e}. Another rank "
            "probably died or hung (its own log says why); no rank stored this capture and the study "
            "file on disk was not rewritten. Raise the process group's timeout "
            f"(init_process_group(timeout=...)) if a rank is merely slow.{hint}"
        ) from e


def source_rank(group: Any) -> int:
    """The global rank of ``group``'s rank 0 (the destination of gathers, the broadcast source)."""
    import torch.distributed as dist

    return dist.get_global_rank(group, 0) if group is not dist.group.WORLD else 0


# ---- sharding ------------------------------------------------------------------------------


class _IterableShard(ProbeData):
    """Images ``[start, end)`` of an iterable probe set: the whole stream is read, the shard kept."""

    def __init__(self, full: ProbeData, start: int, end: int) -> None:
        super().__init__(full.source, end - start, "iterable")
        self.full, self.start, self.end = full, start, end

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for b in self.full.batches(batch_size):
            s, e = b.start, b.start + b.images.shape[0]
            lo, hi = max(s, self.start), min(e, self.end)
            if lo < hi:
                sl = slice(lo - s, hi - s)
                yield Batch(
                    lo - self.start,
                    b.images[sl],
                    b.labels[sl],
                    None if b.masks is None else b.masks[sl],
                )
            if e >= self.end:
                break


def shard_data(data: ProbeData, start: int, end: int) -> ProbeData:
    """Return the probe images ``[start, end)`` of ``data`` as a ProbeData indexed from 0."""
    if data.kind == "tensors":
        images, labels, masks = data.source
        return ProbeData(
            (images[start:end], labels[start:end], None if masks is None else masks[start:end]),
            end - start,
            "tensors",
        )
    if data.kind == "dataset":
        return ProbeData(Subset(data.source, range(start, end)), end - start, "dataset")
    return _IterableShard(data, start, end)


def shard_plan(plan: RegionPlan, start: int, end: int) -> RegionPlan:
    """Return the rows of ``plan`` that belong to images ``[start, end)``, images renumbered from 0."""
    r0, r1 = int(plan.offsets[start]), int(plan.offsets[end])
    return RegionPlan(
        plan.layer,
        plan.geometry,
        (plan.image[r0:r1] - start).astype(plan.image.dtype),
        plan.cell[r0:r1],
        plan.grid[r0:r1],
        plan.box[r0:r1],
        plan.offsets[start : end + 1] - r0,
        plan.box_method,
    )
