"""Slow: CS231n's overfit experiments reach their loss targets; the Optuna search runs trials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hparams_dashboard import read_dashboard
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.training import train

SMALL_DATA = ["data.shapes.num_train=200", "data.shapes.num_val=60", "model.meteor=false"]


@pytest.fixture(scope="module")
def large_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default 4000-image training split (same seed), so that 50 random captions come from 50 distinct
    images as on COCO; on the 200-image set many share an image, and one image's different captions
    cannot all be fitted (the RNN then plateaus near 0.3)."""
    from visgrad.data.shapes import ensure_shapes

    return ensure_shapes(tmp_path_factory.mktemp("shapes4000"), num_train=4000, num_val=60, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("experiment,target", [("overfit_rnn", 0.1), ("overfit_lstm", 0.5)])
def test_overfit_small_data(compose_cfg, large_shapes: Path, experiment: str, target: float) -> None:
    """50 training captions, 50 epochs: the final training loss is below CS231n's target."""
    cfg = compose_cfg("train", [f"experiment={experiment}", f"data.root={large_shapes}",
                                "data.shapes.num_val=60", "model.meteor=false"])
    assert cfg.data.max_train == 50 and cfg.data.batch_size == 25 and cfg.trainer.max_epochs == 50
    train(cfg)
    event = next((Path(cfg.paths.output_dir) / "tensorboard").rglob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(event))
    accumulator.Reload()
    losses = [e.value for e in accumulator.Scalars("train/loss_epoch")]
    assert len(losses) == 50
    assert losses[-1] < target, f"final training loss {losses[-1]:.4f} (target < {target})"


@pytest.mark.slow
def test_optuna_search_runs_trials(shapes_root: Path, tmp_path: Path, project_root: Path) -> None:
    """``hparams_search=captioning_optuna`` runs its trials and reports the best val/bleu4."""
    env = {**os.environ, "VISGRAD_ROOT": str(tmp_path)}
    command = [sys.executable, str(project_root / "train.py"), "hparams_search=captioning_optuna",
               "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1",
               f"data.root={shapes_root}", *SMALL_DATA, "trainer.max_epochs=1",
               "trainer.limit_train_batches=3", "print_config=false", "callbacks=none"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in best and "best_value" in best
    # TensorBoard's HParams dashboard on the sweep: one row per trial, with the values Optuna sampled
    dashboard = read_dashboard(sweep)
    assert sorted(dashboard.rows) == ["0/tensorboard", "1/tensorboard"]
    for job, row in dashboard.rows.items():
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(sweep / job.split("/")[0] / ".hydra" /
                                                                   "overrides.yaml"))
        assert row.hparams["cell_type"] == overrides["model.net.cell_type"]
        assert row.hparams["lr"] == pytest.approx(float(overrides["model.optimizer.lr"]))
        assert row.hparams["hidden_dim"] == float(overrides["model.net.hidden_dim"])
        assert row.status == "STATUS_SUCCESS" and 0.0 <= row.metrics["val/bleu4"] <= 1.0
