"""User errors are a few lines, bugs keep their traceback; a refused run changes nothing that existed
before it (another run's folder, its .hydra/ files) and leaves no empty folder; one process per run folder;
corrupt checkpoints and full disks are named as such."""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile
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
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])  # this checkout's visgrad, test helpers
    env = {**os.environ, "VISGRAD_ROOT": str(cwd), "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **env}
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


@pytest.mark.parametrize(("overrides", "message"), [
    (["trainer.accelerator=gpu"], r"trainer.accelerator=gpu: this machine has none that Lightning can use "
                                  r"\(it has: cpu\); use trainer.accelerator=cpu"),
    (["trainer.precision=13"], r"trainer.precision=13: Lightning's Trainer refuses it: Precision 13 is "
                               r"invalid"),
    (["trainer.devices=tpu"], r"trainer.devices='tpu': Lightning's Trainer refuses it: `devices` selected "
                              r"with `CPUAccelerator` should be an int > 0"),
    (["+trainer.strategy=bogus_strategy"], r"trainer.strategy='bogus_strategy': Lightning's Trainer refuses "
                                           r"it: You selected an invalid strategy name"),
    (["+trainer.bogus_flag=1"], r"trainer.bogus_flag=1: Lightning's Trainer refuses it: .*unexpected "
                                r"keyword"),
], ids=lambda value: value[0] if isinstance(value, list) else "")
def test_trainer_settings_lightning_refuses_are_user_errors(compose_cfg, overrides, message) -> None:
    """Lightning's MisconfigurationException / ValueError / TypeError for a trainer.* value is a one-line
    ConfigError naming the key, raised before any data work, so RunFolderGuard cleans up the refused start."""
    if "gpu" in overrides[0] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = compose_cfg("train", ["data.root=/nonexistent", *overrides])
    with pytest.raises(ConfigError, match=f"^{message}") as caught:
        train(cfg)
    assert "\n" not in str(caught.value)
    assert not Path("/nonexistent").exists()
    assert [p.name for p in Path(cfg.paths.output_dir).iterdir()] == [".lock"]  # what RunFolderGuard removes


def test_unresolvable_value_is_named(compose_cfg, monkeypatch) -> None:
    monkeypatch.delenv("VISGRAD_TEST_UNSET", raising=False)
    cfg = compose_cfg("train", ["data.root=${oc.env:VISGRAD_TEST_UNSET}", "model.optimizer.lr=${nope}"])
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == "model.optimizer.lr: cannot resolve its value (Interpolation key 'nope' not found)"
    assert lines[1].startswith("data.root: cannot resolve its value (")
    assert "Environment variable 'VISGRAD_TEST_UNSET' not found" in lines[1]


def test_refused_train_start_leaves_no_folder(tmp_path: Path) -> None:
    """A trainer value that Lightning refuses (found when the Trainer is built, after Hydra made the run
    folder and the logs/ folders above it) is one error, and none of those folders is left."""
    result = run_app("train.py", ["trainer.precision=13", "print_config=false"], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    message = "Error: trainer.precision=13: Lightning's Trainer refuses it: Precision 13 is invalid"
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_run_folder_that_is_a_file_is_named(compose_cfg, tmp_path: Path) -> None:
    """hydra.run.dir / hydra.sweep.dir at a file, or inside one: refused saying so (Hydra's mkdir would
    fail with a bare "File exists"); the file is left alone."""
    from visgrad.utils.run_folder import RunFolderGuard

    file = tmp_path / "notes.txt"
    file.write_text("mine")
    for folder, where in [(file, "is a file"), (file / "run", f"lies inside {file}, which is a file")]:
        cfg = compose_cfg("train", [f"hydra.run.dir={folder}", f"hydra.sweep.dir={folder}"])
        with pytest.raises(SystemExit, match=rf"^Error: hydra.run.dir={folder} {where}, not a folder"):
            RunFolderGuard().on_run_start(cfg)
        with pytest.raises(SystemExit, match=rf"^Error: hydra.sweep.dir={folder} {where}, not a folder"):
            RunFolderGuard().on_multirun_start(cfg)
    assert file.read_text() == "mine"
    cfg = compose_cfg("train", [f"ckpt_path={tmp_path}"])
    with pytest.raises(ConfigError, match=rf"^ckpt_path='{tmp_path}' is a folder, not a checkpoint file"):
        train(cfg)


def test_unreadable_checkpoint_is_not_called_corrupt(tmp_path: Path, monkeypatch) -> None:
    """Permission denied: "not readable", with the fix; not "truncated or corrupt", no re-download."""
    path = tmp_path / "last.ckpt"
    torch.save({"epoch": 0, "global_step": 4}, path)

    def denied(file, *args, **kwargs):  # what torch.load meets on a file without read permission
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(path)
    assert str(caught.value) == (f"{path} is not readable (permission denied): give your user read access "
                                 f"(chmod u+r {path})")


def test_unreadable_checkpoint_for_real(tmp_path: Path) -> None:
    """The same with a file mode 000, read by a user who is not root (as root: by `nobody`)."""
    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # tmp_path's parents are private to root
    try:
        path = folder / "last.ckpt"
        torch.save({"epoch": 0}, path)
        folder.chmod(0o755)
        path.chmod(0o000)
        script = ("import sys\nfrom visgrad.utils.checkpoint_io import read_checkpoint\n"
                  "try:\n    read_checkpoint(sys.argv[1])\nexcept Exception as e:\n    print(e)")
        command = [sys.executable, "-c", script, str(path)]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("root without setpriv: cannot read as another user")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        home = folder / "home"  # writable by the other user (matplotlib's cache)
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HOME": str(home), "MPLCONFIGDIR": str(home)}
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd="/")
        assert result.stdout.strip() == (f"{path} is not readable (permission denied): give your user read "
                                         f"access (chmod u+r {path})"), result.stderr[-2000:]
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_result_files_get_the_users_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Checkpoints, metrics.json and sweep summaries are written as open() would: 0o666 less the umask
    (mkstemp alone gives 0o600, which hid results from a group sharing them)."""
    from visgrad.utils.checkpoint_io import AtomicCheckpointIO
    from visgrad.utils.sweep_summary import write_metrics, write_summary

    old = os.umask(umask)
    try:
        AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
        write_metrics(tmp_path, {"val/loss": 1.0})
        write_summary(tmp_path)
    finally:
        os.umask(old)
    for name in ("last.ckpt", "metrics.json", "summary.csv", "summary.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_full_disk_names_the_run_folder_when_the_error_names_no_file(compose_cfg) -> None:
    """A write that fails without a file name (an event file, a figure's bytes) is reported in the run
    folder, not in the current directory."""
    cfg = compose_cfg("train")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True)
    with pytest.raises(ReportedError, match=rf"^Error: disk full: could not write a file in {out} \(No space "
                                            rf"left on device; \d+ MiB free in {out}\)"):
        with user_errors_reported():
            raise OSError(errno.ENOSPC, "No space left on device")


def test_device_names_torch_does_not_run_on_are_user_errors() -> None:
    """visualize.py's device=: a name torch does not know, or one this machine lacks, is one line."""
    from visgrad.utils import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("tpu", "cuda:x", "meta", "bogus_device"):
        with pytest.raises(ConfigError, match=rf"^device='{name}': not a device visgrad runs on; use "
                                              r"device=auto, cpu, cuda, cuda:<index> or mps$"):
            resolve_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^device='cuda:1' was requested but CUDA is not available"):
            resolve_device("cuda:1")


def test_test_true_without_a_test_step_is_refused_before_training(compose_cfg, shapes_root: Path) -> None:
    """train.yaml's test=true trained fully, then crashed on the missing test_step without metrics.json."""
    cfg = compose_cfg("train", [f"data.root={shapes_root}", "data.shapes.num_train=200",
                                "data.shapes.num_val=60", "model.meteor=false", "test=true"])
    with pytest.raises(ConfigError, match=r"^test=true: CaptioningModule has no test_step, so there is "
                                          r"nothing to test; leave test=false"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_checkpoint_that_does_not_fit_the_model_is_refused(compose_cfg, tmp_path: Path) -> None:
    """Any model (here the GAN; for the captioner its own check names its net's keys first): a checkpoint
    of another size names the hyperparameters that differ, one of another kind both models' parameters;
    one line, before fitting, instead of a size-mismatch traceback."""
    from hydra.utils import instantiate

    # "2 more": the first layer of the generator and of its moving average
    gan = ["experiment=gan_vanilla", "trainer.max_epochs=3"]
    cfg = compose_cfg("train", [*gan, "model.noise_dim=64"])
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = instantiate(cfg.model, **datamodule.model_kwargs())
    smaller = tmp_path / "noise64.ckpt"
    torch.save({"epoch": 0, "global_step": 4, "state_dict": model.state_dict(),
                "hyper_parameters": dict(model.hparams)}, smaller)
    with pytest.raises(ConfigError, match=rf"^ckpt_path={smaller}: model.noise_dim=96 \(the checkpoint's: "
                                          rf"64\) builds a model that does not fit {smaller} \(fixed_noise "
                                          r"is \[64, 64\] there and \[64, 96\] here and 2 more\); pass a "
                                          r"checkpoint of this model, or the model overrides"):
        train(compose_cfg("train", [*gan, f"ckpt_path={smaller}"]))
    other = tmp_path / "captioner.ckpt"
    torch.save({"epoch": 0, "global_step": 4, "state_dict": {"net.W_embed": torch.zeros(3, 4)}}, other)
    cfg = compose_cfg("train", [*gan, f"ckpt_path={other}"])
    with pytest.raises(ConfigError, match=rf"^ckpt_path={other}: {other} holds another kind of model than "
                                          r"this config builds \(its parameters: net.W_embed; this model's: "
                                          r"fixed_noise, generator.* and \d+ more\); pass a checkpoint"):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_a_constructor_refusing_its_argument_names_the_config_key(compose_cfg) -> None:
    """A ValueError of a network's constructor (the library's error about an argument, here one no config
    rule knows) is a ConfigError naming the key and value: a user error, so it is one line and the refused
    run leaves no folder (RunFolderGuard, tested above through the app)."""
    cfg = compose_cfg("train", ["experiment=vit_digits", "model.net.stem=bogus_stem", "print_config=false"])
    with pytest.raises(ConfigError, match=r"^model.net.stem='bogus_stem': stem must be one of patch, conv, "
                                          r"got 'bogus_stem'$"):
        train(cfg)
