"""Emergence for runs that already happened: snapshot a study from saved checkpoints."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from patternviz_widget.errors import InputError, StudyFileError

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState
    from patternviz_widget.pipeline.tracking import Snapshot, Tracker

__all__ = ["capture_checkpoints", "load_state_dict"]

# keys under which training scripts commonly nest the model's weights
_NESTED = ("state_dict", "model_state_dict", "model", "net", "weights")


def load_state_dict(
    source: str | Path | Mapping[str, Any], device: torch.device | str = "cpu"
) -> dict:
    """Return a model state dict from a checkpoint file or a mapping.

    Files are read with ``torch.load(path, weights_only=True, map_location=device)`` (no arbitrary
    unpickling). A checkpoint that nests the weights under ``"state_dict"``, ``"model_state_dict"``,
    ``"model"``, ``"net"`` or ``"weights"`` (Lightning, common scripts) is unwrapped.

    Args:
        source: a path to a ``.pt``/``.pth``/``.ckpt`` file, or a state dict.
        device: where tensors are mapped while loading.

    Returns:
        dict parameter/buffer name -> tensor.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(
                f"Checkpoint file not found: {str(path)!r}. Check the path (cwd: {Path.cwd()})."
            )
        try:
            state = torch.load(path, weights_only=True, map_location=device)
        except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise StudyFileError(
                f"Could not read checkpoint {str(path)!r} with torch.load(weights_only=True): {e}. "
                "Save checkpoints with torch.save(model.state_dict(), path)."
            ) from e
    elif isinstance(source, Mapping):
        state = source
    else:
        raise InputError(
            "capture_checkpoints takes checkpoint paths or state dicts (model.state_dict()), got "
            f"{type(source).__name__}."
        )
    for key in _NESTED:
        inner = state.get(key) if isinstance(state, Mapping) else None
        if isinstance(inner, Mapping) and inner and all(torch.is_tensor(v) for v in inner.values()):
            state = inner
            break
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise InputError(
            "The checkpoint is not a state dict (a mapping of parameter names to tensors). "
            "Save it with torch.save(model.state_dict(), path)."
        )
    return dict(state)


def _check_keys(model: torch.nn.Module, state: Mapping[str, Any], name: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        hint = ""
        prefixes = {k.split(".", 1)[0] for k in unexpected}
        if unexpected and len(prefixes) == 1 and all("." in k for k in unexpected):
            hint = f" All unexpected keys start with {next(iter(prefixes))!r}.: strip that prefix."
        raise InputError(
            f"Checkpoint {name} does not match the study's model. "
            f"Missing keys ({len(missing)}): {_listing(missing)}. "
            f"Unexpected keys ({len(unexpected)}): {_listing(unexpected)}.{hint}"
        )
    bad = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if torch.is_tensor(state[k]) and tuple(state[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise InputError(
            f"Checkpoint {name} has tensors of other shapes than the study's model: "
            f"{_listing(bad)}. "
            "Was it saved from a different architecture or number of classes?"
        )


def _strip_wrapper_prefixes(model: torch.nn.Module, state: dict) -> dict:
    """Drop the ``module.`` / ``_orig_mod.`` prefix that DDP, DataParallel and torch.compile put
    before every key of their state dict when the model's own keys lack it (a study hooks the
    plain module inside such wrappers)."""
    own = list(model.state_dict())
    changed = True
    while changed and state:
        changed = False
        for prefix in ("module.", "_orig_mod."):
            if all(k.startswith(prefix) for k in state) and not any(
                k.startswith(prefix) for k in own
            ):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _listing(items: list[str], n: int = 6) -> str:
    if not items:
        return "none"
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (f" … (+{len(items) - n})" if len(items) > n else "")


def capture_checkpoints(
    state: StudyState,
    sources: Sequence[str | Path | Mapping[str, Any]],
    epochs: Sequence[int] | None = None,
    tracker: Tracker | None = None,
) -> list[Snapshot]:
    """Snapshot ``study`` once per checkpoint, in order; return the snapshots.

    Each checkpoint's weights are loaded into ``study.model`` and the tracker's snapshot runs
    (capture on the fixed probe set, embedding warm-started and aligned to the previous checkpoint,
    knowledge points, autosave when the tracker has a path). The model's original weights and its
    train/eval mode are restored afterwards, also when something fails.

    Args:
        study: a study with a model of the checkpoints' architecture.
        sources: checkpoint paths (read with ``torch.load(weights_only=True)``) or state dicts.
        epochs: the epoch label of each checkpoint (same length, increasing); None numbers them
            0, 1, 2, ...
        tracker: the tracker doing the snapshots (``study.tracker()`` when None).

    Returns:
        list of :class:`~patternviz_widget.pipeline.tracking.Snapshot`, one per checkpoint.
    """
    from patternviz_widget.pipeline.tracking import Tracker

    if isinstance(sources, (str, Path, Mapping)):
        sources = [sources]  # type: ignore[list-item]
    sources = list(sources)
    if not sources:
        raise InputError(
            "capture_checkpoints got no checkpoints. Pass a list of paths or state dicts."
        )
    if epochs is None:
        epochs = list(range(len(sources)))
    epochs = [int(e) for e in epochs]
    if len(epochs) != len(sources):
        raise InputError(
            f"Got {len(sources)} checkpoints but {len(epochs)} epochs; give one per checkpoint."
        )
    if any(e < 0 for e in epochs) or any(b <= a for a, b in zip(epochs, epochs[1:])):
        raise InputError(
            "epochs must be increasing integers >= 0 (the order the embedding is aligned in); "
            f"got {epochs}."
        )
    model = state.model
    if model is None:
        raise InputError(
            "This study has no model (it was loaded from a file); use pv.Study(model, data, ...)."
        )
    tracker = tracker if tracker is not None else Tracker(state)
    device = state.device or "cpu"
    # read and check every checkpoint before touching the model: a bad file fails fast
    states = []
    for i, src in enumerate(sources):
        name = repr(str(src)) if isinstance(src, (str, Path)) else f"#{i}"
        weights = _strip_wrapper_prefixes(model, load_state_dict(src, device=device))
        _check_keys(model, weights, name)
        states.append(weights)
    original = copy.deepcopy(model.state_dict())
    was_training = model.training
    snaps = []
    try:
        for weights, epoch in zip(states, epochs):
            model.load_state_dict(weights)
            snaps.append(tracker.snapshot(epoch))
    finally:
        model.load_state_dict(original)
        model.train(was_training)
    return snaps
