"""End to end: ``train.py`` (Hydra compose API) on a tiny `shapes` set, checkpoint evaluation, multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hparams_dashboard import read_dashboard
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.data import CaptionDataError
from visgrad.errors import CheckpointError, ConfigError
from visgrad.tasks import run_task
from visgrad.tasks.captions import load_captioner
from visgrad.training import train

TINY_MODEL = ["model.net.wordvec_dim=16", "model.net.hidden_dim=32", "model.meteor=false",
              "model.num_samples=4"]


def data_overrides(shapes_root: Path) -> list[str]:
    """Use the session's small `shapes` folder (its generator parameters, so it is not regenerated)."""
    return [f"data.root={shapes_root}", "data.shapes.num_train=200", "data.shapes.num_val=60",
            "data.batch_size=50"]


def tensorboard_tags(folder: Path) -> dict[str, list[str]]:
    events = sorted(folder.rglob("events.out.tfevents.*"))
    assert events, f"no TensorBoard event file under {folder}"
    tags: dict[str, list[str]] = {}
    for event in events:
        accumulator = EventAccumulator(str(event), size_guidance={"images": 0, "tensors": 0})
        accumulator.Reload()
        for kind, names in accumulator.Tags().items():
            if isinstance(names, list):
                tags.setdefault(kind, []).extend(names)
    return tags


@pytest.fixture(scope="module")
def trained_run(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two epochs of a tiny LSTM through train.py's config; returns (cfg, returned metric)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    out = tmp_path_factory.mktemp("train_run")
    GlobalHydra.instance().clear()
    conf_dir = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose("train", overrides=[*data_overrides(shapes_root), *TINY_MODEL, "model=lstm",
                                          "trainer.max_epochs=2", "print_config=false"],
                      return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.hydra.runtime.output_dir = str(out)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    value = train(cfg)
    GlobalHydra.instance().clear()
    return cfg, value


def test_train_logs_metrics_samples_and_checkpoints(trained_run) -> None:
    cfg, value = trained_run
    out = Path(cfg.paths.output_dir)
    assert value is not None and 0.0 <= value <= 1.0  # train.py returns val/bleu4
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == cfg.trainer.max_epochs - 1  # last.ckpt is the final epoch, not the best one
    assert len(list((out / "checkpoints").glob("best_epoch_*.ckpt"))) == 1  # best on val/bleu4
    tags = tensorboard_tags(out / "tensorboard")
    for name in ("train/loss_step", "train/loss_epoch", "val/loss", "val/bleu1", "val/bleu4", "val/cider_d",
                 "lr-Adam"):
        assert name in tags["scalars"], name
    assert "val/samples" in tags["images"]  # shapes has images: the caption grid
    assert any(t.startswith("val/samples") for t in tags["tensors"])  # the Markdown sample table
    # the learning rate decays once per epoch (ExponentialLR)
    accumulator = EventAccumulator(str(next((out / "tensorboard").rglob("events.out.tfevents.*"))))
    accumulator.Reload()
    lrs = [e.value for e in accumulator.Scalars("lr-Adam")]
    assert lrs[0] == pytest.approx(cfg.model.optimizer.lr)
    assert lrs[-1] == pytest.approx(cfg.model.optimizer.lr * cfg.model.scheduler.gamma)


def test_train_run_is_a_row_of_the_hparams_dashboard(trained_run) -> None:
    """TensorBoard's HParams dashboard on the run folder: the run's hyperparameters (columns and
    overrides) and its final metrics, equal to those train.py printed and wrote to metrics.json."""
    cfg, _ = trained_run
    out = Path(cfg.paths.output_dir)
    dashboard = read_dashboard(out)
    (row,) = dashboard.rows.values()
    assert row.status == "STATUS_SUCCESS"
    assert {"cell_type": "lstm", "hidden_dim": 32, "wordvec_dim": 16, "lr": 0.005, "max_epochs": 2,
            "model": "lstm", "batch_size": 50, "data.shapes.num_val": 60}.items() <= row.hparams.items()
    assert "data.batch_size" not in row.hparams  # an override of a column is not repeated
    final = json.loads((out / "metrics.json").read_text())
    for name in ("val/bleu4", "val/cider_d", "val/loss", cfg.monitor.metric):
        assert name in dashboard.metrics
        assert row.metrics[name] == pytest.approx(final[name], rel=1e-6), name


def test_fast_dev_run_rnn_with_beam_metrics(compose_cfg, shapes_root: Path) -> None:
    """One batch of train and val (debug=fdr); beam-search metrics logged as val/beam/* on request."""
    cfg = compose_cfg("train", [*data_overrides(shapes_root), *TINY_MODEL, "model=rnn", "debug=fdr",
                                "model.beam_metrics=true", "optimized_metric=val/beam/cider_d"])
    value = train(cfg)
    assert value is not None and value >= 0.0


def test_checkpoint_that_does_not_fit_the_data_fails_before_fitting(trained_run, compose_cfg,
                                                                    shapes_root: Path) -> None:
    """ckpt_path= of a model trained on the PCA features, with the raw features selected: a clear
    error naming both sizes and the fix, not a tensor size mismatch."""
    train_cfg, _ = trained_run
    ckpt = Path(train_cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    cfg = compose_cfg("train", [*data_overrides(shapes_root), *TINY_MODEL, "model=lstm", f"ckpt_path={ckpt}",
                                "data.pca_features=false", "trainer.max_epochs=3"])
    with pytest.raises(CaptionDataError, match=r"the model takes \d+-d features \(input_dim\) but .*"
                                               r"train2014_vgg16_fc7\.h5 holds \d+-d ones; set "
                                               r"data\.pca_features=true"):
        train(cfg)


def test_checkpoint_of_another_network_or_version_fails_before_fitting(
        trained_run, compose_cfg, shapes_root: Path, tmp_path: Path) -> None:
    """ckpt_path= whose stored network differs from model.net (or of an older visgrad, or no captioner's):
    refused before any fitting, naming the differing keys and the overrides that match the checkpoint."""
    train_cfg, _ = trained_run
    ckpt = Path(train_cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    base = [*data_overrides(shapes_root), *TINY_MODEL, "trainer.max_epochs=3"]
    cfg = compose_cfg("train", [*base, "model=rnn", "model.net.hidden_dim=64", f"ckpt_path={ckpt}"])
    with pytest.raises(ConfigError, match=rf"^ckpt_path={ckpt}: its network differs from model.net in "
                                          r"cell_type, hidden_dim; continue it with the settings it was "
                                          r"trained with \(model.net.cell_type='lstm' "
                                          r"model.net.hidden_dim=32\)$"):
        train(cfg)
    old = tmp_path / "old.ckpt"
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"], "cell_type": "lstm"}
    del checkpoint["hyper_parameters"]["net"]
    torch.save(checkpoint, old)
    cfg = compose_cfg("train", [*base, "model=lstm", f"ckpt_path={old}"])
    with pytest.raises(CheckpointError, match=r"old.ckpt was written by an older visgrad"):
        train(cfg)
    assert not list(Path(cfg.paths.output_dir).rglob("*.ckpt"))


def test_bf16_mixed_fast_dev_run_on_cpu(compose_cfg, shapes_root: Path) -> None:
    """trainer.precision=bf16-mixed (CPU autocast) trains and validates; parameters stay float32."""
    cfg = compose_cfg("train", [*data_overrides(shapes_root), *TINY_MODEL, "model=lstm", "debug=fdr",
                                "trainer.precision=bf16-mixed", "optimized_metric=val/loss"])
    value = train(cfg)
    assert value is not None and 0.0 < value < 100.0


def test_evaluate_checkpoint_task(trained_run, compose_cfg, shapes_root: Path) -> None:
    train_cfg, _ = trained_run
    ckpt = Path(train_cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    cfg = compose_cfg("visualize", ["task=captions", f"ckpt_path={ckpt}", *data_overrides(shapes_root)[:3],
                                    "task.meteor=false", "task.num_images=4", "device=cpu",
                                    "task.strategies.beam.beam_size=3"])
    metric = run_task(cfg)
    out = Path(cfg.paths.output_dir)
    assert (out / "captions.png").is_file() and (out / "captions.json").is_file()
    assert metric is not None and 0.0 <= metric <= 1.0  # greedy/bleu4
    tags = tensorboard_tags(out / "tensorboard")
    assert "greedy/bleu4" in tags["scalars"] and "beam/cider_d" in tags["scalars"]  # the metrics.json keys
    assert "captions/samples" in tags["images"]
    (row,) = read_dashboard(out).rows.values()  # the HParams dashboard: checkpoint, options, metrics
    assert row.hparams["ckpt_path"] == str(ckpt) and row.hparams["strategies.beam.beam_size"] == 3
    assert row.metrics["greedy/bleu4"] == pytest.approx(metric)


def test_evaluate_task_errors(compose_cfg, shapes_root: Path, tmp_path: Path) -> None:
    base = ["task=captions", *data_overrides(shapes_root)[:3]]
    with pytest.raises(ValueError, match="needs a checkpoint: pass ckpt_path=PATH"):
        run_task(compose_cfg("visualize", base))
    with pytest.raises(CheckpointError, match=r"nope.ckpt: no such checkpoint file; pass ckpt_path=PATH"):
        run_task(compose_cfg("visualize", [*base, f"ckpt_path={tmp_path / 'nope.ckpt'}"]))
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.weight": torch.zeros(2)}, "hyper_parameters": {"lr": 1}}, other)
    with pytest.raises(CheckpointError, match=r"other.ckpt is not a captioner checkpoint: its "
                                              r"hyperparameters are lr \(.*\); pass ckpt_path=PATH"):
        run_task(compose_cfg("visualize", [*base, f"ckpt_path={other}"]))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage.ckpt is not a readable checkpoint \(truncated"):
        load_captioner(garbage, torch.device("cpu"))


@pytest.mark.slow
def test_multirun_sweeps_cell_types(shapes_root: Path, tmp_path: Path, project_root: Path) -> None:
    """``python train.py -m model=rnn,lstm ... debug=fdr`` runs both jobs (one batch each)."""
    env = {**os.environ, "VISGRAD_ROOT": str(tmp_path)}
    command = [sys.executable, str(project_root / "train.py"), "-m", "model=rnn,lstm",
               *data_overrides(shapes_root), *TINY_MODEL, "debug=fdr", "print_config=false",
               "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    for job in jobs:
        overrides = (sweep / job / ".hydra" / "overrides.yaml").read_text()
        assert ("model=rnn" in overrides) == (job == "0")
