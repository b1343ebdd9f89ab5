"""Suite-wide fixtures and tier rules.

Tiers are markers (declared in pyproject.toml):
  e2e   real JupyterLab + headless Chromium (tests/e2e/ is marked automatically). Skipped locally
        when /usr/bin/chromium is missing; on CI (CI=true) that is a FAILURE, never a skip.
  slow  trains real models; runs by default (deselect with -m "not slow").
  gpu   needs CUDA; skipped without it.
At the end of a run the terminal summary says which tiers ran, and tests/artifacts/tiers.txt
holds the same line (.ci/run prints it).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
ARTIFACTS = TESTS / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
TIERS = ("e2e", "slow", "gpu")


def on_ci() -> bool:
    """True when running under CI (CI=true), where optional tiers must not skip silently."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return bool(torch.cuda.is_available())


@pytest.fixture
def seed() -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) with 0 and return it."""
    value = 0
    random.seed(value)
    np.random.seed(value)
    try:
        import torch

        torch.manual_seed(value)  # also seeds every CUDA device
    except ImportError:  # pragma: no cover
        pass
    return value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e_dir = TESTS / "e2e"
    cuda = None
    for item in items:
        if e2e_dir in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("gpu") is not None:
            if cuda is None:
                cuda = _cuda_available()
            if not cuda:
                item.add_marker(
                    pytest.mark.skip(reason="gpu: needs CUDA (torch.cuda.is_available() is False)")
                )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("e2e") is not None and not CHROMIUM.exists():
        msg = (
            f"e2e: {CHROMIUM} is missing. Install it with 'apt-get install -y chromium' "
            "(scripts/test does this)."
        )
        if on_ci():
            pytest.fail(msg + " Browser tests never skip on CI.", pytrace=False)
        pytest.skip(msg)


# ---- which tiers ran ---------------------------------------------------------------------------


def _tier_counts(terminalreporter) -> dict[str, Counter]:
    counts: dict[str, Counter] = {t: Counter() for t in TIERS}
    for outcome in ("passed", "failed", "skipped", "error", "xfailed", "xpassed"):
        for rep in terminalreporter.stats.get(outcome, []):
            keywords = getattr(rep, "keywords", {})
            when = getattr(rep, "when", "call")
            for tier in TIERS:
                if tier not in keywords:
                    continue
                if outcome == "skipped" or (
                    outcome in ("passed", "xfailed", "xpassed") and when == "call"
                ):
                    counts[tier][outcome] += 1
                elif outcome in ("failed", "error"):
                    counts[tier]["failed"] += 1
    return counts


def tier_line(counts: dict[str, Counter]) -> str:
    """One line such as 'e2e: ran 5 (5 passed) | slow: ran 3 (3 passed) | gpu: not run (2 skipped)'."""
    parts = []
    for tier in TIERS:
        c = counts[tier]
        ran = c["passed"] + c["failed"] + c["xfailed"] + c["xpassed"]
        detail = ", ".join(f"{n} {k}" for k, n in sorted(c.items()) if n)
        parts.append(
            f"{tier}: ran {ran} ({detail})"
            if ran
            else f"{tier}: not run ({detail or 'none selected'})"
        )
    return " | ".join(parts)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if getattr(config.option, "collectonly", False):
        return
    line = tier_line(_tier_counts(terminalreporter))
    terminalreporter.write_sep("-", "tiers")
    terminalreporter.write_line(line)
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "tiers.txt").write_text(line + "\n")
    except OSError:  # a read-only checkout must not fail the run
        pass
