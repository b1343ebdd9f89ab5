"""A griffe extension for the API pages (mkdocs.yml: mkdocstrings ``extensions``).

The docstrings are written for ``help()`` and IDEs as well as for these pages. Two of their habits
read badly through the Google-style parser, so they are adjusted on the way in (the source is not
changed):

* Sphinx roles — ``:class:`~patternviz_widget.Study``` — become inline code (``Study``; the last
  component when the target starts with ``~``, as Sphinx shows it);
* an ``Example:`` section becomes ``Examples:``, so that its ``>>>`` lines render as code;
* an attribute documented by ``#:`` comment lines right above it (the widget's traits, module
  constants) gets those lines as its docstring, as Sphinx's autodoc reads them.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)\.?([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


def _role(m: re.Match) -> str:
    target = m.group(2)
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def _comment_above(attr: griffe.Attribute) -> str | None:
    try:
        lines = attr.lines_collection[attr.filepath]  # type: ignore[index]
    except (KeyError, TypeError, AttributeError):
        return None
    got, i = [], (attr.lineno or 0) - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        got.insert(0, lines[i].strip()[2:].strip())
        i -= 1
    return " ".join(got) or None


class DocstringHabits(griffe.Extension):
    def on_attribute(self, *, attr: griffe.Attribute, **kwargs) -> None:
        if attr.docstring is None:
            text = _comment_above(attr)
            if text:
                attr.docstring = griffe.Docstring(text, parent=attr)

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        doc = obj.docstring
        if doc is not None and doc.value:
            doc.value = _EXAMPLE.sub(r"\1Examples:", _ROLE.sub(_role, doc.value))
