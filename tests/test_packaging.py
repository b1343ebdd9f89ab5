"""The wheel a user installs: built by hatchling with the JS bundle inside, no tests, importable.

Builds in-tree with ``pip wheel --no-build-isolation`` (hatchling and hatch-jupyter-builder are in
the ``test`` extra), then installs the wheel into a plain folder and imports it from there with the
source tree removed from ``sys.path`` — the widget module must find its bundle inside the wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(REPO),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    wheels = list(out.glob("patternviz_widget-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_the_bundle_and_the_package_but_no_tests(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "patternviz_widget/static/widget.js" in names
    assert "patternviz_widget/__init__.py" in names
    assert "patternviz_widget/py.typed" in names
    tracked = subprocess.run(
        ["git", "ls-files", "patternviz_widget"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    missing = [p for p in tracked if p.endswith(".py") and p not in names]
    assert missing == [], f"tracked modules missing from the wheel: {missing}"
    stray = [
        n
        for n in names
        if n.startswith(("tests/", "js/", "notebooks/", "benchmarks/")) or "node_modules" in n
    ]
    assert stray == []
    bundle = zipfile.ZipFile(wheel).read("patternviz_widget/static/widget.js")
    assert b"export" in bundle or b"export{" in bundle.replace(b" ", b""), (
        "widget.js is not an ES module"
    )


def test_wheel_metadata_names_the_runtime_dependencies(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: patternviz-widget" in meta
    requires = [
        line.split(":", 1)[1].strip()
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    core = {
        r.split(";")[0].split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
        for r in requires
        if "extra ==" not in r
    }
    for dep in (
        "torch",
        "numpy",
        "scikit-learn",
        "traitlets",
        "ipywidgets",
        "anywidget",
        "bqplot",
        "matplotlib",
    ):
        assert dep in core, f"{dep} missing from Requires-Dist: {sorted(core)}"


def test_installed_wheel_imports_without_the_source_tree(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    code = (
        "import json, os, sys\n"
        f"repo = {str(REPO)!r}\n"
        "sys.path[:] = [p for p in sys.path if p not in ('', repo)]\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "import patternviz_widget as pv\n"
        "from patternviz_widget.widget import patternviz as widget\n"
        "print(json.dumps({'file': pv.__file__, 'esm': str(widget.PatternViz._esm)[:200], 'version': pv.__version__}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["file"].startswith(str(target)), info
    assert info["esm"], "the installed widget has an empty _esm"
