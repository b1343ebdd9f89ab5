"""What the pipeline works on: a study's configuration, its live parts and its result store.

:class:`StudyConfig` is the typed form of the settings a study file records in its manifest
(``store.meta``); :class:`StudyState` adds what only a live study has (the model, the probe data,
the device, the region plan of each layer). Every pipeline function takes a ``StudyState``;
:class:`~patternviz_widget.study.Study` is the user's facade over one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patternviz_widget.defaults import SEED
from patternviz_widget.results.store import ResultStore

#: Manifest keys written by :meth:`StudyConfig.to_meta`; other keys of ``store.meta`` (tracking
#: history, the attack description, a comparison's pairs) belong to the pipeline step that wrote them.
CONFIG_KEYS = (
    "layers",
    "class_names",
    "num_classes",
    "model_name",
    "seed",
    "sample_layer",
    "input_size",
    "n_images",
    "batch_size",
    "regions_per_image",
    "max_regions",
    "grid",
    "storage_dtype",
    "layer_info",
)


@dataclass
class StudyConfig:
    """The settings of a study, as its file records them (paper defaults where the paper has one).

    Attributes:
        layers: the captured layers, in model order as given.
        class_names: one name per class; ``num_classes`` = K.
        model_name: the name of the study's own model in result keys.
        seed: seeds region sampling and every fit.
        sample_layer: the module whose input is the sample feature f (the classifier head).
        input_size: (H, W) of the probe images.
        n_images: the number of probe images.
        batch_size, regions_per_image, max_regions, grid, storage_dtype: capture settings (see
            :class:`~patternviz_widget.Study`).
        layer_info: per layer, its geometry (grid, channels, box method, regions kept).
    """

    layers: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    num_classes: int | None = None
    model_name: str = "main"
    seed: int = SEED
    sample_layer: str | None = None
    input_size: tuple[int, int] | None = None
    n_images: int | None = None
    batch_size: int = 64
    regions_per_image: int | None = 64
    max_regions: int | None = 200_000
    grid: tuple[int, int] | None = None
    storage_dtype: str = "float32"
    layer_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_meta(self) -> dict[str, Any]:
        """Return the JSON-ready manifest entries of this configuration."""
        return {
            "layers": list(self.layers),
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "model_name": self.model_name,
            "seed": int(self.seed),
            "sample_layer": self.sample_layer,
            "input_size": list(self.input_size) if self.input_size else None,
            "n_images": self.n_images,
            "batch_size": self.batch_size,
            "regions_per_image": self.regions_per_image,
            "max_regions": self.max_regions,
            "grid": list(self.grid) if self.grid else None,
            "storage_dtype": self.storage_dtype,
            "layer_info": dict(self.layer_info),
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> StudyConfig:
        """Read a configuration back from a manifest; keys an older file lacks take their defaults."""
        d = cls()
        return cls(
            layers=list(meta.get("layers") or []),
            class_names=list(meta.get("class_names") or []),
            num_classes=meta.get("num_classes"),
            model_name=meta.get("model_name") or d.model_name,
            seed=int(meta.get("seed", d.seed)),
            sample_layer=meta.get("sample_layer"),
            input_size=tuple(meta["input_size"]) if meta.get("input_size") else None,  # type: ignore[arg-type]
            n_images=meta.get("n_images"),
            batch_size=int(meta.get("batch_size") or d.batch_size),
            regions_per_image=meta.get("regions_per_image", d.regions_per_image),
            max_regions=meta.get("max_regions", d.max_regions),
            grid=tuple(meta["grid"]) if meta.get("grid") else None,  # type: ignore[arg-type]
            storage_dtype=meta.get("storage_dtype") or d.storage_dtype,
            layer_info=dict(meta.get("layer_info") or {}),
        )


@dataclass
class StudyState:
    """A study as the pipeline sees it: configuration, result store and (when live) model and data.

    A state read from a file (:meth:`from_store`) has no model, data or region plans: it can be
    embedded, counted, compared and drawn, but not captured.

    Attributes:
        config: the typed settings (also written into ``store.meta``).
        store: every record of the study.
        model: the study's own model (None when loaded from a file).
        data: the probe set (a :class:`~patternviz_widget.engine.capture.data.ProbeData`), or None.
        device: where capture and fits run (None: CPU for fits, no capture).
        region_plans: per layer, the fixed region sample (a ``RegionPlan``).
        max_images: the probe-set cap the study was made with.
        models: extra models by name (a teacher | students comparison).
        pairing: a comparison's ``{student: [(teacher_layer, student_layer), ...]}``.
        distributed_rank: this process's rank after a distributed capture (0 alone).
    """

    config: StudyConfig
    store: ResultStore = field(default_factory=ResultStore)
    model: Any = None
    data: Any = None
    device: Any = None
    region_plans: dict[str, Any] = field(default_factory=dict)
    max_images: int | None = None
    models: dict[str, Any] = field(default_factory=dict)
    pairing: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    distributed_rank: int = 0

    @classmethod
    def from_store(cls, store: ResultStore) -> StudyState:
        """Return the (model-less) state of a store, e.g. one read by ``load_store``."""
        return cls(config=StudyConfig.from_meta(store.meta), store=store)

    def write_config(self) -> None:
        """Record :attr:`config` in the store's manifest."""
        self.store.meta.update(self.config.to_meta())

    # The configuration's fields, read where the pipeline has a state in hand.
    @property
    def layers(self) -> list[str]:
        return self.config.layers

    @property
    def num_classes(self) -> int | None:
        return self.config.num_classes

    @property
    def class_names(self) -> list[str]:
        return self.config.class_names

    @property
    def model_name(self) -> str:
        return self.config.model_name

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def sample_layer(self) -> str | None:
        return self.config.sample_layer

    @property
    def input_size(self) -> tuple[int, int] | None:
        return self.config.input_size

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def regions_per_image(self) -> int | None:
        return self.config.regions_per_image

    @property
    def max_regions(self) -> int | None:
        return self.config.max_regions

    @property
    def grid(self) -> tuple[int, int] | None:
        return self.config.grid

    @property
    def storage_dtype(self) -> str:
        return self.config.storage_dtype


def save_state(state: StudyState, path: str | Path, overwrite: bool = False) -> Path:
    """Write the state's store to ``path`` (see :func:`~patternviz_widget.results.io.save_store`).

    After a distributed capture only rank 0 holds the whole study: other ranks return the path
    without writing.
    """
    from patternviz_widget.results.io import save_store

    if state.distributed_rank != 0:
        return Path(path)
    return save_store(state.store, path, overwrite=overwrite)
