"""Device choice and seeded generators."""

from __future__ import annotations

import torch

from ..errors import InputError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a ``torch.device``; None picks CUDA when present, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(
            f"Unknown device {device!r}. Use 'cpu', 'cuda', 'cuda:0' or None (auto)."
        ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device={device!r} asked for CUDA, but torch sees no GPU. Use device=None or 'cpu'."
        )
    return dev


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
