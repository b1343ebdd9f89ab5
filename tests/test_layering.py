"""The layering of the package: the engine (and the results it feeds) never pull in the widget stack.

Checked in a fresh interpreter, so modules imported by other tests cannot hide a violation.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import patternviz_widget.engine
import patternviz_widget.results

WIDGET_STACK = ("anywidget", "ipywidgets", "bqplot", "traitlets")


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


def _optional_packages(*names: str) -> list[str]:
    """Pure-torch packages beside the engine (bundled data, demo models), once they exist."""
    found = []
    for name in names:
        try:
            pkg = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        found += [name, *_modules(pkg)] if hasattr(pkg, "__path__") else [name]
    return found


ENGINE_MODULES = _modules(patternviz_widget.engine)
RESULTS_MODULES = _modules(patternviz_widget.results)
PURE_EXTRAS = _optional_packages("patternviz_widget.datasets", "patternviz_widget.models")


def _loaded_after_import(modules: list[str]) -> dict[str, list[str]]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps({{m: sorted(k for k in sys.modules if k == m or k.startswith(m + '.')) "
        f"for m in {list(WIDGET_STACK)!r}}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_there_is_an_engine_to_check():
    # Guards the test below against passing vacuously on an empty package.
    assert "patternviz_widget.engine.device" in ENGINE_MODULES


def test_engine_and_results_import_no_widget_library():
    loaded = _loaded_after_import(
        ["patternviz_widget", *ENGINE_MODULES, *RESULTS_MODULES, *PURE_EXTRAS]
    )
    offenders = {lib: mods for lib, mods in loaded.items() if mods}
    assert offenders == {}, (
        f"importing patternviz_widget + its engine/results/datasets/models modules loaded {sorted(offenders)}; "
        "the engine must stay pure torch/numpy (the package's layering)"
    )


def test_the_check_would_see_a_widget_import():
    # The same probe, on a module that does import traitlets, must report it.
    loaded = _loaded_after_import(["traitlets"])
    assert loaded["traitlets"]
