"""Generic Lightning training driven by a composed Hydra config (used by ``train.py``).

The contract with the config groups: ``cfg.data`` instantiates a LightningDataModule that, after
``prepare_data()`` and ``setup("fit")``, answers ``model_kwargs()`` with what the model needs from the
data (vocabulary, feature size, class names); ``cfg.model`` instantiates the LightningModule with those.

Before any data work the config is validated (``visgrad.utils.preflight``) and the Trainer is built (so
bad trainer settings fail early too, as a ``ConfigError`` naming the ``trainer.*`` key). A run writes only
into its own folder: a fresh run refuses a folder that already holds checkpoints, and ``resume=RUN``
continues ``RUN/checkpoints/last.ckpt`` in ``RUN`` (``visgrad.utils.resume``), with TensorBoard purging the
killed attempt's steps after that checkpoint. A checkpoint to continue from (``resume=`` or ``ckpt_path=``)
must hold the parameters, of the same shapes, as the model the config builds: else the run stops before
fitting, naming the hyperparameters that differ. The final metrics are printed and written to
``<run>/metrics.json``.
"""

from __future__ import annotations

import difflib
import logging
import re
import shlex
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.accelerators import AcceleratorRegistry
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.model_helpers import is_overridden

from visgrad.captioning.checkpoints import read_captioner_hparams
from visgrad.options import fmt
from visgrad.utils import print_config_tree
from visgrad.utils.checkpoint_io import read_checkpoint
from visgrad.utils.commands import command
from visgrad.utils.hparams import HParamsSession, run_hparams
from visgrad.utils.preflight import ConfigError, validate_config
from visgrad.utils.resume import ResumeAttempt, check_training_left, resume_checkpoint
from visgrad.utils.run_folder import lock_run_folder
from visgrad.utils.sweep_summary import write_metrics

log = logging.getLogger(__name__)
_ABSENT = object()


def _instantiate_group(group: DictConfig | None, key: str, extra: dict[type, dict] | None = None) -> list:
    """Instantiate every ``_target_`` entry of the callbacks/logger group at ``key`` (a dict of named
    configs).

    ``extra`` maps a class to keyword arguments added when an entry's target is (a subclass of) it.
    """
    if not group:
        return []
    objects = []
    for name, conf in group.items():
        if conf is None or "_target_" not in conf:
            continue
        cls = get_class(conf._target_)
        kwargs = {k: v for base, kw in (extra or {}).items() if issubclass(cls, base) for k, v in kw.items()}
        objects.append(_instantiate_node(conf, f"{key}.{name}", **kwargs))
    return objects


def _instantiate_node(node: DictConfig, key: str, refusals: tuple[type[Exception], ...] = (ValueError,),
                      refuser: str = "", **kwargs) -> object:
    """``instantiate(node, **kwargs)`` for the config node at ``key`` (``data``, ``model``, ``trainer``, ...).
    A ``refusals`` error raised by a constructor in it (by default a ``ValueError``: the library's error
    about an argument) becomes a ``ConfigError`` naming the ``key.*`` values its message mentions (or
    ``key``), after ``refuser`` (who refused), so that it is reported in a line and the refused run leaves no
    folder."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if not isinstance(cause, refusals) or isinstance(cause, ConfigError):
            raise
        message = " ".join(str(cause).split())
        named = [f"{path}={fmt(value)}" for path, value in _leaves(node, key)
                 if _mentions(message, path.rsplit(".", 1)[-1], value)]
        raise ConfigError(f"{' '.join(named) or key}: {refuser}{message}") from cause


def _leaves(node: DictConfig, key: str) -> list[tuple[str, object]]:
    """``(full key, value)`` of every value under ``node`` (at ``key``), but ``_target_`` / ``_partial_``."""
    leaves = []
    for name, value in node.items():
        if str(name) in ("_target_", "_partial_"):
            continue
        path = f"{key}.{name}"
        leaves += _leaves(value, path) if isinstance(value, DictConfig) else [(path, value)]
    return leaves


def train(cfg: DictConfig) -> float | None:
    """Fit ``cfg.model`` on ``cfg.data``; print final metrics and where logs and checkpoints are.

    Returns the value of ``cfg.optimized_metric`` (for sweeps and Optuna), or None if it was not logged.
    Raises ``ConfigError`` (before any data is generated or loaded) for bad config values, a fresh run in a
    folder that holds checkpoints, or a ``resume`` that cannot continue.
    """
    validate_config(cfg)
    if rank_zero_only.rank == 0:  # one process at a time in a run folder (resume=: taken by train.py already)
        lock_run_folder(Path(cfg.paths.output_dir))
    ckpt_path, logger_kwargs = cfg.get("ckpt_path"), None
    ckpt_name = f"ckpt_path={ckpt_path}"
    if cfg.get("resume"):
        last, step = resume_checkpoint(cfg)
        ckpt_path, ckpt_name = str(last), f"resume={cfg.resume}"
        # TensorBoard drops what the killed attempt logged after the checkpoint's step (it is redone).
        logger_kwargs = {TensorBoardLogger: {"purge_step": step + 1}}
    elif ckpt_path:  # a checkpoint already at max_epochs would train nothing and log no metric
        check_training_left(Path(ckpt_path), cfg.trainer, f"ckpt_path={ckpt_path}: the checkpoint")
    if cfg.get("print_config") and rank_zero_only.rank == 0:  # DDP relaunches train.py for every rank
        print_config_tree(cfg, order=("data", "model", "trainer", "callbacks", "logger", "paths"))
    pl.seed_everything(cfg.seed, workers=True)

    callbacks = _instantiate_group(cfg.get("callbacks"), "callbacks")
    callbacks.append(HParamsSession(run_hparams(cfg, **cfg.get("hparams", {}))))  # a row in the HParams view
    if cfg.get("resume"):
        callbacks.append(ResumeAttempt())  # the attempt counts once its training starts
    else:
        _refuse_used_checkpoint_dirs(callbacks)
    loggers = _instantiate_group(cfg.get("logger"), "logger", extra=logger_kwargs)
    plugins = [p if isinstance(p, str) else instantiate(p) for p in cfg.trainer.get("plugins") or []]
    if cfg.get("checkpoint_io"):
        plugins.append(instantiate(cfg.checkpoint_io))
    trainer = _build_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                             plugins=plugins or None)

    datamodule: pl.LightningDataModule = _instantiate_node(cfg.data, "data")
    datamodule.prepare_data()
    datamodule.setup("fit")
    model: pl.LightningModule = _instantiate_node(cfg.model, "model", **datamodule.model_kwargs())
    _check_monitored_metrics(callbacks, model)
    if cfg.get("test"):
        _check_testable(model, datamodule)
    if ckpt_path and hasattr(datamodule, "check_compatible"):
        _check_checkpoint_fits_data(ckpt_path, datamodule, model, ckpt_name)
    if ckpt_path:
        _check_checkpoint_fits_model(ckpt_path, model, cfg.model, ckpt_name)

    # Checkpoints hold the config (DictConfig) besides tensors: load them fully (the user's own runs).
    with warnings.catch_warnings():
        if cfg.get("resume"):  # the checkpoint folder is this run's own
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path="best", weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    if trainer.is_global_zero:
        write_metrics(Path(cfg.paths.output_dir), metrics)
        _print_summary(trainer, metrics, cfg)
    return metrics.get(cfg.get("optimized_metric") or "")


def _check_monitored_metrics(callbacks: list, model: pl.LightningModule) -> None:
    """Before training: every metric a callback monitors must be one the model logs (``model.metric_names``,
    when the model lists them) or a callback does (its ``metric_names``), instead of an error after the first
    validation epoch."""
    names = getattr(model, "metric_names", None)
    if names is not None:
        names = [*names, *(name for callback in callbacks for name in getattr(callback, "metric_names", ()))]
    for callback in callbacks if names is not None else []:
        monitor = getattr(callback, "monitor", None)
        if monitor and monitor not in names:
            close = difflib.get_close_matches(monitor, names, n=1)
            hint = f"did you mean monitor.metric={close[0]}? " if close else ""
            raise ConfigError(f"monitor.metric={monitor}: {type(model).__name__} logs no such metric ("
                              f"{type(callback).__name__} monitors it); {hint}it logs {', '.join(names)}")


def _check_testable(model: pl.LightningModule, datamodule: pl.LightningDataModule) -> None:
    """``test=true`` needs a model with a ``test_step`` and data with a test split; refused before training
    otherwise (it trained fully, then failed without writing metrics.json)."""
    lacking = [f"{type(model).__name__} has no test_step"] if not is_overridden("test_step", model) else []
    if not is_overridden("test_dataloader", datamodule):
        lacking.append(f"{type(datamodule).__name__} has no test split")
    if lacking:
        raise ConfigError(f"test=true: {' and '.join(lacking)}, so there is nothing to test; leave "
                          "test=false (the final validation metrics are the run's metrics)")


def _check_checkpoint_fits_data(ckpt_path: str, datamodule, model: pl.LightningModule, name: str) -> None:
    """Fail before fitting, naming file, keys and sizes, if the checkpoint is not a captioner's, or its stored
    network config differs from the model's, or its network (input_dim, vocabulary) does not fit the data
    (instead of a tensor size mismatch while loading its weights). ``name``: how the checkpoint was given
    (``ckpt_path=X``, ``resume=RUN``)."""
    hparams = read_captioner_hparams(ckpt_path)  # only the pickled metadata: trainer.fit loads the weights
    stored, current = hparams["net"], model.hparams.get("net", {})
    changed = sorted(set(stored) | set(current), key=lambda k: (k != "_target_", k))
    changed = [key for key in changed if stored.get(key, _ABSENT) != current.get(key, _ABSENT)]
    if changed:
        fix = " ".join(f"~model.net.{k}" if k not in stored else
                       f"{'' if k in current else '+'}model.net.{k}={fmt(stored[k])}" for k in changed)
        raise ConfigError(f"{name}: its network differs from model.net in "
                          f"{', '.join(changed)}; continue it with the settings it was trained with ({fix})")
    datamodule.check_compatible(int(hparams["input_dim"]), hparams["word_to_idx"])


def _refuse_used_checkpoint_dirs(callbacks: list) -> None:
    """A fresh run must not write into a folder that holds another run's checkpoints."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            folder = Path(callback.dirpath)
            found = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
            if found:
                run = folder.parent
                raise ConfigError(
                    f"{folder} already holds checkpoints ({', '.join(p.name for p in found[:3])}) of another "
                    f"run; a run never writes into another's folder. To continue that run: "
                    f"{command(f'resume={run}')}; for a new run leave hydra.run.dir unset (or give a new "
                    "folder)")


def _build_trainer(trainer: DictConfig, **kwargs) -> pl.Trainer:
    """Instantiate the ``trainer`` config with ``kwargs``. Lightning's refusal of a setting (a device this
    machine lacks, an unknown precision or strategy, ``devices`` the accelerator cannot use) becomes a
    ``ConfigError`` naming the ``trainer.*`` keys its message mentions (or ``trainer``)."""
    accelerator, known = trainer.get("accelerator"), AcceleratorRegistry.available_accelerators()
    present = {name for name in known if AcceleratorRegistry[name]["accelerator"].is_available()}
    wanted = "cuda" if accelerator == "gpu" else accelerator  # a name, or an Accelerator's config
    if isinstance(wanted, str) and wanted in known and wanted not in present:
        raise ConfigError(f"trainer.accelerator={accelerator}: this machine has none that Lightning can use "
                          f"(it has: {', '.join(sorted(present))}); use trainer.accelerator=cpu, or "
                          "trainer.accelerator=auto (the best device there is)")
    refusals = (MisconfigurationException, ValueError, TypeError, ImportError)
    return _instantiate_node(trainer, "trainer", refusals, "Lightning's Trainer refuses it: ", **kwargs)


def _mentions(message: str, key: str, value) -> bool:
    """Whether ``message`` names ``key`` or its (string) ``value`` as a word."""
    words = [key] + ([value] if isinstance(value, str) and value else [])
    return any(re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", message, re.IGNORECASE) for word in words)


def _check_checkpoint_fits_model(ckpt_path: str, model: pl.LightningModule, model_cfg: DictConfig,
                                 name: str) -> None:
    """Before fitting: ``ConfigError`` if the checkpoint's weights do not fit ``model`` (other parameter
    names, when the model loads strictly, or other shapes), naming the hyperparameters that differ from the
    checkpoint's (``model.<key>=<value>`` for those of ``model_cfg``) and the first tensor that does not fit,
    or, if no parameter name is shared, both models' parameters: instead of Lightning's size-mismatch
    traceback after the run has started. ``name``: how the checkpoint was given (``resume=RUN``,
    ``ckpt_path=X``)."""
    checkpoint = read_checkpoint(ckpt_path, mmap=True)  # only the metadata: tensors stay in the file
    state = checkpoint.get("state_dict") or {}
    theirs = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    advice = ("a resumed run continues the same model: drop the override (for a model of another size, start "
              "a new run)" if name.startswith("resume=") else
              "pass a checkpoint of this model, or the model overrides that checkpoint was trained with")
    if theirs and not ours.keys() & theirs.keys():
        raise ConfigError(f"{name}: {ckpt_path} holds another kind of model than this config builds (its "
                          f"parameters: {_few(theirs)}; this model's: {_few(ours)}); {advice}")
    misfits = [f"{k} is {list(theirs[k])} there and {list(ours[k])} here" for k in ours  # model's order
               if k in theirs and ours[k] != theirs[k]]
    if getattr(model, "strict_loading", True):
        misfits += [f"it lacks {k}" for k in sorted(ours.keys() - theirs.keys())]
        misfits += [f"it holds {k}, which this model lacks" for k in sorted(theirs.keys() - ours.keys())]
    if not misfits:
        return
    differ = _differing_hparams(checkpoint.get("hyper_parameters") or {}, dict(model.hparams), model_cfg)
    what = f"{_few(differ)} builds" if differ else "this config builds"
    raise ConfigError(f"{name}: {what} a model that does not fit {ckpt_path} ({_few(misfits, 1)}); "
                      f"{advice}")


def _few(items, shown: int = 4) -> str:
    """The first ``shown`` of ``items`` and how many more there are."""
    items = list(items)
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(map(str, items[:shown])) + more


def _differing_hparams(saved: Mapping, now: Mapping, model_cfg: DictConfig, prefix: str = "") -> list[str]:
    """The hyperparameters both ``saved`` and ``now`` have whose values differ: ``model.<key>=<value> (the
    checkpoint's: <value>)`` for keys of ``model_cfg``, the key alone for others (``word_to_idx``, from the
    data). A network config (a mapping with ``_target_``) is compared key by key
    (``model.net.hidden_dim``)."""
    found = []
    for key in sorted(set(saved) & set(now), key=str):
        path, old, new = f"{prefix}{key}", saved[key], now[key]
        if isinstance(old, Mapping) and isinstance(new, Mapping) and ("_target_" in old or "_target_" in new):
            found += _differing_hparams(old, new, model_cfg, f"{path}.")
        elif old != new:
            in_config = OmegaConf.select(model_cfg, path, default=_ABSENT) is not _ABSENT
            found.append(f"model.{path}={fmt(new)} (the checkpoint's: {fmt(old)})" if in_config else
                         f"{path} (not the checkpoint's)")
    return found


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
        # the run folder, not tensorboard/ (see visgrad.utils.hparams); quoted for the shell
        console.print(f"TensorBoard: tensorboard --logdir {shlex.quote(str(output_dir))}", soft_wrap=True)
