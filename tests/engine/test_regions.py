"""Regions: receptive-field boxes against hand-computed ones, token grids, pooling, the budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.models import ResidualNet, TinyConvNet, TokenNet

from patternviz_widget.engine.capture import regions as R


def _geo(kind, native, drop=False, c=4, grid=None):
    return R.LayerGeometry(kind, native, drop, c, grid or native)


def test_receptive_field_boxes_match_the_hand_computed_ones():
    net = TinyConvNet().eval()
    x = torch.rand(1, 1, 16, 16)
    chains = R.trace_chains(net, x, ["conv1", "relu2", "pool2"])
    assert [type(m).__name__ for m in chains["pool2"]] == [
        "Conv2d",
        "ReLU",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
    ]
    b1, m1 = R.region_boxes(_geo("conv", (16, 16)), chains["conv1"], (16, 16))
    b2, m2 = R.region_boxes(_geo("conv", (8, 8)), chains["relu2"], (16, 16))
    b3, m3 = R.region_boxes(_geo("conv", (4, 4)), chains["pool2"], (16, 16))
    assert (m1, m2, m3) == ("receptive_field",) * 3
    # conv1 cell i: [i-1, i+2) clipped; row 0 col 5 -> x 4..7, y 0..2
    assert b1[0, 5].tolist() == [4, 0, 7, 2]
    assert b1[15, 15].tolist() == [14, 14, 16, 16]
    # conv2 cell i: [2i-2, 2i+3)
    assert b2[3, 2].tolist() == [2, 4, 7, 9]
    assert b2[0, 0].tolist() == [0, 0, 3, 3]
    # pool2 cell i: [4i-2, 4i+5)
    assert b3[1, 2].tolist() == [6, 2, 13, 9]
    assert b3[3, 3].tolist() == [10, 10, 16, 16]


def test_residual_layers_fall_back_to_grid_cells():
    net = ResidualNet().eval()
    chains = R.trace_chains(net, torch.rand(1, 1, 16, 16), ["stem", "block"])
    assert chains["stem"] is not None and chains["block"] is None
    boxes, method = R.region_boxes(_geo("conv", (8, 8)), chains["block"], (16, 16))
    assert method == "grid_cell"
    assert boxes[2, 5].tolist() == [10, 4, 12, 6]  # 16 px / 8 cells = 2 px per cell


def test_token_grid_drops_a_class_token_only_when_one_is_there():
    assert R.token_grid(65, (32, 32)) == (True, (8, 8))
    assert R.token_grid(64, (32, 32)) == (False, (8, 8))
    assert R.token_grid(17, (16, 16)) == (True, (4, 4))
    assert R.token_grid(33, (16, 32)) == (True, (4, 8))
    assert R.token_grid(1, (32, 32)) is None


def test_gather_rows_equals_the_full_rows_for_maps_tokens_and_pooled_grids():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(3, 5, 4, 6, generator=g)
    b = torch.tensor([0, 0, 2, 1])
    cell = torch.tensor([0, 23, 7, 11])
    geo = _geo("conv", (4, 6), c=5)
    full = R.to_grid_rows(t, geo)
    assert full.shape == (3, 24, 5)
    assert torch.equal(full[1, 11], t[1, :, 1, 5])  # row-major: cell 11 = (1, 5)
    assert torch.equal(R.gather_rows(t, geo, b, cell), full[b, cell])
    pooled = _geo("conv", (4, 6), c=5, grid=(2, 3))
    pf = R.to_grid_rows(t, pooled)
    assert torch.allclose(pf[0, 0], t[0, :, :2, :2].mean(dim=(1, 2)))
    assert torch.equal(
        R.gather_rows(t, pooled, b[:2], torch.tensor([0, 5])), pf[b[:2], torch.tensor([0, 5])]
    )
    tok = torch.randn(2, 1 + 6, 5, generator=g)
    tgeo = _geo("tokens", (2, 3), drop=True, c=5)
    assert torch.equal(R.gather_rows(tok, tgeo, torch.tensor([1]), torch.tensor([0])), tok[1:2, 1])


def test_pooled_boxes_are_the_union_of_their_cells():
    boxes = R.grid_cell_boxes((4, 4), (16, 16))
    pooled = R.pool_boxes(boxes, (2, 2))
    assert pooled[1, 0].tolist() == [0, 8, 8, 16]


def test_token_layers_get_patch_boxes():
    net = TokenNet().eval()
    out = {}
    net.tokens.register_forward_hook(lambda m, i, o: out.__setitem__("t", o))
    net(torch.rand(1, 1, 16, 16))
    geo = R.geometry("tokens", out["t"], (16, 16), None)
    assert (geo.kind, geo.native, geo.drop_cls, geo.channels) == ("tokens", (4, 4), True, 6)
    boxes, method = R.region_boxes(geo, None, (16, 16))
    assert method == "grid_cell" and boxes[1, 2].tolist() == [8, 4, 12, 8]


def _plan(layer="l", n=50, R_=(8, 8), rpi=10, cap=None, seed=2020):
    geo = _geo("conv", R_)
    boxes = R.grid_cell_boxes(R_, (32, 32))
    return R.plan_regions(layer, geo, boxes, "grid_cell", n, rpi, cap, seed)


def test_region_budget_is_reproducible_and_per_image():
    a, b = _plan(), _plan()
    assert np.array_equal(a.cell, b.cell) and np.array_equal(a.image, b.image)
    assert a.size == 500 and np.array_equal(np.bincount(a.image), np.full(50, 10))
    # each image: 10 distinct sorted cells
    cells = a.cell.reshape(50, 10)
    assert all(len(set(row)) == 10 for row in cells) and np.all(np.diff(cells, axis=1) > 0)
    # images differ from each other, layers and seeds give other choices
    assert not np.array_equal(cells[0], cells[1])
    assert not np.array_equal(_plan(layer="other").cell, a.cell)
    assert not np.array_equal(_plan(seed=1).cell, a.cell)
    # the choice for image i depends on (seed, layer, i) only, not on how many images there are
    assert np.array_equal(_plan(n=20).cell, a.cell[:200])
    # grid and box rows agree with the cell index
    assert np.array_equal(a.grid[:, 0] * 8 + a.grid[:, 1], a.cell)
    assert np.array_equal(a.box, R.grid_cell_boxes((8, 8), (32, 32)).reshape(64, 4)[a.cell])


def test_total_cap_lowers_the_per_image_count_and_none_keeps_all():
    assert _plan(rpi=10, cap=200).size == 200  # 50 images × 4
    full = _plan(rpi=None)
    assert full.size == 50 * 64 and np.array_equal(full.cell[:64], np.arange(64))


@pytest.mark.parametrize("shape", [(2, 5), (2, 3, 4, 5, 6)])
def test_unsupported_layer_output_shapes_are_refused(shape):
    from patternviz_widget.errors import InputError

    with pytest.raises(InputError, match="N×C×H×W feature map or N×T×C"):
        R.geometry("fc", torch.zeros(shape), (8, 8), None)
