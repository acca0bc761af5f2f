"""User errors are a few lines, bugs keep their traceback; a refused run changes nothing that existed
before it (another run's folder, its .hydra/ files) and leaves no empty folder; one process per run folder;
corrupt checkpoints and full disks are named as such."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fault_injection import run_lock_holder

from visgrad.data.coco import CaptionDataError
from visgrad.errors import CheckpointError, DiskFullError, UserError
from visgrad.training import train
from visgrad.utils.checkpoint_io import atomic_open, disk_full_error, read_checkpoint
from visgrad.utils.preflight import ConfigError
from visgrad.utils.reporting import ReportedError, user_errors_reported
from visgrad.utils.run_folder import lock_run_folder, release_run_folder

ROOT = Path(__file__).resolve().parents[1]


def run_app(app: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VISGRAD_ROOT": str(cwd), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, str(ROOT / app), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in folder.rglob("*")}


def test_user_errors_are_reported_without_traceback(monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert issubclass(ConfigError, UserError) and issubclass(CaptionDataError, UserError)
    with pytest.raises(ReportedError, match=r"^Error: model.optimizer.lr=-1: must be") as caught:
        with user_errors_reported():
            raise ConfigError("model.optimizer.lr=-1: must be a positive number")
    assert isinstance(caught.value.__cause__, ConfigError)
    with pytest.raises(KeyError):  # a bug: unchanged, Hydra prints its traceback
        with user_errors_reported():
            raise KeyError("bug")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError):  # the full traceback on request
        with user_errors_reported():
            raise ConfigError("x")


def test_full_disk_is_named_also_through_torch_save(tmp_path: Path, monkeypatch) -> None:
    """torch.save turns "no space left" into RuntimeError("[enforce fail ...] unexpected pos ..."): the
    reported error says disk full and names the file."""

    class FullDisk(io.RawIOBase):  # room for 1000 bytes
        written = 0

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            self.written += len(data)
            if self.written > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(data)

    with pytest.raises(RuntimeError, match="unexpected pos") as caught:
        torch.save({"w": torch.zeros(1000)}, FullDisk())
    target = tmp_path / "last.ckpt"
    error = disk_full_error(caught.value, target)
    assert isinstance(error, DiskFullError)
    assert str(error).startswith(f"disk full: could not write {target} (No space left on device; ")
    assert disk_full_error(RuntimeError("unexpected pos")) is None

    target.write_text("old")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(ReportedError, match=r"^Error: disk full: could not write .*last.ckpt"):
        with user_errors_reported(), atomic_open(target, "wb") as file:
            torch.save({"w": torch.zeros(1000)}, FullDisk())  # as a full disk fails inside the write
            file.write(b"never")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_corrupt_truncated_or_folder_checkpoint_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.ckpt"
    torch.save({"epoch": 0, "global_step": 4, "w": torch.ones(1000)}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(os.urandom(4096))
    for path in (truncated, noise):
        with pytest.raises(CheckpointError, match=rf"^{path} is not a readable checkpoint \(truncated or "
                                                  r"corrupt: .*\); use another one"):
            read_checkpoint(path)
    with pytest.raises(CheckpointError, match=rf"^{tmp_path} is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path)
    assert read_checkpoint(good, mmap=True)["global_step"] == 4


def test_ckpt_path_corrupt_or_already_finished_is_refused_before_work(compose_cfg, tmp_path: Path) -> None:
    """A checkpoint at trainer.max_epochs would train nothing and record {} as a success: refused."""
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(os.urandom(2048))
    with pytest.raises(CheckpointError, match="noise.ckpt is not a readable checkpoint"):
        train(compose_cfg("train", [f"ckpt_path={noise}", "data.root=/nonexistent"]))
    done = tmp_path / "done.ckpt"
    torch.save({"epoch": 2, "global_step": 12}, done)  # the end of epoch 3
    cfg = compose_cfg("train", [f"ckpt_path={done}", "trainer.max_epochs=3", "data.root=/nonexistent"])
    with pytest.raises(ConfigError, match=rf"ckpt_path={done}: the checkpoint is from epoch 3 of trainer."
                                          r"max_epochs=3: nothing to train. .*max_epochs=<more than 3>"):
        train(cfg)
    assert not Path("/nonexistent").exists() and not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_unknown_monitor_metric_is_refused_before_training(compose_cfg, shapes_root: Path) -> None:
    cfg = compose_cfg("train", [f"data.root={shapes_root}", "data.shapes.num_train=200",
                                "data.shapes.num_val=60", "model.meteor=false", "monitor.metric=val/blue4"])
    expected = (r"monitor.metric=val/blue4: CaptioningModule logs no such metric \(ModelCheckpoint monitors "
                r"it\); did you mean monitor.metric=val/bleu4")
    with pytest.raises(ConfigError, match=expected):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_a_run_folder_has_one_process_at_a_time(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with run_lock_holder(folder) as pid:
        with pytest.raises(ConfigError, match=rf"resume=RUN: {folder} is in use by another process \(pid "
                                              rf"{pid}\).*kill {pid}"):
            lock_run_folder(folder, "resume=RUN")
    lock_run_folder(folder)  # the holder ended: free
    lock_run_folder(folder)  # this process holds it already: fine
    assert (folder / ".lock").read_text() == f"{os.getpid()}\n"
    release_run_folder(folder)


def test_refused_run_changes_nothing_and_leaves_no_folder(tmp_path: Path) -> None:
    """hydra.run.dir=<another run> is refused before Hydra rewrites its .hydra/*.yaml; a start refused for
    a bad value leaves no run folder; the message is a few lines without a traceback."""
    other = tmp_path / "logs" / "train" / "runs" / "killed"
    (other / ".hydra").mkdir(parents=True)
    (other / "checkpoints").mkdir()
    (other / ".hydra" / "config.yaml").write_text("model:\n  optimizer:\n    lr: 0.005\n")
    (other / ".hydra" / "overrides.yaml").write_text("- model=lstm\n")
    (other / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    before = snapshot(other)
    result = run_app("train.py", [f"hydra.run.dir={other}", "model.optimizer.lr=0.5"], tmp_path)
    assert result.returncode == 1
    assert f"Error: hydra.run.dir={other} already holds files (.hydra, checkpoints)" in result.stderr
    assert f"to continue the run in it: python train.py resume={other}" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4, result.stderr
    assert snapshot(other) == before

    result = run_app("train.py", ["model.optimizer.lr=-1", "print_config=false"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Error: model.optimizer.lr=-1: must be a positive number" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4, result.stderr
    assert [p.name for p in (tmp_path / "logs" / "train" / "runs").iterdir()] == ["killed"]
