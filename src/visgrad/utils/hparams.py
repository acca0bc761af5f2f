"""TensorBoard HParams sessions: every ``train.py`` and ``visualize.py`` run is one row of the HParams
dashboard, so ``tensorboard --logdir <multirun folder>`` compares the jobs of a sweep (or Optuna's trials)
by their hyperparameters and final metrics.

A session is the HParams plugin's ``SessionStartInfo`` (the run's hyperparameters as flat ``name: value``
pairs, written when the run starts) and ``SessionEndInfo`` (success or failure, written when it ends), in
the run's own event folder. The metric columns are the run's own scalars (``val/bleu4``, ``val/loss``, a
task's summary metrics, ...): the dashboard shows each tag's last value, i.e. the final one. Training ends
its session with the ``HParamsSession`` callback, a task its ``TaskRun`` (``visgrad.tasks.lifecycle``), which
ends it as failed when the task raises.

No ``Experiment`` summary is written (``torch.utils.tensorboard.summary.hparams`` and Lightning's
``log_hyperparams(params, metrics)`` write one per run): TensorBoard uses the first ``Experiment`` it finds
and ignores the others, so in a logdir that mixes runs (``--logdir logs``: captioners, GANs and
visualization tasks) one run's columns would hide every other run's. Without one, the dashboard takes
the union of all sessions' hyperparameters and every scalar the sessions logged as metrics.

Point TensorBoard at a run folder or any folder above it, not at the run's ``tensorboard/`` folder itself:
a session at the logdir's root (run ``.``) gets no metric values (TensorBoard 2.21 looks them up in run
``./.``), so the apps print ``tensorboard --logdir <run folder>``.

Which hyperparameters (``run_hparams``): the configured ``columns`` (``name: config key``, e.g.
``cell_type: model.net.cell_type``; a list of keys takes the first one the config has; a config group's name
gives its choice, ``model: lstm``; keys a config lacks are left out), the scalar options under
``options_of`` (a task's options: the config node's, or the parsed options with their defaults that the
task lifecycle passes as ``options``), and every key overridden on the command line or by the sweeper
(``model.net.hidden_dim``, Optuna's parameters; from ``HydraConfig``), except the ``ignore``d keys
(``paths.log_dir``). Values are numbers, booleans or strings (``null``, lists and dicts as text).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

HParamValue = bool | int | float | str
_MISSING = object()


def run_hparams(cfg: DictConfig, columns: Mapping[str, str | Sequence[str]] | None = None,
                options_of: str | None = None, ignore: Sequence[str] = (),
                options: Mapping[str, object] | None = None) -> dict[str, HParamValue]:
    """The run's hyperparameters as flat ``{name: value}`` (see the module docstring for which).

    Args:
        cfg: the composed config of the run.
        columns: ``{name: key or [keys]}``; a key is a dotted config path or a config group's name.
        options_of: a config node (e.g. ``"task"``) whose scalar leaves are all added, named by their path
            below it (``method``, ``smoothgrad.num_samples``).
        ignore: these keys and the keys below them are not hyperparameters (``paths``, ``print_config``,
            ``task.name``): overrides and options of them are left out.
        options: the values of the ``options_of`` node as ``{path below it: value}``, used instead of
            reading the node (a task's parsed options, defaults included).
    """
    choices = _group_choices()
    hparams: dict[str, HParamValue] = {}
    named: set[str] = set()  # config keys shown already (an override of a column is not repeated)
    for name, keys in (columns or {}).items():
        for key in [keys] if isinstance(keys, str) else list(keys):
            value = _value(cfg, key, choices)
            if value is not None:
                hparams[str(name)] = value
                named.add(key)
                break
    if options_of is not None:
        if options is None:
            node = OmegaConf.select(cfg, options_of)
            paths = _leaf_paths(node) if isinstance(node, DictConfig) else []
            options = {path: _value(cfg, f"{options_of}.{path}", choices) for path in paths}
        for path, value in options.items():
            key = f"{options_of}.{path}"
            if key not in named and path not in hparams and not _ignored(key, ignore):
                hparams[path] = _column(value)
                named.add(key)
    for key, text in _overrides():
        if key in named or key in hparams or _ignored(key, ignore):
            continue
        value = _value(cfg, key, choices)
        hparams[key] = text if value is None else value
    return hparams


def start_session(writer: SummaryWriter, hparams: Mapping[str, HParamValue]) -> None:
    """Write the session start (the hyperparameters) into ``writer``'s event folder, and flush it (so a
    running job shows up in the dashboard)."""
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        if isinstance(value, bool):  # before int: bool is an int
            info.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            info.hparams[name].number_value = value
        else:
            info.hparams[name].string_value = str(value)
    data = plugin_data_pb2.HParamsPluginData(session_start_info=info)
    _write(writer, metadata.SESSION_START_INFO_TAG, data)


def end_session(writer: SummaryWriter, success: bool = True) -> None:
    """Write the session end (status success or failure) into ``writer``'s event folder, and flush it."""
    status = api_pb2.STATUS_SUCCESS if success else api_pb2.STATUS_FAILURE
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    _write(writer, metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=info))


class HParamsSession(Callback):
    """Lightning callback: an HParams session in the event folder of every ``TensorBoardLogger`` of the
    trainer, started when fitting starts, ended (success) when it ends or (failure) on an exception."""

    def __init__(self, hparams: Mapping[str, HParamValue]) -> None:
        self.hparams = dict(hparams)
        self._writers: list[SummaryWriter] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._writers = [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        for writer in self._writers:
            start_session(writer, self.hparams)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(success=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException,
                     ) -> None:
        self._end(success=False)

    def _end(self, success: bool) -> None:
        writers, self._writers = self._writers, []  # once: a later test stage does not end it again
        for writer in writers:
            end_session(writer, success)


def _write(writer: SummaryWriter, tag: str, data: plugin_data_pb2.HParamsPluginData) -> None:
    summary = Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])
    writer._get_file_writer().add_summary(summary)  # as torch's add_hparams and Lightning's logger do
    writer.flush()


def _value(cfg: DictConfig, key: str, choices: Mapping[str, str | None]) -> HParamValue | None:
    """A config value as a column value: scalars as they are, lists, dicts and null as text; a config
    group's name gives its choice. None when the config has no such key (or the group is unset)."""
    if key in choices:  # a config group: its choice (None when the group is unset)
        return choices[key]
    value = OmegaConf.select(cfg, key, default=_MISSING)
    if value is _MISSING:
        return None
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return _column(value)


def _column(value: object) -> HParamValue:
    """A value as a column: numbers, booleans and strings as they are; null, lists and dicts as text."""
    if value is None:
        return "null"
    return str(value) if isinstance(value, (list, tuple, dict)) else value


def _ignored(key: str, ignore: Sequence[str]) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in ignore)


def _leaf_paths(node: DictConfig, prefix: str = "") -> list[str]:
    """Dotted paths of the scalar (non-node) values under ``node``; lists count as scalars."""
    paths = []
    for key in node:
        path = f"{prefix}{key}"
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            paths += _leaf_paths(child, path + ".")
        else:
            paths.append(path)
    return paths


def _group_choices() -> dict[str, str | None]:
    """Hydra's config group choices of this run (``model: lstm``; None: unset), without Hydra's own."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {str(k): None if v is None else str(v) for k, v in choices.items()
            if not str(k).startswith("hydra/")}


def _overrides() -> list[tuple[str, str]]:
    """(key, value text) of every command-line and sweeper override of this run (not deletions)."""
    if not HydraConfig.initialized():
        return []
    parsed = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    return [(o.key_or_group, o.get_value_element_as_str()) for o in parsed if not o.is_delete()]

