"""How many CPU threads torch may use for a stage of work, and a context that sets it.

Torch's default is one intra-op thread per core. For the many small operations of the region fits
(a few thousand elements each) a second thread costs more in hand-offs than it saves, and when
other processes share the cores — a second kernel training, a notebook service with 2 vCPUs — the
threads spin-wait on each other and a fit can run 20–30× slower than alone instead of the 2–3× its
lost CPU share explains. So the fits take their steps on one thread, and only the large matrix
products (the region-matching search) use more, and only as many as the machine has idle cores
right now (read from ``/proc/stat`` over a few milliseconds; where that file is missing, one).
A number given by the caller always wins.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

from ..errors import InputError


def _cpu_times() -> tuple[float, float] | None:
    try:
        with open("/proc/stat") as fh:
            parts = fh.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    values = [float(x) for x in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])


def idle_cores(sample_s: float = 0.05) -> float | None:
    """Return how many cores were idle over the next ``sample_s`` seconds (None where the
    system does not say)."""
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(sample_s)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    ncpu = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    return ncpu * (b[0] - a[0]) / (b[1] - a[1])


def resolve_threads(threads: int | str | None, device: torch.device | str | None = "cpu") -> int:
    """Return the thread count for the large products of a fit: ``threads`` when it is a number,
    else ("auto" or None) torch's current count capped by the idle cores (at least 1)."""
    if isinstance(threads, bool) or not (
        threads is None or threads == "auto" or isinstance(threads, int)
    ):
        raise InputError(f"threads must be 'auto' or a positive integer, got {threads!r}.")
    if isinstance(threads, int):
        if threads < 1:
            raise InputError(f"threads must be 'auto' or a positive integer, got {threads!r}.")
        return threads
    if torch.device(device or "cpu").type != "cpu":
        return torch.get_num_threads()
    idle = idle_cores()
    most = torch.get_num_threads()
    if idle is None:
        return 1
    return max(1, min(most, int(idle + 0.25)))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
