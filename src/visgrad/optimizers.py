"""A LightningModule's optimizer and learning-rate scheduler, built from factories.

The optimizer factory (a ``_partial_: true`` config node, a ``functools.partial`` or a ``{_target_: ...}``
mapping) is called with ``params``; the scheduler factory, if any, with ``optimizer`` and, when its
constructor takes ``total_steps`` (as ``OneCycleLR``'s does) and the config does not set it, with the run's
number of optimizer steps.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch

from visgrad.registry import TARGET, build, locate, partial_config

Factory = Callable[..., Any] | Mapping[str, Any]
INTERVALS = ("epoch", "step")


def check_interval(interval: str) -> None:
    """Raise ValueError unless ``interval`` is one of :data:`INTERVALS`."""
    if interval not in INTERVALS:
        raise ValueError(f"scheduler_interval must be one of {INTERVALS}, got {interval!r}")


def optimizer_config(
    params: Iterable[torch.nn.Parameter],
    optimizer: Factory,
    scheduler: Factory | None,
    interval: str,
    module: pl.LightningModule,
) -> torch.optim.Optimizer | dict[str, Any]:
    """What ``module.configure_optimizers`` returns: the optimizer over ``params``, or, with a
    ``scheduler`` factory, ``{"optimizer", "lr_scheduler": {"scheduler", "interval"}}`` (``total_steps``,
    where the scheduler takes them, are the ``estimated_stepping_batches`` of the module's trainer)."""
    built = build(optimizer, params=params)
    if scheduler is None:
        return built
    extra = {}
    if "total_steps" in inspect.signature(_target(scheduler)).parameters and (
            "total_steps" not in partial_config(scheduler)):
        extra["total_steps"] = int(module.trainer.estimated_stepping_batches)
    schedule = build(scheduler, optimizer=built, **extra)
    return {"optimizer": built, "lr_scheduler": {"scheduler": schedule, "interval": interval}}


def _target(factory: Factory) -> Callable:
    """The class or function a factory calls."""
    if isinstance(factory, Mapping):
        return locate(factory[TARGET])
    return factory.func if isinstance(factory, functools.partial) else factory
