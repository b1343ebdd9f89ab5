"""A griffe extension for the API pages (mkdocs.yml: mkdocstrings ``extensions``).

The docstrings are written for ``help()`` and IDEs as well as for these pages. Two of their habits
read badly through the Google-style parser, so they are adjusted on the way in (the source is not
changed):

* Sphinx roles — ``:class:`~patternviz_widget.Study``` — become inline code (``Study``; the last
  component when the target starts with ``~``, as Sphinx shows it);
* an ``Example:`` section becomes ``Examples:``, so that its ``>>>`` lines render as code.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)\.?([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


def _role(m: re.Match) -> str:
    target = m.group(2)
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


class DocstringHabits(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        doc = obj.docstring
        if doc is not None and doc.value:
            doc.value = _EXAMPLE.sub(r"\1Examples:", _ROLE.sub(_role, doc.value))
