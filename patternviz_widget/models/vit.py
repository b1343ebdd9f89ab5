"""A small ViT-style classifier: patch tokens are the regions of its transformer blocks."""

from __future__ import annotations

import torch
from torch import nn

from .._validate import check_positive_int
from ..errors import InputError


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x)). Output N×T×C."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """A ViT-style classifier: ``patch_embed`` (Conv2d, kernel = stride = patch_size), a class token
    and learned position embeddings, ``blocks.0`` … ``blocks.{depth-1}`` (outputs N×(1+h·w)×dim:
    the class token then one token per patch, row-major), ``norm`` and the head ``head`` applied to
    the class token (its input is the sample feature f).

    Args:
        in_channels: image channels.
        num_classes: K.
        image_size: side of the (square) input in pixels; must be a multiple of patch_size.
        patch_size: side of each patch (default 4: 8×8 tokens on 32×32 images).
        dim, depth, heads: width, number of blocks, attention heads.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 32,
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
    ) -> None:
        super().__init__()
        check_positive_int(patch_size, "patch_size")
        if image_size % patch_size:
            raise InputError(
                f"image_size={image_size} must be a multiple of patch_size={patch_size}."
            )
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid**2, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.default_layers = [f"blocks.{i}" for i in range(depth)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        if t.shape[1] != self.grid**2:
            raise InputError(
                f"SmallViT was built for {self.grid**2} patches, got {t.shape[1]}; check image_size."
            )
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_embed
        t = self.norm(self.blocks(t))
        return self.head(t[:, 0])
