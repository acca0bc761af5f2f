"""Scale-out presets: trainer=ddp / gpu / gpu_bf16 / ddp_gpu / slurm and hydra/launcher=slurm.

This machine has no GPU and no SLURM: the GPU presets are composed and built with the accelerator
switched to the CPU, the SLURM launcher is composed and turned into the sbatch script submitit would
submit (with a stand-in ``srun`` on PATH so that submitit's SLURM executor can be created).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy

NO_GPU = not torch.cuda.is_available()


def build_trainer(cfg) -> pl.Trainer:
    return instantiate(cfg.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)


def test_ddp_preset_is_two_processes_on_this_cpu(compose_cfg) -> None:
    """`trainer=ddp` needs no other override on a CPU-only machine (gloo), and W = trainer.devices."""
    cfg = compose_cfg("train", ["trainer=ddp"])
    assert (cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.accelerator) == ("ddp", 2, "auto")
    trainer = build_trainer(cfg)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.num_devices == 2
    if NO_GPU:
        assert trainer.strategy.root_device.type == "cpu"
    cfg = compose_cfg("train", ["trainer=ddp", "trainer.devices=3", "trainer.accelerator=cpu"])
    trainer = build_trainer(cfg)
    assert trainer.num_devices == 3 and trainer.strategy.root_device.type == "cpu"


@pytest.mark.parametrize(
    ("preset", "expected", "precision", "strategy"),
    [
        ("gpu", {"accelerator": "gpu", "devices": 1, "precision": 32}, "32-true", SingleDeviceStrategy),
        ("gpu_bf16", {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}, "bf16-mixed",
         SingleDeviceStrategy),
        ("ddp_gpu", {"accelerator": "gpu", "devices": "auto", "strategy": "ddp", "sync_batchnorm": True},
         "32-true", DDPStrategy),
    ],
)
def test_gpu_presets(compose_cfg, preset: str, expected: dict, precision: str, strategy: type) -> None:
    """Composed values; built on the CPU instead (same keys, so the Trainer accepts them)."""
    cfg = compose_cfg("train", [f"trainer={preset}"])
    for key, value in expected.items():
        assert cfg.trainer[key] == value, key
    assert cfg.trainer.max_epochs == 10 and cfg.trainer.gradient_clip_val == 5.0  # from trainer/default
    if NO_GPU:
        with pytest.raises(InstantiationException, match="No supported gpu backend found"):
            build_trainer(cfg)
    cpu = build_trainer(compose_cfg("train", [f"trainer={preset}", "trainer.accelerator=cpu"]))
    assert cpu.precision == precision
    assert isinstance(cpu.strategy, strategy)


def test_bf16_override_on_any_trainer(compose_cfg) -> None:
    cfg = compose_cfg("train", ["trainer=ddp_gpu", "trainer.precision=bf16-mixed", "trainer.devices=4"])
    assert (cfg.trainer.precision, cfg.trainer.devices, cfg.trainer.strategy) == ("bf16-mixed", 4, "ddp")


SLURM = ["hydra/launcher=slurm", "trainer=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.nodes=2",
         "hydra.launcher.tasks_per_node=4", "hydra.launcher.timeout_min=90"]


def test_slurm_preset_matches_trainer_to_launcher(compose_cfg) -> None:
    """trainer=slurm takes devices / num_nodes from the launcher: one DDP process per SLURM task."""
    cfg = compose_cfg("train", SLURM)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.nodes, launcher.tasks_per_node) == ("gpu", 2, 4)
    assert launcher.gpus_per_node == 4  # one GPU per task
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (4, 2)
    assert (cfg.trainer.strategy, cfg.trainer.accelerator) == ("ddp", "gpu")
    trainer = build_trainer(compose_cfg("train", [*SLURM, "trainer.accelerator=cpu"]))
    assert isinstance(trainer.strategy, DDPStrategy)
    assert (trainer.num_devices, trainer.num_nodes, trainer.world_size) == (4, 2, 8)


def test_slurm_launcher_writes_a_valid_sbatch_script(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    """The launcher's parameters, passed to submitit as hydra-submitit-launcher passes them, give an sbatch
    script with the requested resources (submitit rejects unknown parameters)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    srun = fake_bin / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    cfg = compose_cfg("train", SLURM)
    launcher = instantiate(cfg.hydra.launcher)
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    generic = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{
        key if key in generic else f"slurm_{key}": value
        for key, value in params.items() if key not in ("submitit_folder", "max_num_timeout")
    })
    script = executor._executor._make_submission_file_text("python -c 'pass'", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --time=90", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=32GB"):
        assert line in script, (line, script)


@pytest.mark.slow
def test_sweep_through_submitit(shapes_root: Path, tmp_path: Path) -> None:
    """hydra-submitit-launcher runs train.py's jobs (here with submitit's local executor, the SLURM one's
    twin without a cluster): every job's folder gets its checkpoints under the sweep folder."""
    root = Path(__file__).resolve().parents[1]
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, str(root / "train.py"), "-m", "hydra/launcher=submitit_local", "model=rnn,lstm",
         f"data.root={shapes_root}", "data.shapes.num_train=200", "data.shapes.num_val=60",
         "model.net.wordvec_dim=16", "model.net.hidden_dim=32", "model.meteor=false", "trainer.max_epochs=1",
         "trainer.limit_train_batches=2", "print_config=false", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env={**os.environ, "VISGRAD_ROOT": str(root)}, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for job in ("0", "1"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file(), job
    assert (sweep / ".submitit").is_dir()  # submitit's job records (logs, pickled results)
