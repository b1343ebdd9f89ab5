"""The package's rooms and their one-way doors, read from the source's own import statements.

Every ``import`` / ``from ... import`` in ``patternviz_widget`` (at module level, inside functions
and under ``TYPE_CHECKING`` alike) is an arrow from one module to another. The rooms, lowest first:

    shared leaves   errors, defaults, _validate, _style
    results         typed records, the store and the study file (results.query is higher: below)
    engine          engine.device / threads, then capture, method, attack, distill
    extras          datasets, models (bundled data and demo networks, pure torch)
    query           results.query: reading a store with the method's rules (keys, μ, sample KPs)
    pipeline        orchestration over a StudyState
    study           the user's facade
    figures         matplotlib figures of a study
    widget          everything that imports the widget stack
    apps            cli, the demo, reproduction, the package's __init__ and __main__

An arrow may point to its own room or to a lower one, never up; and the module graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "patternviz_widget"

#: (room, module prefixes), lowest first; the first matching prefix names a module's room.
ROOMS: list[tuple[str, tuple[str, ...]]] = [
    ("shared", ("errors", "defaults", "_validate", "_style")),
    (
        "results",
        (
            "results.keys",
            "results.records",
            "results.store",
            "results.io",
            "results.camera",
            "results",
        ),
    ),
    ("engine.base", ("engine.device", "engine.threads", "engine")),
    ("engine.capture", ("engine.capture",)),
    ("engine.method", ("engine.method",)),
    ("engine.attack", ("engine.attack",)),
    ("engine.distill", ("engine.distill",)),
    ("extras", ("datasets", "models")),
    ("query", ("results.query",)),
    ("pipeline", ("pipeline",)),
    ("study", ("study",)),
    ("figures", ("figures",)),
    ("widget", ("widget",)),
    ("apps", ("cli", "_demo", "reproduction", "__main__", "")),
]


def room_of(module: str) -> tuple[int, str]:
    """Return (level, room) of a dotted module name inside the package."""
    rel = module.removeprefix("patternviz_widget").lstrip(".")
    best: tuple[int, int, str] | None = None  # (prefix length, level, room)
    for level, (room, prefixes) in enumerate(ROOMS):
        for prefix in prefixes:
            if rel == prefix or rel.startswith(prefix + ".") or prefix == "":
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), level, room)
    assert best is not None, module
    return best[1], best[2]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(root: Path = PKG) -> set[tuple[str, str]]:
    """Every (importer, imported) pair of modules of the package, from the source files."""
    files = sorted(root.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    edges: set[tuple[str, str]] = set()
    for path in files:
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # "from pkg import module" imports the module
                    full = f"{target}.{alias.name}"
                    hit = full if full in modules else target
                    if hit in modules and hit != name:
                        edges.add((name, hit))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.name != name:
                        edges.add((name, alias.name))
    return edges


def upward(edges: set[tuple[str, str]]) -> list[str]:
    """The arrows that point to a higher room, as readable lines."""
    out = []
    for a, b in sorted(edges):
        (la, ra), (lb, rb) = room_of(a), room_of(b)
        if lb > la:
            out.append(f"{a} ({ra}) -> {b} ({rb})")
    return out


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Some cycle through each strongly connected group of modules (empty when the graph is a DAG)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


EDGES = import_edges()


def test_the_graph_is_read_from_the_real_package():
    # Guards the tests below against passing on an empty or misread graph.
    assert ("patternviz_widget.study", "patternviz_widget.pipeline.setup") in EDGES
    assert (
        "patternviz_widget.pipeline.embed",
        "patternviz_widget.engine.method.region_embed",
    ) in EDGES
    assert len(EDGES) > 150


def test_every_module_lives_in_a_room_on_purpose():
    # A new top-level module falls into "apps" by default; name it in ROOMS if it belongs lower.
    top = sorted({m for e in EDGES for m in e if m.count(".") == 1})
    apps = [m for m in top if room_of(m)[1] == "apps"]
    assert apps == [
        "patternviz_widget.__main__",
        "patternviz_widget._demo",
        "patternviz_widget.cli",
        "patternviz_widget.reproduction",
    ]


def test_no_arrow_points_upwards():
    assert upward(EDGES) == []


def test_the_import_graph_has_no_cycle():
    assert cycles(EDGES) == []


def test_the_engine_never_reaches_the_pipeline_study_or_widget():
    bad = [
        (a, b)
        for a, b in EDGES
        if a.startswith("patternviz_widget.engine")
        and b.startswith(
            ("patternviz_widget.pipeline", "patternviz_widget.study", "patternviz_widget.widget")
        )
    ]
    assert bad == []


@pytest.mark.parametrize(
    "edge, why",
    [
        (
            ("patternviz_widget.engine.method.embed", "patternviz_widget.pipeline.embed"),
            "engine -> pipeline",
        ),
        (
            ("patternviz_widget.results.store", "patternviz_widget.engine.method.metrics"),
            "results -> engine",
        ),
        (
            ("patternviz_widget.figures.knowledge", "patternviz_widget.widget.payload"),
            "figures -> widget",
        ),
        (("patternviz_widget.pipeline.setup", "patternviz_widget.study"), "pipeline -> study"),
    ],
)
def test_the_checks_would_see_a_violation(edge, why):
    assert upward({edge}), why
    a, b = edge
    (loop,) = cycles({(a, b), (b, a)})
    assert set(loop) == {a, b} and loop[0] == loop[-1]
