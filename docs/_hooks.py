"""MkDocs hooks of the documentation site (see mkdocs.yml).

* The notebooks (``notebooks/*.ipynb``) and the benchmarks' raw JSON (``benchmarks/results/*.json``)
  live outside ``docs/``; they are added to the site from where they are, so there is one copy of
  each. The notebooks become pages through mkdocs-jupyter (not executed: stored outputs, if any).
* Formulas are written as TeX between ``$…$`` / ``$$…$$`` (pymdownx.arithmatex) and turned into
  MathML at build time (latex2mathml), which browsers draw natively: the site needs no JavaScript
  and nothing from a CDN, so it reads offline like the widget.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from latex2mathml.converter import convert
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files: Files, config) -> Files:
    for path in sorted(
        ROOT.glob("notebooks/*.ipynb")
    ):  # a real File: mkdocs-jupyter reads its path
        files.append(
            File(
                f"notebooks/{path.name}",
                str(ROOT),
                config["site_dir"],
                config["use_directory_urls"],
            )
        )
    for path in sorted(ROOT.glob("benchmarks/results/*.json")):  # beside the page that links them
        files.append(File.generated(config, f"benchmarks/{path.name}", abs_src_path=str(path)))
    return files


def _mathml(tex: str, display: str) -> str:
    return convert(html.unescape(tex).strip(), display=display)


def on_page_content(content: str, page, config, files) -> str:
    content = _BLOCK.sub(
        lambda m: f'<div class="math">{_mathml(m.group(1), "block")}</div>', content
    )
    return _INLINE.sub(lambda m: _mathml(m.group(1), "inline"), content)
