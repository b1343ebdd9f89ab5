"""Study: the object a user holds, a facade over a :class:`~patternviz_widget.pipeline.state.StudyState`.

The state holds the model, the probe data, the chosen layers, the typed configuration and the
:class:`~patternviz_widget.results.ResultStore`; every method is one call into
``patternviz_widget.pipeline``, which calls the engine. No math and no orchestration live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from patternviz_widget.defaults import SEED, TEMPERATURE, THRESHOLD
from patternviz_widget.pipeline.state import StudyConfig, StudyState, save_state
from patternviz_widget.results import ResultStore

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from patternviz_widget.pipeline.capture import CaptureSummary


class _FromState:
    """A :class:`Study` attribute that reads (and sets) the field of the same name of its state."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, study: Any, owner: type | None = None) -> Any:
        return self if study is None else getattr(study.state, self.name)

    def __set__(self, study: Any, value: Any) -> None:
        try:
            setattr(study.state, self.name, value)
        except AttributeError:
            raise AttributeError(
                f"Study.{self.name} is part of the study's configuration, fixed when it is made; "
                f"make a new pv.Study(..., {self.name}=...) instead."
            ) from None


class Study:
    """Capture, embed and count knowledge points of one (or several) classifiers on fixed probe data.

    Args:
        model: any ``torch.nn.Module`` classifier returning logits of shape N×K.
        data: a ``Dataset`` (items ``(image, label)`` or ``(image, label, mask)``), a ``DataLoader``,
            or an ``(images, labels)`` pair of tensors/arrays.
        layers: module names as ``model.named_modules()`` prints them.
        num_classes: K; inferred from the model's output when None.
        class_names: K strings; ``"0".."K-1"`` when None.
        device: "cuda", "cpu", a ``torch.device``, or None for CUDA when present, else CPU.
        batch_size: images per forward pass during capture.
        regions_per_image: how many regions of each layer to keep per image (seeded sample); None
            keeps all.
        max_regions: a total cap of regions per layer over all images; None for no cap.
        sample_layer: the module whose *input* is the sample feature; None finds the classifier
            head automatically.
        grid: an ``(rows, cols)`` common grid that every layer is adaptively pooled to, or None.
        storage_dtype: "float32" or "float16" for stored regional features.
        seed: seeds region sampling and every fit (paper: 2020).
        model_name: the name of this model in result keys ("main").
        max_images: use only the first ``max_images`` images of ``data`` as the probe set (None:
            all of them, in data order).

    Example:
        >>> import patternviz_widget as pv
        >>> data = pv.datasets.digits(split="test")
        >>> net = pv.models.SmallVGG(num_classes=10, in_channels=1)
        >>> study = pv.Study(net, data, layers=["features.3", "features.7"])
        >>> _ = study.capture(progress=False)
    """

    # What the state holds, read as attributes of the study.
    store = _FromState()
    model = _FromState()
    data = _FromState()
    device = _FromState()
    region_plans = _FromState()
    max_images = _FromState()
    models = _FromState()
    pairing = _FromState()
    config = _FromState()
    layers = _FromState()
    num_classes = _FromState()
    class_names = _FromState()
    model_name = _FromState()
    seed = _FromState()
    sample_layer = _FromState()
    input_size = _FromState()
    batch_size = _FromState()
    regions_per_image = _FromState()
    max_regions = _FromState()
    grid = _FromState()
    storage_dtype = _FromState()

    def __init__(
        self,
        model: torch.nn.Module | None,
        data: Any,
        layers: list[str],
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        regions_per_image: int | None = 64,
        max_regions: int | None = 200_000,
        sample_layer: str | None = None,
        grid: tuple[int, int] | None = None,
        storage_dtype: str = "float32",
        seed: int = SEED,
        model_name: str = "main",
        max_images: int | None = None,
    ) -> None:
        from patternviz_widget.pipeline.setup import build_state

        self.state = build_state(
            model=model,
            data=data,
            layers=layers,
            num_classes=num_classes,
            class_names=class_names,
            device=device,
            batch_size=batch_size,
            regions_per_image=regions_per_image,
            max_regions=max_regions,
            sample_layer=sample_layer,
            grid=grid,
            storage_dtype=storage_dtype,
            seed=seed,
            model_name=model_name,
            max_images=max_images,
        )

    # ---- capture ----

    def capture(
        self,
        epoch: int = 0,
        condition: str = "clean",
        model: torch.nn.Module | str | None = None,
        images: Any = None,
        progress: bool = True,
        model_name: str | None = None,
        layers: list[str] | None = None,
        process_group: Any = None,
    ) -> CaptureSummary:
        """Return a summary after capturing sample and regional features into ``self.store``.

        See :func:`patternviz_widget.pipeline.capture.capture` for every argument: ``model`` may be
        another ``nn.Module`` (a checkpoint, a student) or a model name; ``images`` other images in
        the same order (or a per-batch function such as an attack).

        Inside a ``torchrun`` job (an initialised ``torch.distributed`` group, or ``process_group=``)
        every rank must call it: each captures its shard of the probe images and rank 0 gathers the
        full records; ``process_group=False`` captures on this process alone. See
        :mod:`patternviz_widget.pipeline.distributed` and the distributed guide.
        """
        from patternviz_widget.pipeline.capture import run_capture

        return run_capture(
            self.state, epoch, condition, model, images, progress, model_name, layers, process_group
        )

    # ---- embed + knowledge points ----

    def embed(
        self,
        method: str = "paper",
        keys: list[Any] | None = None,
        progress: bool = True,
        overwrite: bool = False,
        temperature: float = TEMPERATURE,
        **hyper: Any,
    ) -> list[Any]:
        """Return the keys written after fitting every captured key that lacks an embedding.

        Clean keys are fitted in epoch order per model: the sample embedding g = M f (paper Sec. 3.2),
        then each layer's regional embedding h = Λ f^(r) tied to it (Sec. 3.3); later epochs are
        warm-started (mean of the last ≤3 M's / Λ's, lr 1e-4 for M) and rotated onto the previous
        epoch (two-pass Procrustes). Other conditions ("adversarial") are projected with the clean
        M, μ, Λ of the same model and epoch. Results land in ``self.store``.

        Args:
            method: "paper", or a baseline "pca", "tsne", "umap" (the last two when installed).
            keys: only these captured keys (None: all).
            progress: show a progress bar.
            overwrite: refit keys that already have an embedding of this method.
            temperature: T in P(Y|x) = softmax(z/T) (paper: 4).
            **hyper: sample fit — ``steps`` (2000), ``lr`` (1e-3), ``warm_lr`` (1e-4),
                ``momentum`` (0.9), ``weight_decay`` (5e-4), ``controller`` s (40), ``kappa``
                κ(l) (capped linear, κ_max 10), ``init_std`` (0.1), ``align`` (True);
                region fit — ``region_epochs`` (20), ``region_lr`` (0.01), ``lambda_kl`` λ_kl (1),
                ``lambda_mi`` λ_mi (0.1), ``region_controller`` s_r (40), ``region_kappa`` κ
                (capped linear, κ_max 1000), ``kappa_p`` κ_p (5), ``kappa_m`` κ_m (None: 1000·K/512, scaled with the
                layer's channel count K; a number is used as given),
                ``partners`` J (100), ``importance_steps`` (20), ``importance_lr`` (0.05),
                ``rematch_every`` (0: r' searched once, ours; 1: every step, as the
                official code), ``batch_size`` (16), ``memory_budget_mb`` (1024),
                ``match_dtype`` ("auto"), ``region_warm_start`` (False: Λ starts fresh each epoch,
                as in the paper; True: from the mean of the last ≤3 Λ's), ``threads`` (torch
                threads of the r' search; "auto"), ``workers`` (how many layers of one epoch
                are fitted at once, one thread each; "auto": 2 on a CPU with two idle cores,
                when no ``threads`` is given and the layers are small; the paper's method on a
                CPU only; the same embeddings either way); both — ``seed`` (study seed), ``device`` (study device);
                ``fast=True`` a short preset for demos (not the paper's settings).
        """
        from patternviz_widget.pipeline.embed import embed_study

        return embed_study(
            self.state,
            method=method,
            keys=keys,
            progress=progress,
            overwrite=overwrite,
            temperature=temperature,
            **hyper,
        )

    def knowledge_points(
        self,
        layer: str,
        epoch: int | None = None,
        condition: str = "clean",
        model: str | None = None,
        threshold: float = THRESHOLD,
        kappa_slope: float | str = 1.0,
    ) -> Any:
        """Return the KnowledgePoints of one layer (paper Sec. 3.4): regions whose posterior peak
        max_c p(c|h) ≥ τ, the reliable ones (class = true class), counts per image, r_reliable,
        and the on-object share when the probe data have masks (our extension). Nothing is
        refitted; ``epoch=None`` takes the latest embedded epoch.

        Args:
            layer: the layer name. epoch, condition, model: which key (model None: the study's).
            threshold: τ (paper: 0.4).
            kappa_slope: a in the region κ(l) = min(1000, a·l) applied to h / the layer's mean
                strength: a number (default 1; the paper's κ table is unpublished and counts
                depend on a — compare 1, 2, 4), or "sample" = the mean concentration κ_s(‖g‖) of
                the images in the clean sample embedding of that epoch (a region of average
                strength then is as concentrated as an average image; on a confident net that
                makes most low-layer regions knowledge points, because every layer is read
                relative to its own mean strength).
        """
        from patternviz_widget.pipeline.embed import study_knowledge_points

        return study_knowledge_points(
            self.state,
            layer,
            epoch=epoch,
            condition=condition,
            model=model,
            threshold=threshold,
            kappa_slope=kappa_slope,
        )

    def diagnostics(self, temperature: float | None = None) -> Any:
        """Return what every fit did and whether its knowledge points can mean anything: per
        embedded key, the importance loss first/last, how far w moved from uniform, the regional
        fit's loss per epoch, the smallest cos(μ_a, μ_b) and the mean KL(P(Y|x) ‖ uniform); a key
        whose posterior is near uniform or whose class directions coincide is marked degenerate
        with the reason (its "0 knowledge points" is true by construction). Prints as a table.

        Args:
            temperature: T of P(Y|x) = softmax(z/T) (None: the one the embedding used, else 4).
        """
        from patternviz_widget.pipeline.diagnostics import study_diagnostics

        t = float(
            temperature
            if temperature is not None
            else self.store.meta.get("temperature", TEMPERATURE)
        )
        return study_diagnostics(self.store, t)

    def sample_metrics(
        self,
        epoch: int | None = None,
        condition: str = "clean",
        model: str | None = None,
        methods: tuple[str, ...] = ("paper", "pca", "tsne"),
    ) -> dict[str, dict]:
        """Return {method: metrics} of the sample embeddings (the paper's correlation table; claims 1–3 of docs/reproduction.md):
        ``r_strength_entropy`` = Pearson r(‖g‖, H(P(Y|x))) (more negative = better; baselines use
        the norm of their centred embedding), ``kl`` and ``kl_uniform``, ``argmax_agreement``,
        ``label_agreement``. Baselines are computed on the fly (not stored); methods whose package
        is missing are left out."""
        from patternviz_widget.pipeline.embed import study_sample_metrics

        return study_sample_metrics(
            self.state, epoch=epoch, condition=condition, model=model, methods=methods
        )

    # ---- tracking over training ----

    def tracker(
        self,
        every: int = 1,
        path: str | Path | None = None,
        layers: list[str] | None = None,
        embed: bool = True,
        process_group: Any = None,
        **embed_kwargs: Any,
    ) -> Any:
        """Return a Tracker that snapshots this study inside a training loop (paper Sec. 3.2, 3.4).

        ``tracker.snapshot(epoch)`` (or ``tracker.step()`` once per epoch) captures the layers on
        the fixed probe set, fits that epoch's embedding (warm start + Procrustes alignment), counts
        knowledge points and rewrites ``path`` atomically.

        Args:
            every: snapshot every ``every``-th epoch of :meth:`Tracker.step`.
            path: study file to autosave to after each snapshot, or None.
            layers: a subset of ``self.layers`` to track (None: all).
            embed: fit embeddings and count knowledge points at each snapshot (False: capture only).
            process_group: in a ``torchrun`` job, the group to shard each capture over (None: the
                default group when initialised; False: this process alone). Rank 0 embeds and
                saves; every rank gets the same :class:`Snapshot`.
            **embed_kwargs: hyper-parameters for :meth:`embed`.

        Returns:
            a :class:`~patternviz_widget.pipeline.tracking.Tracker`.
        """
        from patternviz_widget.pipeline.tracking import Tracker

        return Tracker(
            self.state,
            every=every,
            path=path,
            layers=layers,
            embed=embed,
            embed_kwargs=embed_kwargs,
            process_group=process_group,
        )

    def lightning_callback(self, tracker: Any = None, **tracker_kwargs: Any) -> Any:
        """Return a per-epoch training callback (a Lightning ``Callback`` if Lightning is present).

        Args:
            tracker: an existing tracker, or None to make one with ``tracker_kwargs``.
            **tracker_kwargs: arguments of :meth:`tracker` (every, path, layers, ...).

        Returns:
            a :class:`~patternviz_widget.pipeline.tracking.TrackerCallback`; call it once per epoch in
            a plain loop, or pass it to ``Trainer(callbacks=[...])``.
        """
        from patternviz_widget.pipeline.tracking import lightning_callback

        tracker = tracker if tracker is not None else self.tracker(**tracker_kwargs)
        return lightning_callback(tracker)

    def capture_checkpoints(
        self,
        paths_or_state_dicts: Any,
        epochs: list[int] | None = None,
        tracker: Any = None,
        **tracker_kwargs: Any,
    ) -> list[Any]:
        """Snapshot saved checkpoints in order (torch.load, weights_only=True); return snapshots.

        The model's own weights are restored afterwards.

        Args:
            paths_or_state_dicts: checkpoint paths or state dicts, oldest first.
            epochs: one epoch label per checkpoint (increasing); None numbers them 0, 1, ...
            tracker: the tracker to use, or None to make one from ``tracker_kwargs`` (path, ...).

        Returns:
            one :class:`~patternviz_widget.pipeline.tracking.Snapshot` per checkpoint.
        """
        from patternviz_widget.pipeline.checkpoints import capture_checkpoints

        tracker = tracker if tracker is not None else self.tracker(**tracker_kwargs)
        return capture_checkpoints(self.state, paths_or_state_dicts, epochs=epochs, tracker=tracker)

    @classmethod
    def watch(cls, path: str | Path, interval: float = 1.0, start: bool = True) -> Study:
        """Return a model-less study loaded from ``path`` that follows the file as it is rewritten.

        For a training run in another process that autosaves with ``study.tracker(path=...)``:
        ``pv.PatternViz(pv.Study.watch(path))`` shows each new epoch without re-displaying.
        ``study.watcher.stop()`` ends the polling; ``study.watcher.poll()`` checks once by hand.
        Each new version of the file is reloaded whole: when a re-run rewrites the file (or
        re-snapshots an epoch), the study holds the new run only, never a mix of the two. ``path``
        need not exist yet: the study starts empty and fills when the run first saves.

        Args:
            path: the study file the run writes.
            interval: seconds between checks of the file.
            start: start the background polling thread now.

        Returns:
            a :class:`Study` (like :meth:`load`) with a ``watcher`` attribute.
        """
        from patternviz_widget.pipeline.watch import StudyWatcher

        watcher = StudyWatcher(path, ResultStore(), interval=interval)  # stamp before reading
        # no file yet: an empty study that the first save fills
        study = cls.from_store(watcher.store) if watcher._seen is None else cls.load(path)
        watcher.store = study.store
        watcher.on_reload = study._reread_config
        study.watcher = watcher
        if start:
            study.watcher.start()
        return study

    # ---- adversarial + distillation ----

    def attack(
        self,
        method: str = "pgd",
        eps: float = 8 / 255,
        steps: int = 20,
        step_size: float | None = None,
        norm: str = "linf",
        targeted: bool = False,
        target: Any = None,
        bounds: tuple[float, float] | None = None,
        random_start: bool = False,
        epoch: int | None = None,
        record_layers: list[str] | None = None,
        record_every: int = 1,
        progress: bool = True,
    ) -> Any:
        """Return an AttackSummary after attacking the probe images and capturing them as the
        condition "adversarial" (rows paired one to one with "clean"; the paper's attack experiment).

        Args:
            method: "pgd" or "fgsm".
            eps: ε, the budget (ℓ∞ per pixel or ℓ2 per image) in input units (paper: 0.1, ℓ∞).
            steps: PGD iterations, all recorded (paper: 20).
            step_size: α per step; None uses 2.5·ε/steps.
            norm: "linf" or "l2".
            targeted, target: move towards ``target`` (a class, or one per image).
            bounds: valid input range; None uses (0, 1) when the probe images lie in it, else
                their own (min, max).
            random_start: start PGD from a random point of the ε ball.
            epoch: the epoch key of the capture (default: the latest clean epoch; the model's
                current weights are attacked).
            record_layers: layers whose regions are recorded at every iteration (default: the
                last layer); record_every: record every k-th iteration (the last always).
            progress: show a progress bar.

        See :mod:`patternviz_widget.pipeline.attack` for what is stored.
        """
        from patternviz_widget.pipeline.attack import run_attack

        return run_attack(
            self.state, method=method, eps=eps, steps=steps, step_size=step_size, norm=norm,
            targeted=targeted, target=target, bounds=bounds, random_start=random_start,
            epoch=epoch, record_layers=record_layers, record_every=record_every, progress=progress,
        )  # fmt: skip

    def attack_report(
        self, layer: str | None = None, epoch: int | None = None, threshold: float = THRESHOLD
    ) -> Any:
        """Return the paper's attack measurements of the last attack (an AttackReport): Δ curves over
        layers, knowledge points before/after and the p(c_ori) histogram at ``layer`` (default: the
        last layer) and the trajectory types of the traced layer. Needs ``embed()`` of "clean" and
        "adversarial" first. threshold: τ (paper: 0.4)."""
        from patternviz_widget.pipeline.attack_report import attack_report

        return attack_report(self.state, layer=layer, epoch=epoch, threshold=threshold)

    @classmethod
    def compare(
        cls,
        teacher_study: Study,
        student_study: Study | dict[str, Study],
        pairs: Any = None,
        by: str = "name",
        project: bool = True,
    ) -> Study:
        """Return one Study holding both models as "teacher" and "student" (the paper's distillation experiment);
        ``student_study`` may also be ``{name: study}`` to hold several students by name.

        Layers pair by equal name (``by="name"``), by relative depth (``by="depth"``) or as given
        (``pairs={teacher_layer: student_layer}``); student records are stored under the teacher
        layer's name. When the teacher has an embedding the student is projected with the teacher's
        Λ, M, μ (our reading of the paper's distillation experiment). Both studies must use the same probe data.
        """
        from patternviz_widget.pipeline.compare import compare

        def state_of(s: Any) -> Any:
            return s.state if isinstance(s, Study) else s

        students = (
            {name: state_of(s) for name, s in student_study.items()}
            if isinstance(student_study, dict)
            else state_of(student_study)
        )
        return cls._from_state(
            compare(state_of(teacher_study), students, pairs=pairs, by=by, project=project)
        )

    def distill_report(self, epoch: int | None = None, threshold: float = THRESHOLD) -> Any:
        """Return the paper's distillation measurements of a compared study (a DistillReport): knowledge
        points per layer for both models, histograms of 1 − cos(h_s, h_t) and ‖h_s‖ − ‖h_t‖ per layer,
        and the student's knowledge points over its epochs. threshold: τ (paper: 0.4)."""
        from patternviz_widget.pipeline.distill_report import distill_report

        return distill_report(self.state, epoch=epoch, threshold=threshold)

    # ---- persistence ----

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the whole study to one file atomically; return its path.

        Raises StudyFileError when the folder cannot be written, or when ``path`` was rewritten by
        another writer (another process or study) since this study last saved or loaded it;
        ``overwrite=True`` replaces that file anyway. See :mod:`patternviz_widget.results.io`.
        After a distributed capture only rank 0 holds the whole study: other ranks return the path
        without writing (:mod:`patternviz_widget.pipeline.distributed`).
        """
        return save_state(self.state, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> Study:
        """Restore a study from a file written by :meth:`save`, without its model."""
        from patternviz_widget.results.io import load_store

        return cls.from_store(load_store(path))

    @classmethod
    def from_store(cls, store: ResultStore) -> Study:
        """Return a model-less study over ``store`` (its settings read from ``store.meta``).

        It can embed, count knowledge points, compare and draw; capturing needs a study made from
        a model, ``pv.Study(model, data, layers=...)``.
        """
        if not isinstance(store, ResultStore):
            from patternviz_widget.errors import InputError

            hint = (
                " To open a study file use pv.Study.load(path)."
                if isinstance(store, (str, Path))
                else ""
            )
            raise InputError(
                f"Study.from_store needs a ResultStore, got {type(store).__name__}.{hint}"
            )
        return cls._from_state(StudyState.from_store(store))

    @classmethod
    def from_source(cls, source: Any, needed_by: str = "This") -> Study:
        """Return ``source`` as a Study: a Study itself, a ResultStore, or the path of a study file.

        ``needed_by`` names the caller in the error for anything else (e.g. "PatternViz").
        """
        if isinstance(source, Study):
            return source
        if isinstance(source, ResultStore):
            return cls.from_store(source)
        if isinstance(source, (str, Path)):
            return cls.load(source)
        from patternviz_widget.errors import InputError

        raise InputError(
            f"{needed_by} needs a pv.Study, a ResultStore or the path of a saved study, "
            f"got {type(source).__name__}."
        )

    @classmethod
    def _from_state(cls, state: StudyState) -> Study:
        study = cls.__new__(cls)
        study.state = state
        return study

    def _reread_config(self) -> None:
        """Read the settings again from the store's manifest (after a watched file was reloaded)."""
        self.state.config = StudyConfig.from_meta(self.store.meta)

    def __repr__(self) -> str:
        n = self.store.probe.labels.shape[0] if self.store.probe is not None else 0
        return (
            f"Study(models={self.store.models()}, layers={self.store.layers() or self.layers}, "
            f"images={n}, epochs={self.store.epochs()}, conditions={self.store.conditions()})"
        )
