"""The documentation: every document the repository mentions is in it, and the site builds strictly
(``mkdocs build --strict``, as ``scripts/docs`` runs it) with an API page for every public name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import patternviz_widget as pv

ROOT = Path(__file__).resolve().parents[1]
#: planning documents that live outside the repository: citing them sends readers nowhere
OUTSIDE = tuple(f"{name}.md" for name in ("PAPER", "DESIGN", "STYLE"))
#: an upper-case Markdown file name (README.md, RESULTS.md, ...), as documents are named here
DOC_NAME = re.compile(r"(?<![\w.-])([A-Z][A-Z0-9_-]*\.md)\b")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def test_no_tracked_file_mentions_a_document_that_is_not_in_the_repository():
    files = _tracked()
    present = {Path(p).name for p in files}
    me = Path(__file__).resolve().relative_to(ROOT).as_posix()
    missing: dict[str, list[str]] = {}
    for rel in files:
        path = ROOT / rel
        if rel == me or path.is_symlink() or not path.is_file():
            continue
        raw = path.read_bytes()
        if b"\0" in raw[:4096]:  # binary (images, ...)
            continue
        text = raw.decode("utf-8", errors="replace")
        names = set(DOC_NAME.findall(text)) | {n for n in OUTSIDE if n in text}
        for name in sorted(n for n in names if n not in present):
            missing.setdefault(name, []).append(rel)
    assert not missing, (
        "mentions of documents that are not in the repository (point to the docs "
        "site or to the paper — Li, Wang, Zhang, NeurIPS 2021, section/equation — instead):\n"
        + "\n".join(
            f"  {name}: {', '.join(where[:12])}{' …' if len(where) > 12 else ''}"
            for name, where in sorted(missing.items())
        )
    )


def _anchors_for(name: str) -> set[str]:
    """The ids under which the API pages may document ``pv.<name>``: its public path, its
    definition's path, or the path of a package above the definition that re-exports it."""
    ids = {f"patternviz_widget.{name}"}
    lazy = getattr(pv, "_LAZY", {}).get(name)  # imported on first use: read where it lives instead
    if lazy is not None:
        module, attr = lazy
        return ids | {module if attr is None else f"{module}.{attr}"}
    obj = getattr(pv, name)
    if hasattr(obj, "__path__") or type(obj).__name__ == "module":
        ids.add(obj.__name__)
        return ids
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module and qual:
        parts = module.split(".")
        ids |= {".".join(parts[:k] + [qual]) for k in range(1, len(parts) + 1)}
    return ids


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built exactly as ``scripts/docs`` builds it (strict), into a temp folder."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail(
            "mkdocs is not installed: `pip install -e '.[docs]'` (scripts/test installs it)."
        )
    if not (ROOT / "REPRODUCTION.md").is_file():
        pytest.fail(
            "REPRODUCTION.md is missing at the repository root (the Reproduction page "
            "includes it): run `python -m patternviz_widget reproduce` and put the "
            "REPRODUCTION.md it writes there."
        )
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, (
        f"mkdocs build --strict failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    )
    return out


def test_strict_build_renders_every_page_with_its_formulas(site: Path):
    for page in (
        "index",
        "getting-started",
        "method",
        "reproduction",
        "guides/index",
        "guides/emergence",
        "benchmarks/index",
        "notebooks/01_quickstart",
        "api/index",
    ):
        assert (site / f"{page}.html").is_file(), f"{page}.html was not built"
    method = (site / "method.html").read_text()
    assert "Where we differ from the paper" in method
    assert method.count("<math") > 20, "the formulas were not turned into MathML"
    assert "arithmatex" not in method, "a formula was left as raw TeX"
    assert (site / "assets" / "widget.png").is_file(), "the widget screenshot is missing"
    assert (site / "benchmarks" / "embed.json").is_file(), (
        "the benchmarks' raw JSON is not published"
    )
    remote = re.compile(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.I)
    online = [
        p.relative_to(site).as_posix() for p in site.rglob("*.html") if remote.search(p.read_text())
    ]
    assert not online, f"pages that load scripts, styles or images from the network: {online[:5]}"


def test_api_pages_cover_every_public_name(site: Path):
    html = "".join(p.read_text() for p in (site / "api").glob("*.html"))
    ids = set(re.findall(r'id="(patternviz_widget[\w.]*)"', html))
    missing = [name for name in pv.__all__ if not (_anchors_for(name) & ids)]
    assert not missing, (
        f"pv.__all__ names without an API entry (add a `::: ...` to docs/api/): {missing}"
    )
