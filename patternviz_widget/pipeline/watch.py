"""Follow a study file that another process (a training run with a tracker) keeps rewriting.

``pv.Study.watch(path)`` returns a model-less study whose store follows the file: every new version
of the file replaces the store's contents whole (records, probe set, meta), so a re-run that
rewrites the file, or re-snapshots an epoch, never leaves the old run's records mixed with the new
one's. A widget showing that study updates through ``store.observe``, as it does for a tracker in
the same kernel.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from patternviz_widget.errors import InputError, StudyFileError

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.results import Key, ResultStore
    from patternviz_widget.results.records import Record

__all__ = ["StudyWatcher"]


class StudyWatcher:
    """Poll a study file and make ``store`` hold what the file holds.

    The writer replaces the file atomically (temp file + ``os.replace``), so every read sees one
    whole version. A change is noticed from the file's modification time and size; then the file is
    loaded and the store reloaded whole from it: ``meta`` and ``probe`` are replaced, records the
    file no longer holds are dropped, and records that are new or differ from the held ones (a
    re-snapshotted epoch, a re-run with other settings) are put. Observers (the widget) hear about
    every key that was put or dropped; records equal to the held ones are left alone and make no
    noise. The file need not exist yet: the first version that appears is loaded.

    Args:
        path: the study file.
        store: the store to fill (usually ``Study.load(path).store``).
        interval: seconds between polls of the background thread (:meth:`start`).
        on_reload: called with no arguments after each reload (``Study.watch`` refreshes the
            study's layers, class names, ... from the new ``meta``).

    Example:
        >>> study = pv.Study.watch("runs/x.pvz")   # doctest: +SKIP
        >>> pv.PatternViz(study)                    # doctest: +SKIP
        >>> study.watcher.stop()                    # doctest: +SKIP
    """

    def __init__(
        self, path: str | Path, store: ResultStore, interval: float = 1.0,
        on_reload: Callable[[], Any] | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.store = store
        self.on_reload = on_reload
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
        """Reload the file if it changed since the last poll; return the keys put or dropped."""
        from patternviz_widget.results.io import load_store

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
        changed = replace_contents(self.store, fresh)
        if self.on_reload is not None:
            self.on_reload()
        return changed

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


def replace_contents(store: ResultStore, fresh: ResultStore) -> list[Key]:
    """Make ``store`` hold exactly what ``fresh`` holds; return the keys put or dropped (sorted).

    ``meta`` and ``probe`` are replaced first, so observers called for the records see the new
    probe set (class names, labels); unchanged records are kept as they are, without notifying.
    """
    old = dict(store.items_with_kind())
    new = dict(fresh.items_with_kind())
    store.meta.clear()
    store.meta.update(fresh.meta)
    if not same_record(store.probe, fresh.probe):
        store.probe = fresh.probe
    store.file_generations.update(fresh.file_generations)
    touched: set[Key] = set()
    for key, kind in [k for k in old if k not in new]:
        store.drop(key, kind, notify=True)
        touched.add(key)
    for (key, kind), rec in new.items():
        if not same_record(old.get((key, kind)), rec):
            store.put(key, rec)
            touched.add(key)
    return sorted(touched)


def same_record(a: Record | None, b: Record | None) -> bool:
    """True when two records are of one type with byte-identical arrays and equal fields."""
    if a is None or b is None or type(a) is not type(b):
        return a is None and b is None
    arrays_a, meta_a = a.split()
    arrays_b, meta_b = b.split()
    if arrays_a.keys() != arrays_b.keys():
        return False
    for name, x in arrays_a.items():
        y = arrays_b[name]
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.nbytes and memoryview(np.ascontiguousarray(x)).cast("B") != memoryview(
            np.ascontiguousarray(y)
        ).cast("B"):
            return False
    try:  # JSON text: NaN equals NaN, tuples equal lists as in the file
        return json.dumps(meta_a, sort_keys=True, default=str) == json.dumps(
            meta_b, sort_keys=True, default=str
        )
    except (TypeError, ValueError):
        return meta_a == meta_b
