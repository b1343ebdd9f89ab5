"""Shared input checks. Each raises an :class:`~patternviz_widget.errors.InputError` naming the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .errors import InputError


def close_names(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``name`` (difflib), best first."""
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)
    if not found:  # fall back to substring matches, e.g. "conv3" in "features.conv3.0"
        found = [c for c in candidates if name and name in c][:n]
    return found


def did_you_mean(name: str, candidates: Iterable[str], what: str = "name") -> str:
    """Return a sentence ``Closest: 'a', 'b'.`` (or the first few valid names)."""
    candidates = list(candidates)
    close = close_names(name, candidates)
    if close:
        return "Closest: " + ", ".join(repr(c) for c in close) + "."
    shown = ", ".join(repr(c) for c in candidates[:8])
    more = " …" if len(candidates) > 8 else ""
    return f"Valid {what}s: {shown}{more}." if candidates else f"There is no {what} to choose from."


def check_choice(value: str, choices: Iterable[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise an error listing them."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"Unknown {what} {value!r}. {did_you_mean(str(value), choices, what)}")
    return value


def check_positive_int(value: object, what: str, minimum: int = 1) -> int:
    """Return ``value`` as an int ``>= minimum`` or raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise InputError(f"{what} must be >= {minimum}, got {value}.")
    return value


def check_probability(value: object, what: str) -> float:
    """Return ``value`` as a float in [0, 1] or raise naming the argument."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number in [0, 1], got {value!r}.") from None
    if not 0.0 <= v <= 1.0:
        raise InputError(f"{what} must be in [0, 1], got {v}.")
    return v
