"""A ``-m`` sweep with one failing job keeps the other job's results and writes/prints a summary table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hparams_dashboard import read_dashboard

from visgrad.utils.sweep_summary import markdown_table, write_summary

ROOT = Path(__file__).resolve().parents[1]


def test_multirun_with_a_failing_job(shapes_root: Path, tmp_path: Path) -> None:
    """Job 1 gets a bad learning rate and fails; job 0 trains; both are in summary.csv/.md and printed."""
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])  # this checkout's visgrad
    env = {**os.environ, "VISGRAD_ROOT": str(tmp_path), "PYTHONPATH": path}
    command = [sys.executable, str(ROOT / "train.py"), "-m", "model.optimizer.lr=0.005,-1",
               f"data.root={shapes_root}", "data.shapes.num_train=200", "data.shapes.num_val=60",
               "data.batch_size=50", "data.max_train=100", "model.net.wordvec_dim=16",
               "model.net.hidden_dim=32",
               "model.meteor=false", "model.num_samples=0", "trainer.max_epochs=1", "print_config=false",
               "callbacks.rich_progress_bar=null", "hydra/job_logging=disabled",
               "hydra/hydra_logging=disabled"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]  # Hydra re-raises the failure after all jobs ran
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    with open(sweep / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["job"], r["status"], r["overrides"]) for r in rows] == [
        ("0", "ok", "model.optimizer.lr=0.005"), ("1", "failed", "model.optimizer.lr=-1")]
    ok, failed = rows
    assert ok["error"] == "" and 0.0 <= float(ok["val/bleu4"]) <= 1.0 and float(ok["val/loss"]) > 0
    assert ok["run_dir"] == str(sweep / "0") and (sweep / "0" / "checkpoints" / "last.ckpt").is_file()
    assert failed["error"] == ("ConfigError: model.optimizer.lr=-1: must be a positive number; "
                               "e.g. model.optimizer.lr=0.005")
    assert failed["val/bleu4"] == "" and failed["run_dir"] == str(sweep / "1")
    markdown = (sweep / "summary.md").read_text()
    assert "| 1 | failed | model.optimizer.lr=-1 |" in markdown
    assert f"sweep summary ({sweep / 'summary.csv'})" in result.stdout and "| 0 | ok |" in result.stdout
    # TensorBoard's HParams dashboard on the sweep folder: job 0 is a row with its swept lr and final
    # metrics; job 1 was refused before it started (bad config), so it has no session.
    dashboard = read_dashboard(sweep)
    assert list(dashboard.rows) == ["0/tensorboard"]
    row = dashboard.rows["0/tensorboard"]
    assert row.status == "STATUS_SUCCESS" and row.hparams["lr"] == 0.005
    assert row.hparams["cell_type"] == "lstm" and "model.optimizer.lr" not in row.hparams
    assert row.metrics["val/bleu4"] == pytest.approx(float(ok["val/bleu4"]), rel=1e-3)  # summary: 4 digits


def test_summary_is_rebuilt_from_the_job_rows(tmp_path: Path) -> None:
    """Rows come from each job folder's sweep_job.json (so parallel or killed sweeps keep them), in job
    order; metrics columns are the union of what the jobs logged, without per-step values."""
    for job, status, metrics in [(1, "failed", {}), (0, "ok", {"val/bleu4": 0.5, "train/loss_step": 3.0})]:
        (tmp_path / str(job)).mkdir()
        error = "ValueError: bad | value" if status == "failed" else ""
        row = {"job": job, "status": status, "overrides": f"a={job}", "metrics": metrics, "error": error,
               "run_dir": str(tmp_path / str(job))}
        (tmp_path / str(job) / "sweep_job.json").write_text(json.dumps(row))
    table = write_summary(tmp_path)
    assert [(r["job"], r["status"], r["val/bleu4"]) for r in table] == [("0", "ok", "0.5"),
                                                                       ("1", "failed", "")]
    assert "train/loss_step" not in table[0]
    header = (tmp_path / "summary.csv").read_text().splitlines()[0]
    assert header == "job,status,overrides,val/bleu4,error,run_dir"
    assert "ValueError: bad \\| value" in (tmp_path / "summary.md").read_text()
    assert markdown_table(["a"], [{"a": "x"}]) == "| a |\n|---|\n| x |\n"


def test_resumed_sweep_job_updates_its_row(shapes_root: Path, tmp_path: Path) -> None:
    """A sweep killed during job 0 has no row for it; ``train.py resume=<sweep>/0`` finishes the job and
    its row appears; resuming it again for more epochs replaces the row's metrics."""
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    env = {**os.environ, "VISGRAD_ROOT": str(tmp_path), "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"

    def train(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    # 4 steps per epoch: killed in epoch 2 of job 0, after its last.ckpt of epoch 1
    killed = train("-m", "model.net.hidden_dim=16,24", f"data.root={shapes_root}",
                   "data.shapes.num_train=200", "data.shapes.num_val=60", "data.batch_size=50",
                   "data.max_train=200", "model.net.wordvec_dim=16", "model.meteor=false",
                   "model.num_samples=0", "trainer.max_epochs=2", "print_config=false",
                   "callbacks.rich_progress_bar=null", "hydra/job_logging=disabled",
                   f"hydra.sweep.dir={sweep}", "+callbacks.kill._target_=fault_injection.KillAtStep",
                   "+callbacks.kill.step=6")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not (sweep / "summary.csv").exists() and not (sweep / "1").exists()

    def row() -> dict[str, str]:
        with open(sweep / "summary.csv", newline="") as file:
            (only,) = list(csv.DictReader(file))
        return only

    for epochs in (2, 3):
        result = train(f"resume={sweep / '0'}", f"trainer.max_epochs={epochs}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"sweep summary updated: {sweep / 'summary.md'}" in result.stdout
        metrics = json.loads((sweep / "0" / "metrics.json").read_text())
        line = row()
        assert (line["job"], line["status"], line["overrides"]) == ("0", "ok", "model.net.hidden_dim=16")
        assert line["run_dir"] == str(sweep / "0") and line["error"] == ""
        assert float(line["val/loss"]) == pytest.approx(metrics["val/loss"], rel=1e-3)
        assert float(line["lr-Adam"]) == pytest.approx(0.005 * 0.9 ** (epochs - 1), rel=1e-3)  # epoch's lr
