"""Exceptions raised by patternviz-widget. Every message names the fix."""

from __future__ import annotations


class PatternVizError(Exception):
    """Base class of every error this package raises on purpose."""


class InputError(PatternVizError, ValueError):
    """Bad user input: wrong shapes, unknown names, out-of-range values."""


class LayerNotFoundError(InputError, KeyError):
    """A layer name that ``model.named_modules()`` does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CaptureError(PatternVizError, RuntimeError):
    """The model or a hooked layer produced something we cannot use."""


class DistributedCaptureError(CaptureError):
    """A capture sharded over a ``torch.distributed`` group failed on some rank (an error, a dead
    or hung peer); raised on every rank, with nothing stored (docs: the distributed guide)."""


class NotFittedError(PatternVizError, RuntimeError):
    """A result was asked for before the step that produces it ran."""


class ResultNotFoundError(InputError, NotFittedError):
    """No result at the key a view or a call names (an epoch or layer without that record); the
    message lists what exists and names the step that makes the missing one. Both an InputError
    (the name asked for) and a NotFittedError (the step not run)."""


class StudyFileError(PatternVizError, OSError):
    """A study file is corrupt, truncated, from a newer version, or not ours."""


class BundleMissingError(PatternVizError, ImportError):
    """The widget's JavaScript bundle has not been built."""


class WidgetTimeoutError(PatternVizError, TimeoutError):
    """The page showing a widget did not answer in time (not displayed, or closed)."""
