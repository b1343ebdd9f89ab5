"""Follow a study file that another process (a training run with a tracker) keeps rewriting.

``pv.Study.watch(path)`` returns a model-less study whose store picks up new records as they land in
the file; a widget showing that study updates through ``store.observe``, as it does for a tracker
in the same kernel.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, StudyFileError

if TYPE_CHECKING:  # pragma: no cover
    from ..results import Key, ResultStore

__all__ = ["StudyWatcher"]


class StudyWatcher:
    """Poll a study file and copy the records it gains into ``store``.

    The writer replaces the file atomically (temp file + ``os.replace``), so every read sees one
    whole version. A change is noticed from the file's modification time and size; then the file is
    loaded and every (key, kind) the store does not hold yet is put into it, which notifies the
    store's observers (the widget). Records already held are left as they are.

    Args:
        path: the study file.
        store: the store to fill (usually ``Study.load(path).store``).
        interval: seconds between polls of the background thread (:meth:`start`).

    Example:
        >>> study = pv.Study.watch("runs/x.pvz")   # doctest: +SKIP
        >>> pv.PatternViz(study)                    # doctest: +SKIP
        >>> study.watcher.stop()                    # doctest: +SKIP
    """

    def __init__(self, path: str | Path, store: ResultStore, interval: float = 1.0) -> None:
        self.path = Path(path)
        self.store = store
        try:
            self.interval = float(interval)
        except (TypeError, ValueError):
            raise InputError(
                f"interval must be a number of seconds > 0, got {interval!r}."
            ) from None
        if not self.interval > 0:
            raise InputError(f"interval must be > 0 seconds, got {self.interval}.")
        self._seen: tuple[int, int] | None = self._stamp()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: Exception | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self) -> list[Key]:
        """Load the file if it changed since the last poll; return the keys that were added."""
        from ..results.io import load_store

        stamp = self._stamp()
        if stamp is None or stamp == self._seen:
            return []
        try:
            fresh = load_store(self.path)
        except StudyFileError as e:  # a half-copied file from a non-atomic writer: try next time
            self.last_error = e
            return []
        self._seen = stamp
        self.last_error = None
        if fresh.probe is not None and self.store.probe is None:
            self.store.probe = fresh.probe
        self.store.meta.update(fresh.meta)
        added = []
        for (key, _kind), record in fresh.items_with_kind():
            if not self.store.has(key, type(record)):
                self.store.put(key, record)
                added.append(key)
        return sorted(set(added))

    def start(self) -> StudyWatcher:
        """Poll every ``interval`` seconds in a daemon thread until :meth:`stop`; return self."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.poll()
                except Exception as e:  # keep watching; the error is kept for the user to read
                    self.last_error = e

        self._thread = threading.Thread(target=loop, name=f"pv-watch:{self.path.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background thread (a no-op when it is not running)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, 2 * self.interval))
        self._thread = None

    @property
    def running(self) -> bool:
        """Whether the background thread is polling."""
        return self._thread is not None and self._thread.is_alive()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"StudyWatcher({str(self.path)!r}, every {self.interval:g} s, {state})"
