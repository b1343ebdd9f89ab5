"""Bundled training recipes: a model, its data and the :func:`~patternviz_widget.models.train`
settings that make it learn on a CPU in under a minute.

A recipe is a plain, frozen description (:class:`Recipe`); :func:`recipe` returns one by name and
:func:`train_recipe` builds, trains and evaluates it::

    >>> import patternviz_widget as pv
    >>> sorted(pv.models.RECIPES)
    ['digits', 'parts', 'shapes']
    >>> r = pv.models.recipe("digits")
    >>> train, test = r.datasets()                      # doctest: +SKIP
    >>> net = r.build_model(seed=0)                     # doctest: +SKIP
    >>> hist = pv.models.train(net, train, **r.train_kwargs(), test_data=test)  # doctest: +SKIP
    >>> run = pv.models.train_recipe("digits")          # the same in one call  # doctest: +SKIP
    >>> run.test_accuracy, run.seconds, run.threads     # doctest: +SKIP

The settings are ours (the paper trains VGG-16 and ResNets on CUB/ImageNet-scale data with SGD,
Li, Wang, Zhang, NeurIPS 2021, §4); they are chosen so that the bundled CNNs are well trained,
which the paper's analysis of knowledge points presumes: on a network near chance every class
posterior is close to uniform and no region can be a knowledge point. Measured accuracies and
times are in the benchmark (``python -m benchmarks.run --sections training``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._validate import check_choice
from ..errors import InputError
from .cnn import SmallVGG


@dataclass(frozen=True)
class Recipe:
    """A model, its data and its training settings.

    Attributes:
        name: the key in :data:`RECIPES`.
        description: one line for people.
        dataset: the function of :mod:`patternviz_widget.datasets` that makes the data.
        train_data, test_data: keyword arguments of that function for the training and test sets.
        model: keyword arguments of :class:`~patternviz_widget.models.SmallVGG`.
        train: keyword arguments of :func:`~patternviz_widget.models.train` (epochs, lr, ...).
        min_accuracy: the test accuracy the recipe reaches (the slow tests assert it).
    """

    name: str
    description: str
    dataset: str
    train_data: dict[str, Any]
    test_data: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    min_accuracy: float

    def datasets(self) -> tuple[Any, Any]:
        """Return ``(train, test)`` as :class:`~patternviz_widget.datasets.ImageDataset` s."""
        from .. import datasets

        make = getattr(datasets, self.dataset)
        return make(**self.train_data), make(**self.test_data)

    def build_model(self, seed: int = 0) -> SmallVGG:
        """Return a freshly initialised model (weights seeded with ``seed``; the global torch RNG
        is left as it was)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return SmallVGG(**self.model)

    def train_kwargs(self) -> dict[str, Any]:
        """Return a copy of :attr:`train`, ready for ``pv.models.train(model, data, **kwargs)``."""
        return dict(self.train)


@dataclass
class TrainedRecipe:
    """What :func:`train_recipe` returns.

    Attributes:
        recipe: the recipe that was run.
        model: the trained model, in eval mode.
        train_data, test_data: the data it was trained and tested on.
        history: :func:`~patternviz_widget.models.train`'s history (with ``test_accuracy``).
        test_accuracy: accuracy on ``test_data`` after the last epoch.
        seconds: wall-clock seconds of the training steps (data generation and the per-epoch
            test evaluation excluded).
        threads: torch threads used while training.
    """

    recipe: Recipe
    model: nn.Module
    train_data: Any
    test_data: Any
    history: dict[str, list[float]] = field(repr=False)
    test_accuracy: float = 0.0
    seconds: float = 0.0
    threads: int = 1


_SHAPES_DATA = {"size": 32, "num_classes": 6}
_PARTS_DATA = {"size": 32}
RECIPES: dict[str, Recipe] = {
    "digits": Recipe(
        name="digits",
        description="SmallVGG (widths 16-32-64) on scikit-learn's digits (32 px, 1,347 training / 450 test images)",
        dataset="digits",
        train_data={"split": "train"},
        test_data={"split": "test"},
        model={"in_channels": 1, "num_classes": 10, "widths": (16, 32, 64), "hidden": 128},
        train={"epochs": 12, "lr": 5e-3, "batch_size": 64, "schedule": "onecycle"},
        min_accuracy=0.97,
    ),
    "shapes": Recipe(
        name="shapes",
        description="SmallVGG (widths 8-16-32-64) on generated shapes (32 px, 6 classes, 8,000 training / 1,000 test)",
        dataset="shapes",
        train_data={"n": 8000, "seed": 0, **_SHAPES_DATA},
        test_data={"n": 1000, "seed": 1, **_SHAPES_DATA},
        model={"in_channels": 3, "num_classes": 6, "widths": (8, 16, 32, 64), "hidden": 128},
        train={"epochs": 8, "lr": 5e-3, "batch_size": 64, "schedule": "onecycle"},
        min_accuracy=0.95,
    ),
    "parts": Recipe(
        name="parts",
        description="SmallVGG (widths 8-16-32-64) on generated part arrangements (32 px, 6 classes, 6,000 training / 1,000 test)",
        dataset="parts",
        train_data={"n": 6000, "seed": 0, **_PARTS_DATA},
        test_data={"n": 1000, "seed": 1, **_PARTS_DATA},
        model={"in_channels": 3, "num_classes": 6, "widths": (8, 16, 32, 64), "hidden": 128},
        train={"epochs": 12, "lr": 5e-3, "batch_size": 64, "schedule": "onecycle"},
        min_accuracy=0.93,
    ),
}


def recipe(name: str) -> Recipe:
    """Return the bundled recipe ``name`` (one of :data:`RECIPES`: "digits", "shapes", "parts")."""
    return RECIPES[check_choice(name, RECIPES, "recipe")]


def train_recipe(
    name: str | Recipe,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    threads: int | None = None,
    on_epoch_end: Callable[[int, nn.Module], Any] | None = None,
    on_step_end: Callable[[int, nn.Module], Any] | None = None,
    data: tuple[Any, Any] | None = None,
    **overrides: Any,
) -> TrainedRecipe:
    """Build, train and test a recipe; return a :class:`TrainedRecipe`.

    Args:
        name: a recipe name or a :class:`Recipe`.
        seed: seeds the weights, the shuffling and dropout (the data are fixed by the recipe).
        device, progress, threads, on_epoch_end, on_step_end: as in
            :func:`~patternviz_widget.models.train`.
        data: ``(train, test)`` to use instead of :meth:`Recipe.datasets` (e.g. made once and
            shared by several runs).
        **overrides: replace single training settings of the recipe (``epochs=2``, ``lr=...``).

    Example:
        >>> import patternviz_widget as pv
        >>> run = pv.models.train_recipe("digits", epochs=1)  # doctest: +SKIP
        >>> run.model.default_layers                         # doctest: +SKIP
        ['features.5', 'features.12', 'features.19']
    """
    from .training import train

    r = name if isinstance(name, Recipe) else recipe(name)
    bad = sorted(
        set(overrides)
        & {"test_data", "seed", "device", "progress", "threads", "on_epoch_end", "on_step_end"}
    )
    if bad:
        raise InputError(f"{bad} are arguments of train_recipe itself; pass them by name, once.")
    train_data, test_data = data if data is not None else r.datasets()
    model = r.build_model(seed)
    kwargs = {**r.train_kwargs(), **overrides}
    hist = train(model, train_data, device=device, progress=progress, seed=seed, test_data=test_data,
                 threads=threads, on_epoch_end=on_epoch_end, on_step_end=on_step_end, **kwargs)  # fmt: skip
    seconds = float(sum(hist["train_seconds"]))
    return TrainedRecipe(r, model, train_data, test_data, hist, hist["test_accuracy"][-1], seconds,
                         int(hist["threads"][-1]))  # fmt: skip
