"""Regions: a layer's output as rows of regional features f^(r) (paper Sec. 3), where each region
sits on the input, and which regions a study keeps (the budget).

* **Conv maps** ``N×C×H×W`` give ``H·W`` regions of ``C`` channels, row-major over the grid.
* **Tokens** ``N×T×C`` give one region per patch token. If ``T = 1 + h·w`` for a grid ``h×w``
  whose aspect matches the input, the first token is taken to be a class token and dropped (the
  ViT convention); otherwise all ``T = h·w`` tokens are patches.
* **Boxes** ``(x0, y0, x1, y1)`` in input pixels (pixel p spans [p, p+1)). For a conv map reached
  from the input through a plain chain of Conv2d / MaxPool2d / AvgPool2d and size-preserving
  modules (BatchNorm, activations, Dropout), the box is the region's exact theoretical receptive
  field, clipped to the image (``box_method = "receptive_field"``). Otherwise (residual additions,
  attention, functional ops in ``forward``) the box is the grid cell the region stands for, the
  input split evenly into the grid (``box_method = "grid_cell"``), as the paper draws its patches.
* **Common grid** (as the paper's knowledge-point figures): an optional ``(rows, cols)`` to which every layer is adaptively
  average-pooled; a pooled region's box is the union of the boxes it pools.
* **Budget**: :func:`plan_regions` picks the kept cells of each image once per study, seeded by
  ``(seed, layer name, image index)``, so row m means the same (image, cell) in every capture.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from patternviz_widget.engine.capture.hooks import first_tensor, resolve
from patternviz_widget.errors import InputError

#: Modules that keep the spatial layout pixel for pixel (receptive field unchanged).
_POINTWISE = (
    nn.BatchNorm2d,
    nn.InstanceNorm2d,
    nn.GroupNorm,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
)


@dataclass
class LayerGeometry:
    """How one layer's output maps to regions: ``kind`` "conv" | "tokens", the native grid
    ``(h, w)``, whether a class token is dropped, the channel count C and the grid after pooling."""

    kind: str
    native: tuple[int, int]
    drop_cls: bool
    channels: int
    grid: tuple[int, int]


def token_grid(t: int, input_hw: tuple[int, int]) -> tuple[bool, tuple[int, int]] | None:
    """Return ``(drop_cls, (h, w))`` for ``t`` tokens on an input of ``input_hw``, or None."""
    H, W = input_hw
    best: tuple[float, bool, tuple[int, int]] | None = None
    for drop in (False, True):
        n = t - int(drop)
        for h in range(1, n + 1):
            if n % h:
                continue
            w = n // h
            if h == 1 and w == 1 and t == 1:
                continue
            err = abs(math.log((h / w) / (H / W)))
            if best is None or err < best[0] - 1e-9:
                best = (err, drop, (h, w))
    if best is None or best[0] > math.log(1.5):
        return None
    return best[1], best[2]


def geometry(
    layer: str, out: Any, input_hw: tuple[int, int], grid: tuple[int, int] | None
) -> LayerGeometry:
    """Return the :class:`LayerGeometry` of a layer from one output; raise if unsupported."""
    t = first_tensor(out)
    shape: tuple[int, ...] = tuple(t.shape) if t is not None else ()
    if t is not None and t.ndim == 4:
        geo = LayerGeometry("conv", (shape[2], shape[3]), False, shape[1], (shape[2], shape[3]))
    elif t is not None and t.ndim == 3 and token_grid(shape[1], input_hw) is not None:
        drop, hw = token_grid(shape[1], input_hw)  # type: ignore[misc]  # not None: checked above
        geo = LayerGeometry("tokens", hw, drop, shape[2], hw)
    else:
        what = f"a tensor of shape {shape}" if t is not None else f"a {type(out).__name__}"
        raise InputError(
            f"Layer {layer!r} outputs {what}; regions need an N×C×H×W feature map or N×T×C "
            "patch tokens. Pick a conv layer or a transformer block (the sample feature is "
            "taken automatically at the classifier head; set sample_layer= to move it)."
        )
    if grid is not None:
        geo.grid = (int(grid[0]), int(grid[1]))
    return geo


def to_grid_rows(t: torch.Tensor, geo: LayerGeometry) -> torch.Tensor:
    """Return ``B×R×C`` regional features (R = rows·cols of ``geo.grid``, row-major)."""
    if geo.kind == "tokens":
        if geo.drop_cls:
            t = t[:, 1:]
        if geo.grid == geo.native:
            return t
        t = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *geo.native)
    if geo.grid != tuple(t.shape[-2:]):
        t = F.adaptive_avg_pool2d(t, geo.grid)
    return t.flatten(2).transpose(1, 2)


def gather_rows(
    t: torch.Tensor, geo: LayerGeometry, b: torch.Tensor, cell: torch.Tensor
) -> torch.Tensor:
    """Return the ``len(b)×C`` rows ``(image b[m], grid cell cell[m])`` of one batch's layer output
    ``t``, without copying the whole map (same values as ``to_grid_rows(t, geo)[b, cell]``)."""
    if geo.kind == "tokens":
        if geo.grid == geo.native:
            return t[b, cell + int(geo.drop_cls)]
        if geo.drop_cls:
            t = t[:, 1:]
        t = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *geo.native)
    if geo.grid != tuple(t.shape[-2:]):
        t = F.adaptive_avg_pool2d(t, geo.grid)
    return t.flatten(2)[b, :, cell]


def check_shape(layer: str, t: torch.Tensor, geo: LayerGeometry) -> str | None:
    """Return why ``t`` does not fit the layer's planned geometry, or None when it does."""
    h, w = geo.native
    if geo.kind == "conv" and (t.ndim != 4 or tuple(t.shape[-2:]) != (h, w)):
        return f"layer {layer!r} gave shape {tuple(t.shape)}, but its regions were planned on an {h}×{w} map"
    if geo.kind == "tokens" and (t.ndim != 3 or t.shape[1] != h * w + int(geo.drop_cls)):
        return f"layer {layer!r} gave shape {tuple(t.shape)}, but its regions were planned on {h * w + int(geo.drop_cls)} tokens"
    return None


def grid_cell_boxes(native: tuple[int, int], input_hw: tuple[int, int]) -> np.ndarray:
    """Return float32[h, w, 4] boxes: the input split evenly into the ``h×w`` grid."""
    h, w = native
    H, W = input_hw
    ys = np.arange(h + 1) * (H / h)
    xs = np.arange(w + 1) * (W / w)
    box = np.empty((h, w, 4), np.float32)
    box[..., 0] = xs[None, :-1]
    box[..., 1] = ys[:-1, None]
    box[..., 2] = xs[None, 1:]
    box[..., 3] = ys[1:, None]
    return box


def receptive_field_boxes(
    ops: list[nn.Module], native: tuple[int, int], input_hw: tuple[int, int]
) -> np.ndarray:
    """Return float32[h, w, 4] receptive-field boxes after the chain ``ops`` (input order), clipped.

    Per axis with jump J, first-pixel offset A and size r (starting 1, 0, 1), each Conv2d / pool
    with kernel k, stride s, padding p, dilation d does: A -= p·J; r += d·(k-1)·J; J *= s.
    Cell i then covers input pixels [A + i·J, A + i·J + r).
    """
    J, A, r = [1, 1], [0, 0], [1, 1]
    for op in ops:
        if isinstance(op, _POINTWISE):
            continue
        k, s, p, d = _window(op)
        for ax in (0, 1):
            A[ax] -= p[ax] * J[ax]
            r[ax] += d[ax] * (k[ax] - 1) * J[ax]
            J[ax] *= s[ax]
    h, w = native
    H, W = input_hw
    y0 = np.clip(A[0] + np.arange(h) * J[0], 0, H)
    y1 = np.clip(A[0] + np.arange(h) * J[0] + r[0], 0, H)
    x0 = np.clip(A[1] + np.arange(w) * J[1], 0, W)
    x1 = np.clip(A[1] + np.arange(w) * J[1] + r[1], 0, W)
    box = np.empty((h, w, 4), np.float32)
    box[..., 0], box[..., 2] = x0[None, :], x1[None, :]
    box[..., 1], box[..., 3] = y0[:, None], y1[:, None]
    return box


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _window(op: nn.Module) -> tuple[tuple[int, int], ...]:
    k = _pair(op.kernel_size)
    s = _pair(op.stride if op.stride is not None else op.kernel_size)
    d = _pair(getattr(op, "dilation", 1))
    pad = op.padding
    if pad == "valid":
        p = (0, 0)
    elif pad == "same":
        p = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
    else:
        p = _pair(pad)
    return k, s, p, d


def pool_boxes(boxes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Return float32[rows, cols, 4]: the union of the native boxes each pooled cell averages
    (the same bins as ``adaptive_avg_pool2d``)."""
    h, w = boxes.shape[:2]
    rows, cols = grid
    out = np.empty((rows, cols, 4), np.float32)
    for i in range(rows):
        r0, r1 = (i * h) // rows, -(-((i + 1) * h) // rows)
        for j in range(cols):
            c0, c1 = (j * w) // cols, -(-((j + 1) * w) // cols)
            cell = boxes[r0:r1, c0:c1].reshape(-1, 4)
            out[i, j] = (cell[:, 0].min(), cell[:, 1].min(), cell[:, 2].max(), cell[:, 3].max())
    return out


def trace_chains(
    model: nn.Module, x: torch.Tensor, layers: list[str]
) -> dict[str, list[nn.Module] | None]:
    """Run ``model(x)`` once and return, per layer, the chain of leaf modules from the input to the
    layer's output when it is a plain sequence of supported modules, else None (also for every
    layer when the traced forward pass fails, e.g. a scripted model without hook support)."""
    records: list[tuple[nn.Module, torch.Tensor | None, torch.Tensor | None]] = []
    layer_out: dict[str, torch.Tensor | None] = {}
    handles = []

    def leaf_hook(module: nn.Module, inputs: Any, output: Any) -> None:
        records.append((module, first_tensor(inputs), first_tensor(output)))

    def layer_hook(name: str):
        return lambda module, inputs, output: layer_out.__setitem__(name, first_tensor(output))

    targets = resolve(model, layers)
    try:
        for m in model.modules():
            if not any(True for _ in m.children()):
                handles.append(m.register_forward_hook(leaf_hook))
        for name, m in targets.items():
            handles.append(m.register_forward_hook(layer_hook(name)))
        with torch.no_grad():
            model(x)
    except Exception:  # best effort: a model that cannot be traced gets grid-cell boxes
        return {name: None for name in layers}
    finally:
        for hd in handles:
            hd.remove()
    out: dict[str, list[nn.Module] | None] = {}
    for name in layers:
        out[name] = _walk_back(records, layer_out.get(name), x)
    return out


def _walk_back(records: list, cur: torch.Tensor | None, x: torch.Tensor) -> list[nn.Module] | None:
    ops: list[nn.Module] = []
    pos = len(records)
    while cur is not None and cur is not x:
        i = next((i for i in range(pos - 1, -1, -1) if records[i][2] is cur), None)
        if i is None:
            return None
        module, inp, _ = records[i]
        if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d) + _POINTWISE):
            return None
        ops.append(module)
        cur, pos = inp, i
    return ops[::-1] if cur is x else None


def region_boxes(
    geo: LayerGeometry, chain: list[nn.Module] | None, input_hw: tuple[int, int]
) -> tuple[np.ndarray, str]:
    """Return (float32[rows, cols, 4] boxes on ``geo.grid``, box_method)."""
    if geo.kind == "conv" and chain is not None:
        boxes, method = receptive_field_boxes(chain, geo.native, input_hw), "receptive_field"
    else:
        boxes, method = grid_cell_boxes(geo.native, input_hw), "grid_cell"
    if geo.grid != geo.native:
        boxes = pool_boxes(boxes, geo.grid)
    return boxes, method


@dataclass
class RegionPlan:
    """The regions a study keeps for one layer, fixed once: row m is (image[m], cell[m]).

    image: int32[M] sorted; cell: int64[M] flat index into the grid (row-major); grid: int16[M, 2];
    box: float32[M, 4]; offsets: int64[N+1], rows of image i are ``offsets[i]:offsets[i+1]``.
    """

    layer: str
    geometry: LayerGeometry
    image: np.ndarray
    cell: np.ndarray
    grid: np.ndarray
    box: np.ndarray
    offsets: np.ndarray
    box_method: str

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


def per_image_count(
    n: int, cells: int, regions_per_image: int | None, max_regions: int | None
) -> int:
    """Return how many regions each image keeps: min(R, regions_per_image, max_regions // n)."""
    k = cells if regions_per_image is None else min(cells, regions_per_image)
    if max_regions is not None:
        k = min(k, max_regions // n)
    return max(k, 1)


def plan_regions(
    layer: str,
    geo: LayerGeometry,
    boxes: np.ndarray,
    box_method: str,
    n: int,
    regions_per_image: int | None,
    max_regions: int | None,
    seed: int,
) -> RegionPlan:
    """Return the :class:`RegionPlan` of ``layer``: for image i, ``k`` distinct cells drawn by
    ``numpy.random.default_rng([seed, crc32(layer), i])`` (all cells when k = R), sorted."""
    rows, cols = geo.grid
    R = rows * cols
    k = per_image_count(n, R, regions_per_image, max_regions)
    salt = zlib.crc32(layer.encode("utf-8"))
    if k >= R:
        cell = np.tile(np.arange(R, dtype=np.int64), n)
    else:
        cell = np.empty(n * k, np.int64)
        for i in range(n):
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, salt, i])
            cell[i * k : (i + 1) * k] = np.sort(rng.choice(R, size=k, replace=False))
    image = np.repeat(np.arange(n, dtype=np.int32), min(k, R))
    grid = np.stack([cell // cols, cell % cols], axis=1).astype(np.int16)
    box = boxes.reshape(R, 4)[cell]
    offsets = np.arange(n + 1, dtype=np.int64) * min(k, R)
    return RegionPlan(layer, geo, image, cell, grid, box.astype(np.float32), offsets, box_method)
