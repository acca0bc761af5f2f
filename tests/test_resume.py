"""Crash safety: kill -9 mid-epoch and ``train.py resume=RUN`` ends exactly like an uninterrupted run;
atomic checkpoint writes; a run never writes into another run's folder; clear resume errors."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fault_injection import run_lock_holder
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visgrad.errors import CheckpointError
from visgrad.training import train
from visgrad.utils import resume as resume_module
from visgrad.utils.checkpoint_io import AtomicCheckpointIO
from visgrad.utils.commands import hydra_value
from visgrad.utils.preflight import ConfigError, config_problems
from visgrad.utils.resume import ResumeAttempt, expand_resume_argv

ROOT = Path(__file__).resolve().parents[1]

# 200 captions in batches of 50: 4 steps per epoch, 3 epochs; the kill comes at step 6 (epoch 2 of 3, its
# third batch), after last.ckpt of epoch 1 (step 4).
def run_overrides(shapes_root: Path) -> list[str]:
    return [f"data.root={shapes_root}", "data.shapes.num_train=200", "data.shapes.num_val=60",
            "data.batch_size=50", "data.max_train=200", "model.net.wordvec_dim=16", "model.net.hidden_dim=32",
            "model.meteor=false", "model.num_samples=2", "trainer.max_epochs=3",
            "trainer.log_every_n_steps=1", "trainer.deterministic=true", "print_config=false",
            "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])  # this checkout's visgrad, test helpers
    env = {**os.environ, "VISGRAD_ROOT": str(cwd), "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=300)
    return process.returncode, err


def scalars(folder: Path) -> dict[str, dict[int, float]]:
    """TensorBoard scalars of all event files in ``folder`` as {tag: {step: value}} (purges applied)."""
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: {e.step: e.value for e in accumulator.Scalars(tag)} for tag in accumulator.Tags()["scalars"]}


def test_kill_and_resume_matches_uninterrupted_run(shapes_root: Path, tmp_path: Path) -> None:
    base = run_overrides(shapes_root)
    whole = start([*base, f"hydra.run.dir={tmp_path / 'whole'}"], tmp_path)
    killed = start([*base, "+callbacks.kill._target_=fault_injection.KillAtStep", "+callbacks.kill.step=6"],
                   tmp_path)
    code, err = finish(killed)
    assert code == -9, err[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4  # the end of epoch 1; steps 4, 5 lost
    original_overrides = (run / ".hydra" / "overrides.yaml").read_text()

    code, err = finish(start([f"resume={run}"], tmp_path))  # no overrides repeated
    assert code == 0, err[-3000:]
    code, err = finish(whole)
    assert code == 0, err[-3000:]

    assert [p.name for p in (tmp_path / "logs" / "train" / "runs").iterdir()] == [run.name]  # same folder
    assert (run / ".hydra" / "overrides.yaml").read_text() == original_overrides
    assert f"resume={run}" in (run / ".hydra" / "resume_1" / "overrides.yaml").read_text()
    resumed_state = torch.load(last, weights_only=False)
    whole_state = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed_state["global_step"] == whole_state["global_step"] == 12
    for name, value in whole_state["state_dict"].items():
        torch.testing.assert_close(resumed_state["state_dict"][name], value, rtol=1e-6, atol=1e-7, msg=name)
    for i, moments in whole_state["optimizer_states"][0]["state"].items():  # Adam's step and moments
        for key, value in moments.items():
            resumed = resumed_state["optimizer_states"][0]["state"][i][key]
            torch.testing.assert_close(resumed, value, rtol=1e-6, atol=1e-9, msg=f"{i}.{key}")
    assert resumed_state["lr_schedulers"] == whole_state["lr_schedulers"]
    resumed_metrics = json.loads((run / "metrics.json").read_text())
    whole_metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert resumed_metrics.keys() == whole_metrics.keys() and "val/bleu4" in whole_metrics
    assert resumed_metrics == pytest.approx(whole_metrics, rel=1e-6, abs=1e-9)
    # TensorBoard continues in the same folder: the merged curves are those of the uninterrupted run
    resumed_tb, whole_tb = scalars(run / "tensorboard"), scalars(tmp_path / "whole" / "tensorboard")
    for tag in ("train/loss_step", "train/loss_epoch", "val/loss", "val/bleu1", "lr-Adam"):
        assert resumed_tb[tag].keys() == whole_tb[tag].keys(), tag
        assert list(resumed_tb[tag].values()) == pytest.approx(list(whole_tb[tag].values()), rel=1e-6), tag


FAKE_OVERRIDES = ["model=rnn", "trainer.max_epochs=3", "model.net.hidden_dim=64"]


@pytest.fixture
def fake_run(tmp_path: Path, compose_cfg):
    """A run folder as train.py leaves it: .hydra/{config,overrides}.yaml, checkpoints/last.ckpt at the end
    of epoch 2 (of trainer.max_epochs=3)."""
    return make_fake_run(tmp_path / "run", compose_cfg)


def make_fake_run(run: Path, compose_cfg) -> Path:
    overrides = FAKE_OVERRIDES
    cfg = compose_cfg("train", overrides)
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    config = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    config.paths.output_dir = "${hydra:runtime.output_dir}"  # as Hydra saves it (compose_cfg pins it)
    config.paths.data_dir, config.print_config = "${oc.env:VISGRAD_DATA,${paths.root_dir}/data}", True
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    torch.save({"epoch": 1, "global_step": 80}, run / "checkpoints" / "last.ckpt")
    return run


def expand(argv: list[str]) -> list[str]:
    return expand_resume_argv(["train.py", *argv], ROOT / "conf", "train")


def test_resume_expands_into_the_saved_overrides(fake_run: Path) -> None:
    assert expand(["model=lstm"]) == ["train.py", "model=lstm"]  # no resume=: unchanged
    argv = expand([f"resume={fake_run}", "trainer.max_epochs=5"])
    assert argv == ["train.py", "model=rnn", "model.net.hidden_dim=64", f"resume={fake_run}",
                    f"hydra.run.dir={fake_run}", "hydra.output_subdir=.hydra/resume_1.pending",
                    "trainer.max_epochs=5"]
    resumed = fake_run / ".hydra" / "resume_1"  # as a first resume leaves it
    resumed.mkdir()
    (resumed / "config.yaml").write_text((fake_run / ".hydra" / "config.yaml").read_text())
    (resumed / "overrides.yaml").write_text("- model=rnn\n- model.net.hidden_dim=64\n- trainer.max_epochs=3\n"
                                            f"- resume={fake_run}\n")
    assert expand([f"resume={fake_run}"])[-1] == "hydra.output_subdir=.hydra/resume_2.pending"
    # Lightning's DDP workers get the expanded command line again: left as is
    assert expand(argv[1:]) == argv


def test_resume_errors(fake_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"the run is finished .* epoch 2 of trainer.max_epochs=2.*"
                                          r"add trainer.max_epochs=<more than 2>"):
        expand([f"resume={fake_run}", "trainer.max_epochs=2"])
    with pytest.raises(ConfigError, match="cannot be combined with -m"):
        expand(["-m", f"resume={fake_run}"])
    with pytest.raises(ConfigError, match="no such run folder"):
        expand([f"resume={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match=r"not a train.py run folder \(no .hydra/overrides.yaml\)"):
        expand([f"resume={tmp_path}"])
    # conf/ changed since the run started: the saved config differs from the recomposed one
    saved = OmegaConf.load(fake_run / ".hydra" / "config.yaml")
    saved.model.optimizer.lr = 0.001
    OmegaConf.save(saved, fake_run / ".hydra" / "config.yaml")
    with pytest.raises(ConfigError, match=r"conf/ changed since the run started.*model.optimizer.lr: saved "
                                          r"0.001, now 0.005"):
        expand([f"resume={fake_run}"])
    assert expand([f"resume={fake_run}", "model.optimizer.lr=0.001"])  # the saved value passed: fine
    (fake_run / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(ConfigError, match=r"there is no checkpoints/last.ckpt .* nothing to resume"):
        expand([f"resume={fake_run}", "model.optimizer.lr=0.001"])


def test_second_resume_of_a_running_run_is_refused_with_the_holders_pid(fake_run: Path) -> None:
    """Two resume= of one run at once both trained (duplicate -v1 checkpoints, doubled curves): the second
    is refused before Hydra writes anything, naming the pid of the process in the folder."""
    with run_lock_holder(fake_run) as pid:
        before = sorted(p.relative_to(fake_run) for p in fake_run.rglob("*"))
        with pytest.raises(ConfigError, match=rf"resume={fake_run}: {fake_run} is in use by another process "
                                              rf"\(pid {pid}\)"):
            expand([f"resume={fake_run}"])
        assert sorted(p.relative_to(fake_run) for p in fake_run.rglob("*")) == before
    assert expand([f"resume={fake_run}"])[-1] == "hydra.output_subdir=.hydra/resume_1.pending"  # holder ended


def test_train_resume_must_run_in_the_run_folder(compose_cfg, fake_run: Path) -> None:
    cfg = compose_cfg("train", [f"resume={fake_run}"])
    with pytest.raises(ConfigError, match=rf"resume={fake_run} but this job writes to .*train.py resume="):
        train(cfg)


def test_fresh_run_refuses_a_folder_with_checkpoints(compose_cfg) -> None:
    cfg = compose_cfg("train", ["data.root=/nonexistent"])
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"already holds checkpoints \(last.ckpt\) of another run.*"
                                          rf"python train.py resume={checkpoints.parent}"):
        train(cfg)
    assert not Path("/nonexistent").exists()  # refused before any data work


def test_run_folders_have_microsecond_stamps(compose_cfg) -> None:
    """Two runs started within the same second get different folders."""
    cfg = compose_cfg("train")
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}"
    assert re.fullmatch(rf".*/train/runs/{stamp}", cfg.hydra.run.dir)
    assert re.fullmatch(rf".*/train/multiruns/{stamp}", cfg.hydra.sweep.dir)


def test_atomic_save_failure_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, file):  # writes part of the file, then the disk is full
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # the temp file is gone


def test_atomic_save_killed_mid_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """SIGKILL while the new checkpoint is half written: last.ckpt is still the old, loadable one."""
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)
    script = (
        "import os, signal, torch\n"
        "from visgrad.utils.checkpoint_io import AtomicCheckpointIO\n"
        "def dying_save(obj, file):\n"
        "    file.write(b'PK half'); file.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = dying_save\n"
        f"AtomicCheckpointIO().save_checkpoint({{'step': 2}}, {str(path)!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -9, result.stderr
    assert torch.load(path, weights_only=False) == {"step": 1}
    assert len(list(tmp_path.glob(".last.ckpt.*.tmp"))) == 1  # the orphan never has a .ckpt name


# A folder name a user may well have (spaces, '#', non-ASCII letters, a quote): runs under it resume.
ODD = "my runs #2 Ünïcode 'x'"


def tiny_run(folder: Path, shapes_root: Path, *extra: str) -> list[str]:
    """One epoch of 4 steps in ``folder`` (job logging on: a failed attempt must leave no line in
    train.log)."""
    return [f"data.root={shapes_root}", "data.shapes.num_train=200", "data.shapes.num_val=60",
            "data.batch_size=50", "data.max_train=200", "model.net.wordvec_dim=16", "model.net.hidden_dim=32",
            "model.meteor=false", "model.num_samples=0", "trainer.max_epochs=1", "print_config=false",
            "callbacks.rich_progress_bar=null", f"hydra.run.dir={hydra_value(str(folder))}", *extra]


def contents(folder: Path) -> dict[str, bytes]:
    """Every path under ``folder`` with its bytes, but the lock file (it holds the last holder's pid)."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in folder.rglob("*")
            if p.name != ".lock"}


def test_failed_resumes_change_nothing_and_odd_paths_resume(shapes_root: Path, tmp_path: Path) -> None:
    """A resume that fails before training (here a model override that does not fit the checkpoint; any
    other failure before training is undone the same way) says so in one line and leaves the run folder as
    it was: no .hydra/resume_<k>, no event file, no log lines; so the plain resume after it works. All in a
    folder with spaces, '#', non-ASCII letters and quotes, given as typed."""
    run = tmp_path / ODD / "run"
    code, err = finish(start(tiny_run(run, shapes_root), tmp_path))
    assert code == 0, err[-3000:]
    before = contents(run)
    assert "train.log" in before and ".hydra/overrides.yaml" in before

    # fails after the data and the model are set up, the Trainer built and the log written to: undone
    code, err = finish(start([f"resume={run}", "trainer.max_epochs=2", "model.net.hidden_dim=48"], tmp_path))
    assert code == 1, err[-3000:]
    assert (f"Error: resume={run}: its network differs from model.net in hidden_dim; continue it with the "
            "settings it was trained with (model.net.hidden_dim=32)") in err, err[-3000:]
    report = err[err.index("Error executing job"):]  # after Lightning's log lines
    assert "Traceback" not in err and len(report.strip().splitlines()) <= 4, err
    assert contents(run) == before

    process = start([f"resume={run}", "trainer.max_epochs=2"], tmp_path)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert sorted(p.name for p in (run / ".hydra").iterdir() if p.is_dir()) == ["resume_1"]
    replayed = OmegaConf.load(run / ".hydra" / "resume_1" / "overrides.yaml")
    assert "trainer.max_epochs=2" in replayed and "model.net.hidden_dim=32" in replayed
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 8
    assert f"tensorboard --logdir {shlex.quote(str(run))}" in out  # a shell takes it as one argument


def test_resume_quotes_odd_paths_for_hydra(tmp_path: Path, compose_cfg) -> None:
    """resume= and hydra.run.dir= are re-emitted so that Hydra reads back the folder exactly; RUN may be
    given as typed or Hydra-quoted."""
    run = make_fake_run(tmp_path / ODD / "run", compose_cfg)
    parser = OverridesParser.create()
    for given in (str(run), hydra_value(str(run))):
        argv = expand([f"resume={given}"])
        for key in ("resume", "hydra.run.dir"):
            (arg,) = [a for a in argv if a.startswith(f"{key}=")]
            assert parser.parse_overrides([arg])[0].value() == str(run), arg
    # what Hydra and OmegaConf make of a quoted value is the text itself, whatever it holds
    for text in ["/a b/#c", "/x/'y'/\\\\'", "/é/漢/\\", "/$HOME/${oc.env:HOME}/\\${x}", "/a,b=c(d)[e]{f}:g"]:
        assert compose_cfg("train", [f"resume={hydra_value(text)}"]).resume == text, text
    assert hydra_value("/plain/run_1.2-3") == "/plain/run_1.2-3"  # no quotes where none are needed


def test_resume_refuses_ckpt_path_a_file_and_a_folder_checkpoint(fake_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.ckpt"
    torch.save({"epoch": 0, "global_step": 1}, other)
    with pytest.raises(ConfigError, match=rf"^resume={fake_run} continues the run from its own checkpoints/"
                                          rf"last.ckpt, so ckpt_path={other} cannot be given with it: drop "
                                          rf"ckpt_path={other}, or start a new run .*without resume="):
        expand([f"resume={fake_run}", f"ckpt_path={other}"])
    assert expand([f"resume={fake_run}", "ckpt_path=null"])  # no checkpoint given: fine
    with pytest.raises(ConfigError, match=rf"^resume={other} is a file, not a run folder"):
        expand([f"resume={other}"])
    last = fake_run / "checkpoints" / "last.ckpt"
    last.unlink()
    last.mkdir()
    with pytest.raises(ConfigError, match=rf"^resume={fake_run}: {last} is a folder, not a checkpoint file"):
        expand([f"resume={fake_run}"])


def test_truncated_last_checkpoint_offers_the_best_one(fake_run: Path, compose_cfg) -> None:
    """A truncated last.ckpt is named (without advising it again) and, if the run has another intact
    checkpoint with training left, the command that continues from it in a new folder, which is valid."""
    last, best = fake_run / "checkpoints" / "last.ckpt", fake_run / "checkpoints" / "best_epoch_000.ckpt"
    torch.save({"epoch": 1, "global_step": 80, "w": torch.ones(1000)}, last)
    last.write_bytes(last.read_bytes()[:2000])
    torch.save({"epoch": 0, "global_step": 40}, best)
    with pytest.raises(CheckpointError) as caught:
        expand([f"resume={fake_run}", "trainer.max_epochs=4"])
    message = str(caught.value)
    offered = f"python train.py model=rnn model.net.hidden_dim=64 trainer.max_epochs=4 ckpt_path={best}"
    assert message == (f"resume={fake_run}: {last} is not a readable checkpoint (truncated or corrupt: "
                       "PytorchStreamReader failed reading zip archive: failed finding central directory); "
                       "its best_epoch_000.ckpt (step 40) is intact: continue from it in a new run folder "
                       f"(this one stays as it is) with {offered}")
    assert config_problems(compose_cfg("train", shlex.split(offered)[2:])) == []  # a command that runs

    torch.save({"epoch": 3, "global_step": 160}, best)  # at trainer.max_epochs=4: nothing left to train
    with pytest.raises(CheckpointError, match=r"the run has no other intact checkpoint with training left: "
                                              r"start it again as a new run \(python train.py model=rnn "
                                              r"model.net.hidden_dim=64 trainer.max_epochs=4\)$"):
        expand([f"resume={fake_run}", "trainer.max_epochs=4"])


def test_unreadable_last_checkpoint_is_called_unreadable(fake_run: Path, monkeypatch) -> None:
    """Permission denied is not corruption: the message says so and how to fix it, and offers nothing else."""
    last = fake_run / "checkpoints" / "last.ckpt"

    def denying_open(path, *args, **kwargs):
        if Path(path) == last:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(resume_module, "open", denying_open, raising=False)
    expected = (rf"^resume={fake_run}: {last} is not readable \(permission denied\): give your user read "
                rf"access \(chmod u\+r {last}\)$")
    with pytest.raises(CheckpointError, match=expected):
        expand([f"resume={fake_run}"])


def test_empty_overrides_file_is_not_a_changed_conf(fake_run: Path) -> None:
    """Hydra writes [] for a run without overrides, so an empty overrides.yaml was cut short: the same list
    in .hydra/hydra.yaml is replayed. Without that, it means no overrides, and the message says so."""
    hydra = fake_run / ".hydra"
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": FAKE_OVERRIDES}}}), hydra / "hydra.yaml")
    (hydra / "overrides.yaml").write_text("")
    argv = expand([f"resume={fake_run}"])
    assert argv[1:4] == ["model=rnn", "trainer.max_epochs=3", "model.net.hidden_dim=64"]
    (hydra / "hydra.yaml").unlink()
    with pytest.raises(ConfigError) as caught:
        expand([f"resume={fake_run}"])
    assert str(caught.value).startswith(f"resume={fake_run}: {hydra / 'overrides.yaml'} lists no overrides, "
                                        "yet the run's saved config differs from conf/'s defaults at ")
    assert "conf/ changed" not in str(caught.value)


def test_resume_attempt_that_fails_before_training_is_undone(compose_cfg, tmp_path: Path) -> None:
    """Whatever stops a resume attempt before its training starts (here a bug, which otherwise keeps its
    files for the post-mortem), RunFolderGuard removes what it added and cuts the log back; one that has
    started training (ResumeAttempt renamed its .hydra/resume_<k>.pending) is kept."""
    from hydra.core.utils import JobReturn, JobStatus

    from visgrad.utils.run_folder import RunFolderGuard

    run = tmp_path / "out"  # compose_cfg's output_dir
    for started in (False, True):
        shutil.rmtree(run, ignore_errors=True)
        (run / ".hydra").mkdir(parents=True)
        (run / "train.log").write_text("the run's log\n")
        before = contents(run)
        cfg = compose_cfg("train", [f"resume={run}", f"hydra.run.dir={run}", "hydra.mode=RUN",
                                    "hydra.output_subdir=.hydra/resume_1.pending"])
        guard = RunFolderGuard()
        guard.on_run_start(cfg)
        (run / ".hydra" / "resume_1.pending").mkdir()  # what Hydra and the attempt write
        (run / ".hydra" / "resume_1.pending" / "overrides.yaml").write_text("- model.net.hidden_dim=48\n")
        (run / "tensorboard").mkdir()
        (run / "tensorboard" / "events.out.tfevents.1").write_bytes(b"event")
        with open(run / "train.log", "a") as log:
            log.write("the attempt's lines\n")
        if started:
            ResumeAttempt().on_train_start(SimpleNamespace(is_global_zero=True), None)
        guard.on_job_end(cfg, JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("a bug")))
        if started:
            assert (run / ".hydra" / "resume_1" / "overrides.yaml").is_file()
            assert (run / "tensorboard" / "events.out.tfevents.1").is_file()
        else:
            assert contents(run) == before
