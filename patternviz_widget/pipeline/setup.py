"""Study set-up: validate everything at the door, probe the model once, fix the probe set and the
regions each layer keeps.

The probe set is the first ``max_images`` images of ``data`` (all of them by default), in data
order. One forward pass on one image checks the channel count, the output shape (N×K) and every
layer's output shape before any long work starts.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from patternviz_widget._validate import check_choice, check_positive_int
from patternviz_widget.engine.capture.data import ProbeData, as_probe_data
from patternviz_widget.engine.capture.hooks import (
    LayerRecorder,
    find_head,
    first_tensor,
    on_device,
    resolve,
)
from patternviz_widget.engine.capture.regions import (
    RegionPlan,
    geometry,
    plan_regions,
    region_boxes,
    trace_chains,
)
from patternviz_widget.engine.device import pick_device
from patternviz_widget.errors import CaptureError, InputError
from patternviz_widget.pipeline.distributed import (
    eager_compiled,
    strip_wrapper_prefix,
    unwrap_model,
)
from patternviz_widget.pipeline.state import StudyConfig, StudyState
from patternviz_widget.results.records import ProbeRecord

#: Thumbnails are at most this many pixels on their longer side.
THUMB_MAX = 64
#: Without a max_regions cap, a layer keeping more regions than this gets a warning with an estimate.
LARGE_REGIONS = 200_000


def build_state(**kw: Any) -> StudyState:
    """Validate the arguments of :class:`~patternviz_widget.Study` and return the study's state.

    The state holds the unwrapped model, the probe data (a ProbeData), the device, each layer's
    region plan, the typed configuration, and a store with the probe record and the manifest filled.
    Raises InputError / LayerNotFoundError with a message naming the fix.
    """
    model = kw["model"]
    if not isinstance(model, nn.Module):
        hint = " To open a saved study use pv.Study.load(path)." if model is None else ""
        raise InputError(
            f"model must be a torch.nn.Module classifier, got {type(model).__name__}.{hint}"
        )
    model = unwrap_model(model)  # DDP / DataParallel / torch.compile: hooks go on the plain module
    layers = [strip_wrapper_prefix(n, model) for n in _check_layers(kw["layers"])]
    sample_kw = strip_wrapper_prefix(kw["sample_layer"], model)
    batch_size = check_positive_int(kw["batch_size"], "batch_size")
    rpi = (
        None
        if kw["regions_per_image"] is None
        else check_positive_int(kw["regions_per_image"], "regions_per_image")
    )
    max_regions = (
        None if kw["max_regions"] is None else check_positive_int(kw["max_regions"], "max_regions")
    )
    max_images = kw.get("max_images")
    max_images = None if max_images is None else check_positive_int(max_images, "max_images")
    grid = _check_grid(kw["grid"])
    storage_dtype = check_choice(kw["storage_dtype"], ["float32", "float16"], "storage_dtype")
    seed = kw["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}.")
    model_name = kw["model_name"]
    if not isinstance(model_name, str) or not model_name or "|" in model_name:
        raise InputError(f"model_name must be a non-empty string without '|', got {model_name!r}.")
    device = pick_device(kw["device"])
    resolve(model, layers)
    if sample_kw is not None:
        resolve(model, [sample_kw])

    probe = as_probe_data(kw["data"], max_images)
    first = next(probe.batches(1))
    x1 = first.images
    _check_channels(model, x1)
    with eager_compiled(model):
        K, geos, sample_layer, chains = _probe_model(model, x1, layers, sample_kw, grid, device)
    if kw["num_classes"] is not None:
        nc = check_positive_int(kw["num_classes"], "num_classes", minimum=2)
        if nc != K:
            raise InputError(
                f"num_classes={nc} but the model outputs {K} scores per image. Pass num_classes={K} "
                "or check that the model's last layer has one output per class."
            )
    if max_regions is not None and max_regions < probe.n:
        raise InputError(
            f"max_regions={max_regions} is smaller than the number of images ({probe.n}); every image "
            f"needs at least one region. Raise max_regions or pass max_images=<= {max_regions}."
        )
    probe_record = _read_probe(probe, K, batch_size, tuple(x1.shape[-2:]))
    class_names = _class_names(kw["class_names"], kw["data"], K)
    probe_record.class_names = class_names
    input_hw = probe_record.input_size

    plans: dict[str, RegionPlan] = {}
    for name in layers:
        boxes, method = region_boxes(geos[name], chains[name], input_hw)
        plans[name] = plan_regions(
            name, geos[name], boxes, method, probe.n, rpi, max_regions, int(seed)
        )

    if max_regions is None:
        _warn_large(plans, probe.n, storage_dtype)

    config = StudyConfig(
        layers=list(layers),
        class_names=list(class_names),
        num_classes=K,
        model_name=model_name,
        seed=int(seed),
        sample_layer=sample_layer,
        input_size=input_hw,
        n_images=probe.n,
        batch_size=batch_size,
        regions_per_image=rpi,
        max_regions=max_regions,
        grid=grid,
        storage_dtype=storage_dtype,
        layer_info={
            name: {
                "kind": p.geometry.kind,
                "grid_shape": list(p.geometry.grid),
                "native_grid": list(p.geometry.native),
                "channels": p.geometry.channels,
                "box_method": p.box_method,
                "regions": p.size,
            }
            for name, p in plans.items()
        },
    )
    state = StudyState(
        config=config,
        model=model,
        data=probe,
        device=device,
        region_plans=plans,
        max_images=max_images,
    )
    state.store.probe = probe_record
    state.write_config()
    return state


def _warn_large(plans: dict[str, RegionPlan], n: int, storage_dtype: str) -> None:
    """Warn, with the numbers, when an uncapped layer keeps more than LARGE_REGIONS regions."""
    big = {name: p for name, p in plans.items() if p.size > LARGE_REGIONS}
    if not big:
        return
    itemsize = 2 if storage_dtype == "float16" else 4
    mib = sum(p.size * p.geometry.channels for p in plans.values()) * itemsize / 2**20
    name, p = max(big.items(), key=lambda kv: kv[1].size)
    warnings.warn(
        f"Layer {name!r} keeps {p.size:,} regions ({n} images × {p.size // max(n, 1):,} cells) with "
        f"max_regions=None: about {mib:,.0f} MiB of regional features per capture, and the region "
        "fit of embed() grows in time and memory with the region count (minutes at this size). "
        "Pass regions_per_image=64, max_regions=200_000 (the defaults) or smaller unless you need "
        "every region.",
        UserWarning,
        stacklevel=4,
    )


def _check_layers(layers: Any) -> list[str]:
    if isinstance(layers, str):
        layers = [layers]
    if (
        not isinstance(layers, (list, tuple))
        or not layers
        or not all(isinstance(n, str) for n in layers)
    ):
        raise InputError(
            f"layers must be a non-empty list of module names as model.named_modules() prints them, "
            f"got {layers!r}."
        )
    dupes = sorted({n for n in layers if list(layers).count(n) > 1})
    if dupes:
        raise InputError(f"layers lists {dupes} more than once; name each layer once.")
    return list(layers)


def _check_grid(grid: Any) -> tuple[int, int] | None:
    if grid is None:
        return None
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = (grid, grid)
    if (
        not isinstance(grid, (tuple, list))
        or len(grid) != 2
        or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in grid)
    ):
        raise InputError(f"grid must be None or (rows, cols) with positive integers, got {grid!r}.")
    return int(grid[0]), int(grid[1])


def _expected_channels(model: nn.Module) -> tuple[str, int] | None:
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Conv3d)):
            return name, m.in_channels
        if isinstance(m, nn.Linear):
            return None
    return None


def _check_channels(model: nn.Module, x1: torch.Tensor) -> None:
    exp = _expected_channels(model)
    if exp is not None and exp[1] != x1.shape[1]:
        name, c = exp
        if x1.shape[-1] == c and x1.shape[1] > 4:  # N×H×W×C read as channels-first
            raise InputError(
                f"The model expects {c} input channels (its first conv {name!r} has in_channels={c}) "
                f"but the images are {tuple(x1.shape[1:])}: they look channels-last (H×W×C). Pass "
                "them channels-first, e.g. images.permute(0, 3, 1, 2) (numpy: images.transpose(0, 3, 1, 2))."
            )
        fix = (
            "repeat the grey channel (images.repeat(1, 3, 1, 1))"
            if x1.shape[1] == 1 and c == 3
            else f"give the images {c} channels"
        )
        raise InputError(
            f"The model expects {c} input channels (its first conv {name!r} has in_channels={c}) but "
            f"the images have {x1.shape[1]} (shape {tuple(x1.shape[1:])}). Either {fix} or build the "
            f"model with in_channels={x1.shape[1]}."
        )


def _probe_model(
    model: nn.Module,
    x1: torch.Tensor,
    layers: list[str],
    sample_layer: str | None,
    grid: tuple[int, int] | None,
    device: torch.device,
) -> tuple[int, dict, str, dict]:
    """One-image forward passes: output shape K, layer geometries, the head, receptive-field chains."""
    input_hw = (int(x1.shape[-2]), int(x1.shape[-1]))
    with on_device(model, device), torch.inference_mode():
        x = x1.to(device)
        with LayerRecorder(model, layers) as rec:
            try:
                out = model(x)
            except CaptureError as e:  # a hooked layer returned no tensor
                raise InputError(str(e)) from e
            except Exception as e:
                exp = _expected_channels(model)
                chans = f" The model's first conv expects {exp[1]} channels." if exp else ""
                raise InputError(
                    f"The model failed on one image of shape {tuple(x1.shape[1:])} "
                    f"(C×H×W): {type(e).__name__}: {e}.{chans} Check the channel count, image size "
                    "and normalisation your model expects."
                ) from e
            logits = first_tensor(out) if not isinstance(out, torch.Tensor) else out
            if (
                not isinstance(out, torch.Tensor)
                or logits is None
                or logits.ndim != 2
                or logits.shape[0] != 1
            ):
                what = (
                    f"shape {tuple(out.shape)}"
                    if isinstance(out, torch.Tensor)
                    else f"a {type(out).__name__}"
                )
                raise InputError(
                    f"The model must return class scores of shape N×K (a classifier); it returned {what} "
                    "for one image. Wrap it so forward() returns the logits tensor."
                )
            K = int(logits.shape[1])
            if K < 2:
                raise InputError(
                    f"The model outputs {K} score per image; a classifier needs K >= 2 classes."
                )
            for name in layers:
                if name not in rec.outputs:
                    raise InputError(_not_called(model, name))
            geos = {name: geometry(name, rec.outputs.get(name), input_hw, grid) for name in layers}
        head = sample_layer if sample_layer is not None else find_head(model, K)
        with LayerRecorder(model, [], head) as rec:
            model(x)
            if rec.sample is None:
                raise InputError(
                    f"Sample layer {head!r} was not called in the forward pass; name another module."
                )
    with on_device(model, device):
        was = model.training
        model.eval()
        try:
            chains = trace_chains(model, x1.to(device), layers)
        finally:
            model.train(was)
    return K, geos, head, chains


def _not_called(model: nn.Module, name: str) -> str:
    """The message for a layer whose forward never ran (a container the model bypasses, or an unused module)."""
    module = dict(model.named_modules())[name]
    children = [f"{name}.{c}" for c, _ in module.named_children()]
    if children:
        shown = ", ".join(repr(c) for c in children[:4]) + (" …" if len(children) > 4 else "")
        return (
            f"Layer {name!r} was not called in the model's forward pass: it is a container "
            f"({type(module).__name__}) whose own forward never runs; the model calls its children "
            f"directly. Pick one of them: {shown}."
        )
    return f"Layer {name!r} was not called in the model's forward pass; pick a layer it uses."


def _read_probe(
    probe: ProbeData, K: int, batch_size: int, input_hw: tuple[int, int]
) -> ProbeRecord:
    """One pass over the probe data: labels (checked), thumbnails and masks."""
    labels = np.empty(probe.n, np.int64)
    masks: np.ndarray | None = None
    thumbs: np.ndarray | None = None
    for b in probe.batches(batch_size):
        e = b.start + b.images.shape[0]
        if tuple(b.images.shape[-2:]) != input_hw:
            raise InputError(
                f"Images near index {b.start} are {tuple(b.images.shape[-2:])}, the first is {input_hw}; "
                "resize every image to one size."
            )
        labels[b.start : e] = b.labels.numpy()
        t = thumbnails(b.images)
        if thumbs is None:
            thumbs = np.empty((probe.n, *t.shape[1:]), np.uint8)
        thumbs[b.start : e] = t
        if b.masks is not None:
            if masks is None:
                masks = np.zeros((probe.n, *input_hw), np.uint8)
            if tuple(b.masks.shape[-2:]) != input_hw:
                raise InputError(
                    f"Masks are {tuple(b.masks.shape[-2:])} but images {input_hw}; give masks at image size."
                )
            masks[b.start : e] = b.masks.numpy()
    if (labels < 0).any():
        i = int(np.flatnonzero(labels < 0)[0])
        raise InputError(
            f"Label {labels[i]} of image {i} is negative; labels must be class indices 0..{K - 1}. "
            "A negative label usually marks an unlabelled / ignored image: leave such images out of "
            "the probe data (e.g. a Subset of the labelled ones), or remap the labels."
        )
    bad = labels >= K
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"Label {labels[i]} of image {i} is out of range: the model has {K} classes, so labels must "
            f"be 0..{K - 1}. Remap the labels or build the model with num_classes={int(labels.max()) + 1}."
        )
    if np.unique(labels).size < 2:
        raise InputError(
            f"Every probe image has label {labels[0]}; the paper's embedding needs images of at least "
            "two classes. Pass data with several classes."
        )
    return ProbeRecord(
        labels=labels,
        thumbnails=thumbs,  # type: ignore[arg-type]
        input_size=input_hw,
        class_names=[],
        data_index=np.arange(probe.n, dtype=np.int64),
        masks=masks,
    )


def thumbnails(images: torch.Tensor) -> np.ndarray:
    """Return uint8[B, h, w, 3] display thumbnails (longer side <= 64 px).

    Images already in [0, 1] are scaled by 255; any other range is min-max scaled per image.
    One channel is repeated to RGB; more than three channels keep the first three.
    """
    x = images.float()
    H, W = x.shape[-2:]
    if max(H, W) > THUMB_MAX:
        s = THUMB_MAX / max(H, W)
        x = F.interpolate(
            x, size=(max(1, round(H * s)), max(1, round(W * s))), mode="bilinear", antialias=True
        )
    c = x.shape[1]
    x = x.repeat(1, 3, 1, 1) if c == 1 else (x[:, :3] if c >= 3 else x[:, :1].repeat(1, 3, 1, 1))
    flat = x.reshape(x.shape[0], -1)
    lo, hi = flat.min(1).values, flat.max(1).values
    in_unit = (lo >= -1e-6) & (hi <= 1 + 1e-6)
    scale = torch.where(in_unit, torch.ones_like(hi), (hi - lo).clamp_min(1e-12))
    offset = torch.where(in_unit, torch.zeros_like(lo), lo)
    x = (x - offset[:, None, None, None]) / scale[:, None, None, None]
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _class_names(given: Any, data: Any, K: int) -> list[str]:
    if given is None:
        source = getattr(data, "dataset", data)
        found = getattr(source, "class_names", None) or getattr(source, "classes", None)
        if isinstance(found, (list, tuple)) and len(found) == K:
            return [str(c) for c in found]
        return [str(i) for i in range(K)]
    if isinstance(given, str) or not hasattr(given, "__len__"):
        raise InputError(f"class_names must be a list of {K} strings, got {given!r}.")
    if len(given) != K:
        raise InputError(
            f"class_names has {len(given)} names but the model has {K} classes; give one per class."
        )
    return [str(c) for c in given]
