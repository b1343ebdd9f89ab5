"""The layering of the package: every room imports only the rooms below it.

    engine (the paper's math)  <-  results (store, file, query)  <-  pipeline  <-  study
        <-  figures (matplotlib)  <-  widget (traitlets / anywidget / ipywidgets / bqplot)

Two checks, both able to fail (each has a test showing it sees a violation):

- in a fresh interpreter, the modules a room loads when imported, with the package's own
  ``__init__`` (which imports the study for ``pv.Study``) kept out of the way, so what is loaded
  is what the room itself pulls in;
- the import statements of every module of a room, those inside functions included (a lazy
  import is still an arrow), resolved to the package module they name.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import patternviz_widget
import patternviz_widget.engine
import patternviz_widget.figures
import patternviz_widget.results

PKG = "patternviz_widget"
PKG_DIR = Path(patternviz_widget.__file__).resolve().parent
WIDGET_STACK = ("anywidget", "ipywidgets", "bqplot", "traitlets")
#: What each room must never import (package modules, by dotted prefix).
ABOVE = {
    "engine": (f"{PKG}.pipeline", f"{PKG}.study", f"{PKG}.figures", f"{PKG}.widget"),
    "results": (f"{PKG}.pipeline", f"{PKG}.study", f"{PKG}.figures", f"{PKG}.widget"),
    "figures": (f"{PKG}.widget",),
}


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
FIGURES_MODULES = [patternviz_widget.figures.__name__, *_modules(patternviz_widget.figures)]
PURE_EXTRAS = _optional_packages("patternviz_widget.datasets", "patternviz_widget.models")
ROOM_MODULES = {
    "engine": ["patternviz_widget.engine", *ENGINE_MODULES],
    "results": ["patternviz_widget.results", *RESULTS_MODULES],
    "figures": FIGURES_MODULES,
}


def _fresh_import(modules: list[str], bare_package: bool = False) -> list[str]:
    """Import ``modules`` in a new interpreter; return every module then loaded.

    ``bare_package``: stand an empty ``patternviz_widget`` package in for the real one, so its
    ``__init__`` (which imports ``Study``) does not load anything on the room's behalf.
    """
    bare = (
        "import types\n"
        f"pkg = types.ModuleType({PKG!r}); pkg.__path__ = [{str(PKG_DIR)!r}]\n"
        f"sys.modules[{PKG!r}] = pkg\n"
        if bare_package
        else ""
    )
    code = (
        "import importlib, json, sys\n" + bare + f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _matching(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes))


def _imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import statement in ``path`` (module ``module``), resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    parts = module.split(".") if is_pkg else module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            out.append((node.lineno, target))
            # `from . import x` / `from .. import widget` name modules too
            out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return out


def _upward_imports(room: str, modules: list[str]) -> list[str]:
    found = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, name
        for line, target in _imports_of(Path(spec.origin), name):
            if _matching([target], ABOVE[room]):
                found.append(f"{name}:{line} imports {target}")
    return found


# ---- the checks --------------------------------------------------------------------------------
def test_there_are_rooms_to_check():
    # Guards the tests below against passing vacuously on an empty package.
    assert "patternviz_widget.engine.device" in ENGINE_MODULES
    assert "patternviz_widget.results.query" in RESULTS_MODULES
    assert "patternviz_widget.figures.scatter3d" in FIGURES_MODULES


def test_engine_and_results_import_no_widget_library():
    loaded = _fresh_import(["patternviz_widget", *ENGINE_MODULES, *RESULTS_MODULES, *PURE_EXTRAS])
    offenders = _matching(loaded, WIDGET_STACK)
    assert offenders == [], (
        f"importing patternviz_widget + its engine/results/datasets/models modules loaded {offenders}; "
        "the engine must stay pure torch/numpy (the package's layering)"
    )


def test_figures_load_no_widget():
    loaded = _fresh_import(FIGURES_MODULES, bare_package=True)
    offenders = _matching(loaded, (*WIDGET_STACK, f"{PKG}.widget"))
    assert offenders == [], (
        f"importing the figures loaded {offenders}; figures must not need the widget"
    )


def test_engine_and_results_load_nothing_above_them():
    for room in ("engine", "results"):
        loaded = _fresh_import(ROOM_MODULES[room], bare_package=True)
        offenders = _matching(loaded, ABOVE[room])
        assert offenders == [], (
            f"importing {room}/ loaded {offenders}: {room} must not import the pipeline, the study, "
            "the figures or the widget"
        )


def test_no_room_imports_upwards_even_inside_a_function():
    found = {room: _upward_imports(room, mods) for room, mods in ROOM_MODULES.items()}
    assert all(not v for v in found.values()), found


# ---- the checks can fail -----------------------------------------------------------------------
def test_the_fresh_interpreter_check_sees_a_violation():
    # The same probes, on modules that do break the rules, must report them.
    assert _matching(_fresh_import(["traitlets"]), WIDGET_STACK)
    loaded = _fresh_import([f"{PKG}.widget.payload"], bare_package=True)
    assert _matching(loaded, ABOVE["results"]) and _matching(loaded, ABOVE["figures"])
    assert not _matching(_fresh_import([f"{PKG}.errors"], bare_package=True), ABOVE["results"])


def test_the_statement_check_sees_a_lazy_upward_import(tmp_path):
    source = tmp_path / "_data.py"
    source.write_text(
        "def sample_view():\n    from ..widget.payload import Knowledge\n    return Knowledge\n"
    )
    targets = [t for _, t in _imports_of(source, f"{PKG}.figures._data")]
    assert f"{PKG}.widget.payload" in targets
    assert _matching(targets, ABOVE["figures"])
    init = tmp_path / "__init__.py"
    init.write_text("from .. import widget\nfrom .query import resolve_key\n")
    targets = [t for _, t in _imports_of(init, f"{PKG}.results")]
    assert f"{PKG}.widget" in targets and f"{PKG}.results.query" in targets
