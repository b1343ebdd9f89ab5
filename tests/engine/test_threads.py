"""The thread policy of the region fits (engine/threads.py)."""

from __future__ import annotations

import pytest
import torch


def test_a_number_wins_auto_stays_within_the_idle_cores_and_torchs_count():
    from patternviz_widget.engine.threads import idle_cores, resolve_threads

    assert resolve_threads(3) == 3
    auto = resolve_threads("auto")
    assert 1 <= auto <= torch.get_num_threads()
    idle = idle_cores()
    if idle is not None:  # Linux: measured from /proc/stat over 50 ms
        import os

        assert 0.0 <= idle <= len(os.sched_getaffinity(0)) + 1e-6


@pytest.mark.parametrize("bad", [0, -2, "two", 1.5, True])
def test_bad_thread_counts_are_refused_with_the_fix(bad):
    from patternviz_widget.engine.threads import resolve_threads
    from patternviz_widget.errors import InputError

    with pytest.raises(InputError, match="'auto' or a positive integer"):
        resolve_threads(bad)


def test_torch_threads_sets_and_restores_the_callers_count_even_on_error():
    from patternviz_widget.engine.threads import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_a_region_fit_leaves_the_callers_thread_count_as_it_was():
    import numpy as np

    from patternviz_widget.engine.method.region_embed import fit_region_embedding

    rng = np.random.default_rng(0)
    before = torch.get_num_threads()
    fit_region_embedding(
        rng.random((40, 5)).astype(np.float32),
        np.repeat(np.arange(10), 4),
        rng.normal(size=(10, 3)).astype(np.float32),
        rng.dirichlet(np.ones(3), size=10).astype(np.float32),
        epochs=1,
        importance_steps=1,
        partners=4,
        batch_size=4,
    )
    assert torch.get_num_threads() == before
