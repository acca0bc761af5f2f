"""Bad config values fail before any work with one line per problem naming the key, the value and the fix;
every shipped preset passes; a fuzz over many malformed configs never hangs or slips through."""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from visgrad.training import train
from visgrad.utils.preflight import ConfigError, config_problems, validate_config

ROOT = Path(__file__).resolve().parents[1]

TRAINERS = sorted(path.stem for path in (ROOT / "conf" / "trainer").glob("*.yaml"))
PRESETS = [[], ["model=rnn"], ["model=transformer"], ["experiment=overfit_rnn"], ["experiment=overfit_lstm"],
           ["experiment=shapes_classifier"], ["hparams_search=captioning_optuna"], ["debug=default"],
           ["debug=fdr"], ["data=coco"], *([f"trainer={name}"] for name in TRAINERS)]


@pytest.mark.parametrize("overrides", PRESETS, ids=lambda o: " ".join(o) or "default")
def test_shipped_presets_are_valid(compose_cfg, overrides: list[str]) -> None:
    assert config_problems(compose_cfg("train", overrides)) == []


# (override, what the message must say): each names the key and the value, what is allowed, and a fix.
BAD = [
    ("model.optimizer.lr=0", r"model.optimizer.lr=0: must be a positive number; e.g. "
                             r"model.optimizer.lr=0.005"),
    ("model.optimizer.lr=-1e-3", r"model.optimizer.lr=-0.001: must be a positive number"),
    ("model.optimizer.lr=nan", r"model.optimizer.lr=nan: must be a positive number"),
    ("model.optimizer.lr=fast", r"model.optimizer.lr='fast': must be a positive number"),
    ("data.batch_size=0", r"data.batch_size=0: must be a positive integer; e.g. data.batch_size=100"),
    ("data.batch_size=-5", r"data.batch_size=-5: must be a positive integer"),
    ("data.batch_size=2.5", r"data.batch_size=2.5: must be a positive integer"),
    ("data.batch_size=true", r"data.batch_size=true: must be a positive integer"),
    ("model.net.cell_type=bogus_cell", r"model.net.cell_type='bogus_cell': must be one of rnn, lstm, or the "
                                       r"dotted path of a Cell in your own package "
                                       r"\(my_package.module.name\); e.g. model.net.cell_type=lstm "
                                       r"\(or model=rnn\)"),
    ("model.net.cell_type=LSTM", r"model.net.cell_type='LSTM': must be one of rnn, lstm, or the dotted path"),
    ("model.net.cell_type=bogus_pkg.cells.GRAND", r"model.net.cell_type='bogus_pkg.cells.GRAND': must be "),
    ("model.net.hidden_dim=0", r"model.net.hidden_dim=0: must be a positive integer"),
    ("model.net.wordvec_dim=-1", r"model.net.wordvec_dim=-1: must be a positive integer"),
    ("model.scheduler.gamma=0", r"model.scheduler.gamma=0: must be a number in \(0, 1\]"),
    ("model.scheduler.gamma=1.5", r"model.scheduler.gamma=1.5: must be a number in \(0, 1\]"),
    ("model.beam_size=0", r"model.beam_size=0: must be a positive integer"),
    ("model.max_length=0", r"model.max_length=0: must be a positive integer"),
    ("model.meteor=maybe", r"model.meteor='maybe': must be true, false or auto"),
    ("data.max_train=0", r"data.max_train=0: must be null \(all\) or a positive integer"),
    ("data.num_workers=-1", r"data.num_workers=-1: must be an integer >= 0"),
    ("data.dataset=imagenet", r"data.dataset='imagenet': must be one of shapes, coco"),
    ("data.shapes.num_train=0", r"data.shapes.num_train=0: must be a positive integer"),
    ("data.shapes.image_size=16", r"data.shapes.image_size=16: must be an integer >= 32"),
    ("trainer.max_epochs=0", r"trainer.max_epochs=0: must be a positive integer \(or -1: no limit\)"),
    ("trainer.max_epochs=-2", r"trainer.max_epochs=-2: must be a positive integer"),
    ("trainer.gradient_clip_val=-1", r"trainer.gradient_clip_val=-1: must be null \(off\) or a number >= 0"),
    ("trainer.limit_train_batches=1.5", r"trainer.limit_train_batches=1.5: must be null \(all\), a positive "
                                        r"integer"),
    ("trainer.limit_train_batches=0", r"trainer.limit_train_batches=0: must be .*\(0 would train nothing\)"),
    ("seed=-1", r"seed=-1: must be an integer in \[0, 4294967295\]"),
    ("trainer.log_every_n_steps=0", r"trainer.log_every_n_steps=0: must be a positive integer"),
    ("monitor.mode=best", r"monitor.mode='best': must be min or max"),
    ("faults.nonfinite=ignore", r"faults.nonfinite='ignore': must be raise or skip"),
    ("faults.max_skipped=-1", r"faults.max_skipped=-1: must be null \(no limit\) or an integer >= 0"),
    ("seed=abc", r"seed='abc': must be an integer"),
    ("ckpt_path=/no/such.ckpt", r"ckpt_path='/no/such.ckpt': no such checkpoint file.*resume=<its run "),
    ("+model.net.hiden_dim=512", r"model.net.hiden_dim: not an argument of visgrad.captioning.CaptioningRNN; "
                                 r"did you mean model.net.hidden_dim\? it takes wordvec_dim, hidden_dim, "
                                 r"cell_type$"),
    ("+model.hidden_dim=512", r"model.hidden_dim: not an argument of visgrad.captioning.CaptioningModule; "
                              r"did you mean model.net.hidden_dim\? it takes net, optimizer, scheduler, "
                              r"max_length"),
    ("+model.net.input_dim=512", r"model.net.input_dim: set from the data by the module that builds it"),
    ("model.net._partial_=false", r"model.net._partial_=false: must be true \(the module builds its network"),
    ("model.net._target_=bogus_pkg.Net", r"model.net._target_='bogus_pkg.Net': bogus_pkg.Net: no module "
                                         r"'bogus_pkg' can be imported"),
    ("model.optimizer.lr=???", r"model.optimizer.lr=\?\?\?: a value is required"),
    ("model.optimizer.lr=${nope}", r"model.optimizer.lr: cannot resolve its value \(Interpolation key "),
    ("data.dataset.num_train=0", r"data.dataset.num_train=0: must be a positive integer"),  # the classifier
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("override,message", BAD, ids=[o for o, _ in BAD])
def test_bad_value_fails_before_any_work(compose_cfg, override: str, message: str) -> None:
    extra = ["experiment=shapes_classifier"] if override.startswith("data.dataset.") else []
    cfg = compose_cfg("train", [*extra, override])
    with pytest.raises(ConfigError, match=f"^{message}") as error:
        train(cfg)
    assert "\n" not in str(error.value)  # one problem, one line
    assert not Path(cfg.paths.data_dir).exists()  # nothing generated or loaded


@pytest.mark.timeout(60)
def test_fuzz_many_malformed_configs(compose_cfg) -> None:
    """500 random configs with 1-6 bad values each (typed as Hydra parses the overrides): every bad key is
    reported, on its own line, and nothing else is."""
    base = compose_cfg("train")
    parser = OverridesParser.create()
    by_key: dict[str, list] = {}
    for override, _ in BAD:
        key, text = override.split("=", 1)
        # captioner values only (no added keys, no node-level problems)
        node_level = key.startswith(("+", "model.net._"))
        if key not in ("data.dataset.num_train", "ckpt_path") and text not in ("???", "${nope}") and (
                not node_level):
            by_key.setdefault(key, []).append(parser.parse_overrides([override])[0].value())
    keys = sorted(by_key)
    rng = random.Random(0)
    for _ in range(500):
        chosen = rng.sample(keys, rng.randint(1, 6))
        cfg = copy.deepcopy(base)
        for key in chosen:
            OmegaConf.update(cfg, key, rng.choice(by_key[key]), merge=False)
        with pytest.raises(ConfigError) as error:
            validate_config(cfg)
        lines = str(error.value).splitlines()
        assert sorted(line.split("=")[0].split(":")[0] for line in lines) == sorted(chosen), lines


def test_cli_reports_the_problem_in_one_line(tmp_path: Path) -> None:
    """``python train.py model.optimizer.lr=-1`` exits non-zero with the message, before generating data."""
    env = {**os.environ, "VISGRAD_ROOT": str(tmp_path)}
    command = [sys.executable, str(ROOT / "train.py"), "model.optimizer.lr=-1", "data.batch_size=0"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "model.optimizer.lr=-1: must be a positive number; e.g. model.optimizer.lr=0.005" in result.stderr
    assert "data.batch_size=0: must be a positive integer; e.g. data.batch_size=100" in result.stderr
    assert not (tmp_path / "data").exists()
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), f"resume={tmp_path / 'nope'}"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"Error: resume={tmp_path / 'nope'}: no such run folder" in result.stderr


@pytest.mark.parametrize(("strategy", "refused"), [("ddp", True), ("ddp_spawn", False)])
def test_plain_ddp_is_refused_in_a_local_sweep(compose_cfg, strategy: str, refused: bool) -> None:
    """Lightning relaunches the command for each further DDP process, which in a local -m sweep would
    rerun the sweep: refused, pointing at ddp_spawn; a single run with plain ddp stays valid."""
    overrides = ["trainer=ddp", "trainer.devices=2", f"trainer.strategy={strategy}"]
    assert config_problems(compose_cfg("train", overrides)) == []
    cfg = compose_cfg("train", [*overrides, "hydra.mode=MULTIRUN"])
    problems = config_problems(cfg)
    assert problems == (["trainer.strategy=ddp in a local -m sweep: Lightning starts every further DDP "
                         "process by running the command again, which would rerun the whole sweep; use "
                         "trainer.strategy=ddp_spawn for local sweeps (or hydra/launcher=slurm on a cluster)"]
                        if refused else [])
