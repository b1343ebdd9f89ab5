"""Ask the page for a PNG of what a displayed widget shows, and wait for the answer.

The kernel handles widget messages only between cell executions, so a cell that waits for the page
would wait forever. ipykernel >= 7 can route a comm reply to a *subshell* (a second shell thread):
we create one private subshell per kernel and route the snapshot reply there, so the reply is
handled while the calling cell blocks. Elsewhere (no kernel thread is blocked: a background
thread, an async cell) a plain wait works.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from ..errors import WidgetTimeoutError

_SUBSHELL: dict[int, str] = {}


def _kernel() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None)


def _private_subshell(kernel: Any) -> str | None:
    """Id of a subshell owned by us (created once per kernel), or None when unsupported."""
    if id(kernel) in _SUBSHELL:
        return _SUBSHELL[id(kernel)]
    thread = getattr(kernel, "shell_channel_thread", None)
    if not getattr(kernel, "_supports_kernel_subshells", False) or thread is None:
        return None
    made = threading.Event()
    box: dict[str, Any] = {}

    def create() -> None:
        try:
            box["id"] = thread.manager._create_subshell()
        except Exception as e:  # noqa: BLE001 - fall back to a plain wait
            box["error"] = e
        finally:
            made.set()

    thread.io_loop.add_callback(create)
    if not made.wait(5.0) or "id" not in box:
        return None
    _SUBSHELL[id(kernel)] = box["id"]
    return box["id"]


def receive(widget: Any, content: dict[str, Any], buffers: list) -> None:
    """Store a snapshot reply from the page and wake the waiter."""
    slot = widget._snapshots.get(str(content.get("id")))
    if slot is None:
        return
    if content.get("error"):
        slot["error"] = str(content["error"])
    elif buffers:
        slot["png"] = bytes(buffers[0])
    else:
        slot["error"] = "the page sent no image"
    slot["event"].set()


def request(widget: Any, timeout: float = 10.0) -> bytes:
    """Return PNG bytes of the widget's current picture, or raise WidgetTimeoutError."""
    req_id = f"snap-{uuid.uuid4().hex}"
    slot: dict[str, Any] = {"event": threading.Event()}
    widget._snapshots[req_id] = slot
    kernel = _kernel()
    comm = getattr(widget, "comm", None)
    blocked = kernel is not None and threading.current_thread() is threading.main_thread()
    try:
        if comm is None or kernel is None:
            raise WidgetTimeoutError(
                "A snapshot needs the widget displayed in a live notebook page (no kernel here). "
                "Use pv.figures (matplotlib) for figures without a browser."
            )
        subshell = _private_subshell(kernel) if blocked else None
        widget.send({"kind": "pv:snapshot", "id": req_id})
        if subshell is not None and hasattr(comm, "_reply_subshell_ids"):
            with comm._reply_subshell_lock:
                comm._reply_subshell_ids[req_id] = subshell
        elif blocked:
            raise WidgetTimeoutError(
                "This kernel cannot receive the page's answer while a cell runs (needs ipykernel >= 7 "
                "with subshells). Call it from a thread, or display the widget and export with pv.figures."
            )
        if not slot["event"].wait(timeout):
            raise WidgetTimeoutError(
                f"No snapshot from the page within {timeout:g} s. Is the widget displayed in an open "
                "notebook tab? Display it (last line of a cell) and try again."
            )
        if "error" in slot:
            raise WidgetTimeoutError(f"The page could not draw a snapshot: {slot['error']}")
        return slot["png"]
    finally:
        widget._snapshots.pop(req_id, None)
