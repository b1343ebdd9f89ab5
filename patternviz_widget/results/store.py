"""ResultStore: the one place engine results live and the widget reads from."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .._validate import did_you_mean
from ..errors import NotFittedError
from .keys import SAMPLE, Key
from .records import ProbeRecord, Record

R = TypeVar("R", bound=Record)


class ResultStore:
    """Records keyed by (:class:`Key`, record kind). Thread-safe for one writer + readers.

    ``probe`` holds the study's probe images (thumbnails, labels, masks); ``meta`` holds small
    JSON-able study settings (layers, class names, hyper-parameters). Observers registered with
    :meth:`observe` are called with the key after every :meth:`put` (the widget uses it for live
    updates while training runs).
    """

    def __init__(self) -> None:
        self._records: dict[tuple[Key, str], Record] = {}
        self.probe: ProbeRecord | None = None
        self.meta: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._observers: list[Callable[[Key], None]] = []
        #: ``{real path: generation}`` of the study files this store last saved or loaded (the
        #: save-conflict check of :func:`~patternviz_widget.results.io.save_store`)
        self.file_generations: dict[str, str] = {}

    # -- writing ------------------------------------------------------------------------------
    def put(self, key: Key, record: Record) -> None:
        """Store ``record`` under ``key`` (replacing a record of the same kind there)."""
        with self._lock:
            self._records[(key, type(record).__name__)] = record
        for fn in list(self._observers):
            fn(key)

    def drop(self, key: Key, kind: type[Record] | str | None = None, notify: bool = False) -> None:
        """Remove the records of ``key`` (of one kind, given as a class or its name, or all);
        ``notify`` calls the observers with ``key`` afterwards, as :meth:`put` does."""
        name = kind if isinstance(kind, str) or kind is None else kind.__name__
        with self._lock:
            gone = [k for k in self._records if k[0] == key and (name is None or k[1] == name)]
            for k in gone:
                del self._records[k]
        if notify and gone:
            for fn in list(self._observers):
                fn(key)

    def observe(self, fn: Callable[[Key], None]) -> Callable[[], None]:
        """Call ``fn(key)`` after every put; returns a function that unsubscribes."""
        self._observers.append(fn)
        return lambda: self._observers.remove(fn) if fn in self._observers else None

    # -- reading ------------------------------------------------------------------------------
    def has(self, key: Key, kind: type[Record]) -> bool:
        return (key, kind.__name__) in self._records

    def get(self, key: Key, kind: type[R]) -> R:
        """Return the record of ``kind`` under ``key``, or raise naming what exists."""
        try:
            return self._records[(key, kind.__name__)]  # type: ignore[return-value]
        except KeyError:
            have = sorted({str(k) for k, n in self._records if n == kind.__name__})
            raise NotFittedError(
                f"No {kind.__name__} for {key}. "
                + (
                    did_you_mean(str(key), have, "key")
                    if have
                    else "Run the step that makes it first (capture() / embed())."
                )
            ) from None

    def find(self, kind: type[R] | None = None, **match: object) -> list[Key]:
        """Keys holding a record of ``kind`` whose fields equal ``match`` (e.g. layer="conv3"), sorted."""
        with self._lock:
            out = {
                k
                for k, n in self._records
                if (kind is None or n == kind.__name__)
                and all(getattr(k, f) == v for f, v in match.items())
            }
        return sorted(out)

    def items(self) -> Iterator[tuple[Key, Record]]:
        with self._lock:
            snapshot = list(self._records.items())
        for (k, _), rec in snapshot:
            yield k, rec

    def models(self) -> list[str]:
        return sorted({k.model for k, _ in self._records})

    def conditions(self, model: str | None = None) -> list[str]:
        return sorted({k.condition for k, _ in self._records if model in (None, k.model)})

    def epochs(self, model: str | None = None, condition: str | None = None) -> list[int]:
        return sorted(
            {
                k.epoch
                for k, _ in self._records
                if model in (None, k.model) and condition in (None, k.condition)
            }
        )

    def layers(self, model: str | None = None) -> list[str]:
        """Captured region layers in capture order (``meta['layers']``), then any others."""
        found = {
            k.layer for k, _ in self._records if k.layer != SAMPLE and model in (None, k.model)
        }
        order = [name for name in self.meta.get("layers", []) if name in found]
        return order + sorted(found - set(order))

    def catalog(self) -> dict[str, Any]:
        """Small JSON summary: keys with record kinds and row counts (for the widget)."""
        entries: dict[str, dict[str, int]] = {}
        for (k, n), rec in self.items_with_kind():
            first = next(iter(rec.split()[0].values()), None)
            entries.setdefault(str(k), {})[n] = (
                int(first.shape[0]) if first is not None and first.ndim else 0
            )
        return {
            "models": self.models(),
            "conditions": self.conditions(),
            "epochs": self.epochs(),
            "layers": self.layers(),
            "class_names": list(self.probe.class_names) if self.probe is not None else [],
            "entries": entries,
        }

    def items_with_kind(self) -> Iterator[tuple[tuple[Key, str], Record]]:
        with self._lock:
            snapshot = list(self._records.items())
        yield from snapshot

    def __len__(self) -> int:
        return len(self._records)
