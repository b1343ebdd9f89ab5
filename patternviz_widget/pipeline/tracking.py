"""Emergence over training: snapshot a study inside any training loop (paper Sec. 3.2 and 3.4).

A :class:`Tracker` captures the study's layers on its fixed probe set at chosen epochs, fits the
embedding of the new epoch (warm start + Procrustes alignment live in ``Study.embed``), counts the
knowledge points and, when given a path, rewrites the study file atomically (temp file +
``os.replace``), so killing the process loses at most the snapshot in progress.

:class:`TrackerCallback` plugs a tracker into PyTorch Lightning (``on_train_epoch_end``) or into
any loop that calls a function per epoch (``pv.models.train(..., on_epoch_end=callback)``).
:func:`capture_checkpoints` does the same for runs that already happened.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from patternviz_widget._validate import check_positive_int
from patternviz_widget.defaults import THRESHOLD
from patternviz_widget.errors import DistributedCaptureError, InputError, NotFittedError
from patternviz_widget.pipeline import distributed as dist
from patternviz_widget.pipeline.capture import run_capture
from patternviz_widget.pipeline.embed import embed_study, study_knowledge_points
from patternviz_widget.pipeline.state import StudyState, save_state

if TYPE_CHECKING:  # pragma: no cover
    from patternviz_widget.pipeline.state import StudyState

__all__ = ["Snapshot", "Tracker", "TrackerCallback", "epoch_displacement"]


@dataclass
class Snapshot:
    """What one :meth:`Tracker.snapshot` did: the epoch, the mean knowledge points per image of each
    layer (``kp_total``, ``kp_reliable``; empty when the embedding was skipped) and the seconds
    spent in each phase (``seconds``: capture, embed, knowledge, save)."""

    epoch: int
    kp_total: dict[str, float] = field(default_factory=dict)
    kp_reliable: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    path: str | None = None


@contextlib.contextmanager
def preserved_rng(device: torch.device | None) -> Iterator[None]:
    """Run the block without disturbing the global RNGs of torch (CPU and CUDA), numpy and random.

    Tracking must not change the training it watches: a run with a tracker draws the same batches
    and dropout masks as a run without one.
    """
    devices = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    np_state = np.random.get_state()
    py_state = random.getstate()
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


class Tracker:
    """Snapshots of a :class:`~patternviz_widget.Study` over training; made by ``study.tracker()``.

    Each snapshot captures the chosen layers on the study's fixed probe images (the same images and
    the same sampled regions at every epoch, so row m of a layer is the same image cell throughout),
    fits the paper's embedding for that epoch (warm-started from the mean of the last ≤3 projections
    and rotated onto the previous epoch, paper Sec. 3.2) and counts knowledge points (τ, paper Sec. 3.4).

    Args:
        study: the study to fill; its ``model`` is the one being trained.
        every: snapshot on every ``every``-th :meth:`step` (1 = every epoch).
        path: a study file rewritten atomically after every snapshot, or None to keep results in
            memory only (``study.save(path)`` later).
        layers: a subset of ``study.layers`` to track, or None for all of them.
        embed: fit the embedding and count knowledge points at every snapshot; False only captures
            (``study.embed()`` can be run afterwards).
        condition: the result key's condition ("clean").
        threshold: τ for the knowledge-point counts in :attr:`history` (paper: 0.4).
        embed_kwargs: hyper-parameters passed on to ``study.embed`` (e.g. ``steps=...``).
        process_group: inside a ``torchrun`` job, the ``torch.distributed`` group each capture is
            sharded over (None: the default group when one is initialised; False: this process
            alone). Every rank calls :meth:`snapshot`; rank 0 embeds and writes ``path``, and every
            rank gets rank 0's :class:`Snapshot` (:mod:`patternviz_widget.pipeline.distributed`).

    Example:
        >>> tracker = study.tracker(every=1, path="runs/x.pvz")  # doctest: +SKIP
        >>> tracker.snapshot(0)                                 # doctest: +SKIP
        >>> for epoch in range(10):                             # doctest: +SKIP
        ...     train_one_epoch(model)
        ...     tracker.step()                                  # epoch 1, 2, ... 10
    """

    def __init__(
        self,
        state: StudyState,
        every: int = 1,
        path: str | Path | None = None,
        layers: list[str] | None = None,
        embed: bool = True,
        condition: str = "clean",
        threshold: float = THRESHOLD,
        embed_kwargs: dict[str, Any] | None = None,
        process_group: Any = None,
    ) -> None:
        if state.model is None:
            raise NotFittedError(
                "This study has no model (it was loaded from a file). Track training with a study "
                "made from the model: pv.Study(model, data, layers=...).tracker()."
            )
        self.state = state
        self.every = check_positive_int(every, "every")
        self.path = Path(path) if path is not None else None
        from patternviz_widget.pipeline.distributed import plain_args

        self.layers = _check_layers(state, plain_args(state, None, layers)[1])
        self.process_group = process_group
        self.embed = bool(embed)
        self.condition = str(condition)
        self.threshold = float(threshold)
        self.embed_kwargs = dict(embed_kwargs or {})
        self.history: list[Snapshot] = []
        self._last_epoch = 0
        self._steps = 0
        if self.path is not None and _writes(
            process_group
        ):  # fails here, not after the first capture
            from patternviz_widget.results.io import check_writable

            check_writable(self.path)

    # -- the two verbs ------------------------------------------------------------------------
    def step(self) -> Snapshot | None:
        """Call once per finished epoch; return the snapshot taken, or None on skipped epochs.

        The epoch number counts on from the last snapshot (``snapshot(0)`` before training, then
        ``step()`` after each epoch gives epochs 1, 2, ...). A snapshot is taken when the epoch is
        a multiple of ``every``.
        """
        self._steps += 1
        epoch = self._last_epoch + 1
        self._last_epoch = epoch
        if epoch % self.every != 0:
            return None
        return self.snapshot(epoch)

    def snapshot(self, epoch: int | None = None) -> Snapshot:
        """Capture, embed, count and save the model's current state as ``epoch``; return a summary.

        Args:
            epoch: the epoch label of the results (an int ≥ 0); None takes the epoch after the
                last one. Snapshotting an epoch again replaces its results.

        Returns:
            a :class:`Snapshot` (also appended to :attr:`history`).
        """
        if epoch is None:
            epoch = self._last_epoch + (1 if self.history else 0)
        epoch = check_positive_int(epoch, "epoch", minimum=0)
        self._last_epoch = epoch
        from patternviz_widget.pipeline.distributed import group_rank, resolve_group

        snap = Snapshot(epoch=epoch)
        group = resolve_group(self.process_group)
        self._capture(snap, group if group is not None else False)  # a failure raises on every rank
        if group is None:
            self._finish(snap)
        else:  # rank 0 embeds and saves, then every rank gets its snapshot (or its error)
            error = None
            if group_rank(group)[0] == 0:
                try:
                    self._finish(snap)
                except Exception as e:
                    error = e
            snap = share_snapshot(group, snap, error)
        self.history.append(snap)
        return snap

    def _capture(self, snap: Snapshot, group: Any) -> None:
        state = self.state
        with preserved_rng(state.device):
            t0 = time.perf_counter()
            _capture_layers(
                state, self.layers, epoch=snap.epoch, condition=self.condition, process_group=group
            )
            snap.seconds["capture"] = time.perf_counter() - t0

    def _finish(self, snap: Snapshot) -> None:
        """Embed, count knowledge points and save ``snap.epoch``."""
        state, epoch = self.state, snap.epoch
        with preserved_rng(state.device):
            t1 = time.perf_counter()
            if self.embed:
                keys = self._keys(epoch)
                embed_study(state, keys=keys, progress=False, **self.embed_kwargs)
                t2 = time.perf_counter()
                snap.seconds["embed"] = t2 - t1
                for layer in self.layers:
                    kp = study_knowledge_points(
                        state,
                        layer,
                        epoch=epoch,
                        condition=self.condition,
                        threshold=self.threshold,
                    )
                    snap.kp_total[layer] = float(kp.mean_total)
                    snap.kp_reliable[layer] = float(kp.mean_reliable)
                snap.seconds["knowledge"] = time.perf_counter() - t2
        if self.path is not None:
            t3 = time.perf_counter()
            self._record_meta(snap)
            snap.path = str(save_state(state, self.path))
            snap.seconds["save"] = time.perf_counter() - t3

    # -- reading ------------------------------------------------------------------------------
    def knowledge_table(self, reliable: bool = False) -> dict[str, dict[int, float]]:
        """Return ``{layer: {epoch: mean knowledge points per image}}`` from :attr:`history`
        (reliable ones only when ``reliable``)."""
        table: dict[str, dict[int, float]] = {layer: {} for layer in self.layers}
        for snap in self.history:
            counts = snap.kp_reliable if reliable else snap.kp_total
            for layer, value in counts.items():
                table.setdefault(layer, {})[snap.epoch] = value
        return table

    @property
    def epochs(self) -> list[int]:
        """Epochs snapshotted so far, in order taken."""
        return [s.epoch for s in self.history]

    def __repr__(self) -> str:
        return (
            f"Tracker(every={self.every}, layers={self.layers}, epochs={self.epochs}, "
            f"path={str(self.path) if self.path else None!r})"
        )

    # -- helpers ------------------------------------------------------------------------------
    def _keys(self, epoch: int) -> list[Any]:
        from patternviz_widget.results import SAMPLE, Key

        model = self.state.model_name
        return [Key(model, self.condition, epoch, layer) for layer in [SAMPLE, *self.layers]]

    def _record_meta(self, snap: Snapshot) -> None:
        info = self.state.store.meta.setdefault("tracking", {"every": self.every, "snapshots": []})
        info["snapshots"] = [s for s in info.get("snapshots", []) if s.get("epoch") != snap.epoch]
        info["snapshots"].append(
            {
                "epoch": snap.epoch,
                "kp_total": snap.kp_total,
                "kp_reliable": snap.kp_reliable,
                "seconds": {k: round(v, 4) for k, v in snap.seconds.items()},
            }
        )


def _check_layers(state: StudyState, layers: list[str] | None) -> list[str]:
    from patternviz_widget._validate import did_you_mean

    known = list(state.layers)
    if layers is None:
        return known
    if isinstance(layers, str):
        layers = [layers]
    for name in layers:
        if name not in known:
            raise InputError(
                f"Layer {name!r} is not one of this study's layers, so it has no fixed regions to "
                f"track. {did_you_mean(name, known, 'layer')} Add it to pv.Study(layers=[...])."
            )
    return list(layers)


def _writes(process_group: Any) -> bool:
    """False on the ranks other than 0 of a distributed tracker (only rank 0 writes the file)."""
    from patternviz_widget.pipeline.distributed import group_rank, resolve_group

    group = resolve_group(process_group)
    return group is None or group_rank(group)[0] == 0


def _capture_layers(
    state: StudyState, layers: list[str], epoch: int, condition: str, process_group: Any = None
) -> None:
    """Run ``study.capture`` for ``layers`` (regions come from the study's fixed plan)."""
    run_capture(
        state,
        epoch=epoch,
        condition=condition,
        progress=False,
        layers=list(layers),
        process_group=process_group,
    )


class TrackerCallback:
    """A training callback that calls :meth:`Tracker.step` at the end of every epoch.

    Works three ways, with no Lightning import:

    * PyTorch Lightning: ``Trainer(callbacks=[study.lightning_callback()])`` (that helper returns a
      subclass of ``lightning.pytorch.Callback`` when Lightning is installed); the epoch number is
      ``trainer.current_epoch + 1``, and epoch 0 is snapshotted in ``on_train_start``.
    * ``pv.models.train(..., on_epoch_end=callback)`` (called as ``callback(epoch, model)``,
      epochs from 1) or any loop: ``callback(epoch)``, or ``callback()`` to let the tracker count.
    * by hand: ``callback.on_train_epoch_end(trainer, module)``.

    Args:
        tracker: the :class:`Tracker` to drive.
        snapshot_at_start: snapshot epoch 0 (the untrained model) in ``on_train_start`` (Lightning
            calls it) if no snapshot was taken yet. A plain loop has no such moment: call
            ``tracker.snapshot(0)`` (or ``callback.on_train_start()``) before training.
    """

    def __init__(self, tracker: Tracker, snapshot_at_start: bool = True) -> None:
        if not isinstance(tracker, Tracker):
            raise InputError(
                f"TrackerCallback needs a Tracker (study.tracker()), got {type(tracker).__name__}."
            )
        self.tracker = tracker
        self.snapshot_at_start = bool(snapshot_at_start)

    def on_train_start(self, trainer: Any = None, pl_module: Any = None) -> None:
        """Snapshot epoch 0 before training (when ``snapshot_at_start`` and none was taken)."""
        if self.snapshot_at_start and not self.tracker.history:
            self.tracker.snapshot(0)

    def on_train_epoch_end(self, trainer: Any = None, pl_module: Any = None) -> Snapshot | None:
        """Snapshot the finished epoch (``trainer.current_epoch + 1`` when given a trainer)."""
        current = getattr(trainer, "current_epoch", None)
        return self._epoch_done(current + 1 if isinstance(current, int) else None)

    def __call__(self, epoch: Any = None, *args: Any, **kwargs: Any) -> Snapshot | None:
        """One finished epoch of a plain loop: ``callback(epoch, model)`` as ``pv.models.train``
        calls it (epochs counted from 1), or ``callback()`` to let the tracker count."""
        return self._epoch_done(
            epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
        )

    def _epoch_done(self, epoch: int | None) -> Snapshot | None:
        if epoch is None:
            return self.tracker.step()
        self.tracker._last_epoch = epoch
        if epoch % self.tracker.every != 0:
            return None
        return self.tracker.snapshot(epoch)

    def __repr__(self) -> str:
        return f"TrackerCallback({self.tracker!r})"


def lightning_callback(tracker: Tracker, snapshot_at_start: bool = True) -> TrackerCallback:
    """Return a :class:`TrackerCallback`, a ``lightning.pytorch.Callback`` subclass when Lightning
    (or ``pytorch_lightning``) is installed so that ``Trainer`` accepts it; plain otherwise."""
    base: type | None = None
    for module_name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            module = __import__(module_name, fromlist=["Callback"])
            base = module.Callback
            break
        except ImportError:
            continue
    if base is None:
        return TrackerCallback(tracker, snapshot_at_start)
    cls = type("LightningTrackerCallback", (TrackerCallback, base), {})
    return cls(tracker, snapshot_at_start)


def epoch_displacement(
    store: Any,
    layer: str | None = None,
    model: str = "main",
    condition: str = "clean",
    relative: bool = True,
) -> dict[tuple[int, int], float]:
    """Return the mean displacement of embedded points between consecutive epochs.

    For each pair of consecutive embedded epochs (e0, e1): the mean over points of
    ``||x_e1 - x_e0||`` where x is the sample embedding g (``layer`` None or SAMPLE) or the regional
    embedding h of ``layer`` (rows are the same regions at every epoch). With ``relative`` it is
    divided by the mean norm ``||x_e0||``, so a cloud that grows is not mistaken for one that
    jumps. This is how much the picture moves when the timeline is scrubbed: the alignment of
    The paper's alignment (Sec. 3.2) exists to make it small when the model barely changed.

    Args:
        store: a ResultStore (``study.store``).
        layer: a region layer, or None / SAMPLE for the samples.
        model, condition: which keys.
        relative: divide by the mean norm at e0.

    Returns:
        {(e0, e1): mean displacement}, in epoch order.
    """
    from patternviz_widget.results import SAMPLE, RegionEmbedding, SampleEmbedding

    layer = SAMPLE if layer is None else layer
    kind = SampleEmbedding if layer == SAMPLE else RegionEmbedding
    keys = store.find(kind, model=model, condition=condition, layer=layer)
    if len(keys) < 2:
        return {}
    points = [
        np.asarray(getattr(store.get(k, kind), "g" if kind is SampleEmbedding else "h"))
        for k in keys
    ]
    out: dict[tuple[int, int], float] = {}
    for (k0, x0), (k1, x1) in zip(zip(keys, points), zip(keys[1:], points[1:])):
        if x0.shape != x1.shape:
            raise InputError(
                f"{layer}: epochs {k0.epoch} and {k1.epoch} hold different numbers of points "
                f"({x0.shape[0]} vs {x1.shape[0]}); region rows must be the study's fixed plan."
            )
        d = float(np.linalg.norm(x1.astype(np.float64) - x0, axis=1).mean())
        if relative:
            d /= max(float(np.linalg.norm(x0.astype(np.float64), axis=1).mean()), 1e-12)
        out[(k0.epoch, k1.epoch)] = d
    return out


def share_snapshot(group: Any, snap: Snapshot | None, error: BaseException | None) -> Snapshot:
    """After rank 0 embedded and saved (or failed to), give every rank rank 0's Snapshot, or raise
    :class:`DistributedCaptureError` on every rank when rank 0 failed."""
    import torch.distributed as tdist

    rank, world = dist.group_rank(group)
    box: list[Any] = [None]
    if rank == 0:
        box[0] = (
            ("error", f"{type(error).__name__}: {error}") if error is not None else ("ok", snap)
        )
    dist.collective(
        "sharing rank 0's snapshot",
        tdist.broadcast_object_list,
        box,
        src=dist.source_rank(group),
        group=group,
    )
    what, value = box[0]
    if what == "error":
        if rank == 0 and error is not None:
            raise error
        raise DistributedCaptureError(
            f"Rank 0 failed while embedding or saving the snapshot: {value}. Every rank stops here; the "
            "study file on disk keeps its last good state."
        )
    return value
