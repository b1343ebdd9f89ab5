"""``python -m patternviz_widget``: the command line (see :mod:`patternviz_widget.cli`)."""

from .cli import main

raise SystemExit(main())
