"""Messages as the page sends them, delivered to a widget without a browser."""

from __future__ import annotations


def js_custom(w, content: dict, buffers: list[bytes] | None = None) -> None:
    """Deliver a custom message from the page."""
    w._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                   "buffers": [memoryview(b) for b in buffers or []]})  # fmt: skip


def js_update(w, state: dict, buffers: dict[str, bytes] | None = None) -> None:
    """Deliver an 'update' message exactly as the page sends it (binary traits as buffers)."""
    buffers = buffers or {}
    msg = {
        "content": {
            "data": {"method": "update", "state": state, "buffer_paths": [[k] for k in buffers]}
        },
        "buffers": [memoryview(b) for b in buffers.values()],
    }
    w._handle_msg(msg)
