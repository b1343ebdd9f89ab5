"""release_free_memory: the heap pages a fit stage freed go back to the system before the next
stage, so its peak RSS does not stack on them (glibc only; elsewhere it says it could not)."""

from __future__ import annotations

import sys

import pytest
import torch

from patternviz_widget.engine.device import release_free_memory


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_pages_return_to_the_system():
    if not release_free_memory():
        pytest.skip("this libc has no malloc_trim")
    # freeing a 24 MB block raises glibc's mmap threshold, so the 6 MB tensors after it come from
    # the heap and stay resident once freed — what the importance fit's steps leave behind
    big = torch.ones(6 * 2**20)  # 24 MB, mmapped
    del big
    keep = [torch.ones(1_500_000) for _ in range(40)]  # 40 × 6 MB on the heap, touched
    held = _rss_mb()
    keep = keep[-1:]  # free all but the last (it pins the top of the heap)
    before = _rss_mb()
    assert release_free_memory()
    after = _rss_mb()
    assert held - before < 60, "freeing alone did not return the pages (the case this is for)"
    assert before - after > 150, (held, before, after)
    assert keep[0].sum().item() == 1_500_000  # what is still held is intact
