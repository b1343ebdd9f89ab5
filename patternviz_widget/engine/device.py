"""Device choice and seeded generators."""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

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


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim  # glibc; musl and others have none
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere a no-op)
    and return whether it could.

    Between two stages of a fit: glibc keeps what a stage freed in its heaps (its mmap threshold
    grows with every large block freed, and each worker thread has its own arena), so the next
    stage's peak would stack on top of it — at 500 × 196 × 512 the importance fit left ~150 MB
    that the Λ fit's peak RSS then carried."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
