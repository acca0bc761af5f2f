"""TensorBoard HParams sessions (``visgrad.utils.hparams``): which hyperparameters a run records, and what
the dashboard shows for them (read back with TensorBoard's own HParams backend, ``hparams_dashboard``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hparams_dashboard import read_dashboard
from omegaconf import OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter

from visgrad.tasks import TASKS, run_task
from visgrad.tasks.config import read_options
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.utils.hparams import HParamsSession, end_session, run_hparams, start_session


def test_train_hparams_are_the_columns_plus_the_overrides(compose_cfg) -> None:
    cfg = compose_cfg("train", ["model=rnn", "model.net.hidden_dim=64", "model.max_length=12",
                                "paths.log_dir=/x", "print_config=false", "+model.extra=[1,2]"])
    hparams = run_hparams(cfg, **cfg.hparams)
    assert hparams == {
        "model": "rnn", "data": "shapes", "cell_type": "rnn", "wordvec_dim": 128, "hidden_dim": 64,
        "lr": 0.005, "lr_decay": 0.9, "batch_size": 100, "max_epochs": 10, "seed": 231,
        # overrides that are no column, under their own key (and not paths.*, print_config: ignored)
        "model.max_length": 12, "model.extra": "[1, 2]"}


def test_transformer_columns(compose_cfg) -> None:
    cfg = compose_cfg("train", ["model=transformer"])
    hparams = run_hparams(cfg, **cfg.hparams)
    net = cfg.model.net
    assert {"model": "transformer", "num_heads": net.num_heads, "num_layers": net.num_layers,
            "dim_feedforward": net.dim_feedforward, "lr": cfg.model.optimizer.lr}.items() <= hparams.items()
    assert "hidden_dim" not in hparams and "cell_type" not in hparams  # not the Transformer's: no column


def test_columns_take_the_first_key_the_config_has(compose_cfg) -> None:
    """The shapes classifier has no cell type and no model group (its experiment defines the model)."""
    cfg = compose_cfg("train", ["experiment=shapes_classifier"])
    hparams = run_hparams(cfg, **cfg.hparams)
    assert hparams["lr"] == cfg.model.optimizer.lr and hparams["experiment"] == "shapes_classifier"
    assert "cell_type" not in hparams and "model" not in hparams


def test_task_hparams_are_its_options(compose_cfg) -> None:
    cfg = compose_cfg("visualize", ["task=saliency", "classifier=shapes", "task.methods=[smoothgrad]",
                                    "device=cpu", "print_config=false"])
    expected = {
        "task": "saliency", "classifier": "shapes", "seed": 231, "methods": "['smoothgrad']",
        "images": "null", "num_images": 200, "num_show": 7, "target": "null", "smoothgrad.num_samples": 12,
        "smoothgrad.noise_level": 0.15, "integrated_gradients.steps": 12,
        "integrated_gradients.baseline": "blur", "attention_rollout.head_fusion": "mean",
        "gradcam.relu": True, "gradcam.upsample": "bilinear", "guided_gradcam.upsample": "bilinear",
        "occlusion.patch": 32, "occlusion.stride": 16, "occlusion.fill": "mean",
        "occlusion.score": "probability", "occlusion.batch_size": 16, "rise.num_masks": 500, "rise.grid": 7,
        "rise.p": 0.5, "rise.fill": "black", "rise.score": "probability", "rise.batch_size": 16,
        "metrics.steps": 12,
        "metrics.patch": 8,
        "metrics.deletion_fill": "blur", "metrics.blur": 5.0, "device": "cpu"}
    assert run_hparams(cfg, **cfg.hparams) == expected  # read from the config node
    task = TASKS.get("saliency")  # what the task's run records: its parsed options
    options, entry_options = read_options(task, OmegaConf.to_container(cfg.task, resolve=True))
    assert TaskRun(cfg, task, options, torch.device("cpu"), None, entry_options).hparams() == expected


def test_dashboard_shows_every_runs_columns_in_a_mixed_logdir(tmp_path: Path) -> None:
    """Two runs with different hyperparameters and metrics (a captioner and a task, say): the dashboard
    lists both with the union of the columns, and each metric's last value."""
    first = SummaryWriter(str(tmp_path / "a"))
    start_session(first, {"cell_type": "lstm", "hidden_dim": 128, "beam": True})
    for step, value in enumerate([0.1, 0.5]):
        first.add_scalar("val/bleu4", value, step)
    end_session(first)
    second = SummaryWriter(str(tmp_path / "b"))
    start_session(second, {"method": "smoothgrad", "num_samples": 25})
    second.add_scalar("saliency/pointing_game", 0.75)
    end_session(second, success=False)
    for writer in (first, second):
        writer.close()
    dashboard = read_dashboard(tmp_path)
    assert sorted(dashboard.hparams) == ["beam", "cell_type", "hidden_dim", "method", "num_samples"]
    assert sorted(dashboard.metrics) == ["saliency/pointing_game", "val/bleu4"]
    a, b = dashboard.rows["a"], dashboard.rows["b"]
    assert a.hparams == {"cell_type": "lstm", "hidden_dim": 128.0, "beam": True}
    assert a.metrics == {"val/bleu4": pytest.approx(0.5)} and a.status == "STATUS_SUCCESS"
    assert b.hparams == {"method": "smoothgrad", "num_samples": 25.0}
    assert b.metrics == {"saliency/pointing_game": pytest.approx(0.75)} and b.status == "STATUS_FAILURE"


def _boom(run, prepared) -> dict[str, float]:
    run.writer.add_scalar("boom/step", 1.0)
    raise RuntimeError("boom")


FAILING = Task("failing", "a task that raises", prepare=lambda run: None, run=_boom, uses_classifier=False)


def test_a_task_that_raises_is_a_failed_row(compose_cfg) -> None:
    cfg = compose_cfg("visualize", ["task=saliency", "classifier=shapes", "task.methods=smoothgrad"])
    cfg.task.name = f"{__name__}.FAILING"  # a task without options: its keys are taken as they are
    with pytest.raises(RuntimeError, match="boom"):
        run_task(cfg)
    (row,) = read_dashboard(Path(cfg.paths.output_dir)).rows.values()
    assert row.status == "STATUS_FAILURE" and row.hparams["methods"] == "smoothgrad"
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


class _Fails(pl.LightningModule):
    """Logs a metric at step 0 and raises at step 1."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        if batch_idx == 1:
            raise RuntimeError("boom")
        loss = self.layer(batch[0]).square().mean()
        self.log("train/loss", loss)
        return loss

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_fit_that_raises_ends_its_session_as_failed(tmp_path: Path) -> None:
    trainer = pl.Trainer(max_epochs=1, logger=TensorBoardLogger(str(tmp_path / "run"), name=None, version=""),
                         callbacks=[HParamsSession({"lr": 0.1})], log_every_n_steps=1,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(_Fails())
    (row,) = read_dashboard(tmp_path).rows.values()
    assert row.status == "STATUS_FAILURE" and row.hparams == {"lr": 0.1} and "train/loss" in row.metrics
