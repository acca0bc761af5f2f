"""Test helper: what TensorBoard's HParams dashboard shows for a logdir, read with TensorBoard's own event
multiplexer and HParams plugin backend (the code behind the dashboard's ``experiment`` and
``session_groups`` requests). Importable as ``hparams_dashboard`` in pytest (tests/ is on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups


@dataclass
class Row:
    status: str  # STATUS_SUCCESS | STATUS_FAILURE | STATUS_UNKNOWN (no end written yet)
    hparams: dict[str, bool | float | str]
    metrics: dict[str, float]


@dataclass
class Dashboard:
    """``hparams``: the hyperparameter columns; ``metrics``: the metric columns (scalar tags);
    ``rows``: one per session (run), by session name."""

    hparams: list[str]
    metrics: list[str]
    rows: dict[str, Row]


def read_dashboard(logdir: Path) -> Dashboard:
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    context = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer,
                                                            data_provider=provider))
    request = tb_context.RequestContext()
    experiment = get_experiment.Handler(request, context, "", api_pb2.GetExperimentRequest()).run()
    groups = list_session_groups.Handler(request, context, "", api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=1000, allowed_statuses=list(api_pb2.Status.values()))).run()
    rows = {}
    for group in groups.session_groups:
        for session in group.sessions:
            rows[session.name] = Row(
                status=api_pb2.Status.Name(session.status),
                hparams={name: getattr(v, v.WhichOneof("kind")) for name, v in group.hparams.items()},
                metrics={m.name.tag: m.value for m in session.metric_values},
            )
    return Dashboard(hparams=[h.name for h in experiment.hparam_infos],
                     metrics=[m.name.tag for m in experiment.metric_infos], rows=rows)
