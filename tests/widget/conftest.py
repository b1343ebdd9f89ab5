"""Widget test fixtures: a synthetic store with known geometry, and a widget over it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from page_msgs import js_custom, js_update  # noqa: E402,F401  (tests import them from page_msgs)
from synth import make_store  # noqa: E402


@pytest.fixture
def store():
    """3 layers × 3 epochs × (clean, adversarial), 12 images, 4×4 regions each."""
    return make_store(conditions=("clean", "adversarial"))


@pytest.fixture
def widget(store):
    import patternviz_widget as pv

    w = pv.PatternViz(store)
    yield w
    w.close()


class Outbox:
    """Records what the widget sends to the page (the transport, not the widget, is replaced)."""

    def __init__(self, w):
        self.sent: list[tuple[dict, list]] = []
        w.send = lambda content, buffers=None: self.sent.append((content, list(buffers or [])))

    def clear(self):
        self.sent.clear()


@pytest.fixture
def outbox(widget):
    return Outbox(widget)
