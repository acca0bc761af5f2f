"""Generic Lightning training driven by a composed Hydra config (used by ``train.py``).

The contract with the config groups: ``cfg.data`` instantiates a LightningDataModule that, after
``prepare_data()`` and ``setup("fit")``, answers ``model_kwargs()`` with what the model needs from the
data (vocabulary, feature size, class names); ``cfg.model`` instantiates the LightningModule with those.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from visgrad.utils import print_config_tree

log = logging.getLogger(__name__)


def _instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a callbacks/logger group (a dict of named configs)."""
    if not group:
        return []
    return [instantiate(conf) for conf in group.values() if conf is not None and "_target_" in conf]


def train(cfg: DictConfig) -> float | None:
    """Fit ``cfg.model`` on ``cfg.data``; print final metrics and where logs and checkpoints are.

    Returns the value of ``cfg.optimized_metric`` (for sweeps and Optuna), or None if it was not logged.
    """
    if cfg.get("print_config"):
        print_config_tree(cfg, order=("data", "model", "trainer", "callbacks", "logger", "paths"))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model: pl.LightningModule = instantiate(cfg.model, **datamodule.model_kwargs())

    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    hparams = {"cfg": cfg_to_flat_dict(cfg)} if loggers else {}
    for logger in loggers:
        logger.log_hyperparams(hparams)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test") and hasattr(datamodule, "test_dataloader"):
        trainer.test(model, datamodule=datamodule, ckpt_path="best")
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    _print_summary(trainer, metrics, cfg)
    return metrics.get(cfg.get("optimized_metric") or "")


def cfg_to_flat_dict(cfg: DictConfig) -> dict:
    """The config as a flat ``{"a/b/c": value}`` dict of scalars, for TensorBoard's hparams view."""
    flat: dict = {}

    def visit(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                visit(value, f"{prefix}/{key}" if prefix else str(key))
        elif isinstance(node, (int, float, str, bool)) or node is None:
            flat[prefix] = node
        else:
            flat[prefix] = str(node)

    visit(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "")
    return flat


def _print_summary(trainer: pl.Trainer, metrics: dict[str, float], cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.4f}")
    console = Console()
    console.print(table)
    for checkpoint in trainer.checkpoint_callbacks:
        kind = f"best {checkpoint.monitor}" if checkpoint.monitor else "last"
        console.print(f"{kind} checkpoint: {checkpoint.best_model_path or '(none)'}")
    output_dir = Path(cfg.paths.output_dir)
    console.print(f"run folder: {output_dir}")
    if trainer.loggers:
        console.print(f"TensorBoard: tensorboard --logdir {output_dir / 'tensorboard'}")
