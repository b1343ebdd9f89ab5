"""Every notebook in notebooks/ runs end to end (nbclient, CPU, PATTERNVIZ_FAST=1), so none can rot.

Each notebook is executed in a temporary copy of notebooks/ (files it writes stay there) with a
per-cell timeout. The shape rule of the docs -- one opening markdown sentence saying what the
notebook shows, and a closing export cell -- is checked too.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = int(os.environ.get("PATTERNVIZ_NB_CELL_TIMEOUT", "600"))
EXPORT_CALL = re.compile(r"\.export\(|pv\.figures\.|figures\.save\(|savefig\(|\.snapshot\(")

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks in notebooks/")


def _ids() -> list[str]:
    return [p.stem for p in NOTEBOOKS]


def _load(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def shape_problems(nb) -> list[str]:
    """What breaks the docs rule: opening markdown sentence, FAST switch, closing export cell."""
    problems = []
    cells = [c for c in nb.cells if c.source.strip()]
    if (
        not cells
        or cells[0].cell_type != "markdown"
        or not re.search(r"\w.*[.!?]", cells[0].source)
    ):
        problems.append("does not start with a markdown cell holding a sentence of what it shows")
    code = [c for c in cells if c.cell_type == "code"]
    if code and "PATTERNVIZ_FAST" not in code[0].source:
        problems.append("first code cell does not read PATTERNVIZ_FAST (the small-settings switch)")
    if not code or not EXPORT_CALL.search(code[-1].source):
        problems.append("does not end with an export cell (.export(...), pv.figures..., savefig)")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids())
def test_notebook_has_the_documented_shape(path):
    problems = shape_problems(_load(path))
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids())
def test_notebook_runs(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = _load(work / path.name)
    monkeypatch.setenv("PATTERNVIZ_FAST", "1")  # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})  # fmt: skip
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed in a cell:\n{str(e)[-3000:]}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]  # fmt: skip
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
