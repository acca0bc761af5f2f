"""Resume a killed training run in its own folder: ``python train.py resume=logs/train/runs/<time>``.

``expand_resume_argv`` turns ``resume=RUN [overrides]`` into the command line that recreates the run: the
overrides it was started with (``RUN/.hydra/overrides.yaml``, or those of its latest resume), then the
new ones (which replace saved ones of the same key), ``resume=RUN``, ``hydra.run.dir=RUN`` (same folder,
logs and TensorBoard) and ``hydra.output_subdir=.hydra/resume_<k>.pending`` (the original ``.hydra``
stays as it was). Before Hydra starts it checks that the run has a ``checkpoints/last.ckpt`` to continue
from and that the recomposed config is the saved one (``RUN/.hydra/config.yaml``): if ``conf/`` changed
since, it stops and names each changed key with its saved and current value. ``ckpt_path=`` is refused
with ``resume=`` (the run continues from its own ``last.ckpt``).

RUN may be given as typed (``resume=/data/my runs/#3``) or Hydra-quoted (``"resume='/data/my runs/#3'"``);
it is re-emitted Hydra-quoted where needed (``visgrad.utils.commands``), so folders with spaces, ``#`` or
non-ASCII letters resume. Printed commands are shell-quoted.

An attempt counts once its training starts: ``ResumeAttempt`` (a Lightning callback that ``train()`` adds)
then renames ``.hydra/resume_<k>.pending`` to ``.hydra/resume_<k>``, the folder later resumes replay. An
attempt that fails before (a bad override, a model that does not fit the checkpoint) is undone by
``visgrad.utils.run_folder.RunFolderGuard``, so it cannot poison the next one.

``train()`` then calls ``resume_checkpoint`` for the checkpoint path and checks the run is not finished.
A ``last.ckpt`` that cannot be read is named, with the command that continues from the run's best
checkpoint in a new run folder when one is intact and has training left.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.callbacks import Callback

from visgrad.errors import CheckpointError, UserError, unreadable
from visgrad.utils.checkpoint_io import read_checkpoint
from visgrad.utils.commands import command, hydra_value
from visgrad.utils.preflight import ConfigError
from visgrad.utils.run_folder import PENDING, lock_run_folder, pending_attempt

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
RESUME_SUBDIR = "resume_"


def expand_sys_argv(config_dir: Path, config_name: str) -> None:
    """``train.py``'s entry point: expand ``resume=RUN`` in ``sys.argv``, or exit with the reason it can't."""
    try:
        sys.argv = expand_resume_argv(sys.argv, config_dir, config_name)
    except (UserError, OverrideParseException) as error:
        sys.exit(f"Error: {error}")


def expand_resume_argv(argv: list[str], config_dir: Path, config_name: str) -> list[str]:
    """``[prog, ..., "resume=RUN", ...]`` → ``[prog, ..., *RUN's overrides, "resume=RUN", hydra..., ...]``.

    ``argv`` without a ``resume=`` argument, or already expanded (as Lightning relaunches DDP workers with
    the command line of rank 0), is returned unchanged. Raises a ``UserError`` when the run cannot be
    resumed (no such run folder, in use by another process, no readable ``last.ckpt``, finished, a multirun,
    ``ckpt_path=`` given too, conf/ changed since the run started). Takes the run folder's lock
    (``lock_run_folder``) for the rest of the process.
    """
    positions = [i for i, arg in enumerate(argv) if arg.startswith("resume=")]
    if not positions or any(arg.startswith(f"hydra.output_subdir=.hydra/{RESUME_SUBDIR}") for arg in argv):
        return argv
    if len(positions) > 1:
        raise ConfigError("resume= was given more than once: resume one run at a time")
    if any(arg in ("-m", "--multirun") or arg.startswith("hydra.mode=") for arg in argv):
        raise ConfigError("resume= cannot be combined with -m/--multirun: resume each job of a sweep on its "
                          "own with python train.py resume=<sweep folder>/<job number>")
    at = positions[0]
    run = resume_folder(argv[at].split("=", 1)[1])
    latest = latest_attempt(run)
    extras = [arg for i, arg in enumerate(argv[1:], 1) if i != at and "=" in arg and not arg.startswith("-")]
    _refuse_ckpt_path(run, extras)
    lock_run_folder(run, f"resume={run}")  # held until this process ends: one writer per run folder
    saved = _saved_overrides(latest)
    new_keys = {_override_key(arg) for arg in extras}
    kept = [o for o in saved if _override_key(o) != "resume" and _override_key(o) not in new_keys]

    composed = _check_same_config(run, latest, [*kept, *extras], new_keys, config_dir, config_name, not saved)
    _check_checkpoint(run, composed.trainer, [*kept, *extras])
    attempt = 1 + max((int(p.name[len(RESUME_SUBDIR):]) for p in _resume_dirs(run)), default=0)
    expansion = [*kept, f"resume={hydra_value(str(run))}", f"hydra.run.dir={hydra_value(str(run))}",
                 f"hydra.output_subdir=.hydra/{RESUME_SUBDIR}{attempt}{PENDING}"]
    return [*argv[:at], *expansion, *argv[at + 1:]]


def resume_folder(text: str) -> Path:
    """The run folder of ``resume=<text>``: ``text`` as typed if that is a folder, else Hydra's reading of
    it (``'/my runs/x'`` → ``/my runs/x``), resolved."""
    path = Path(text).expanduser()
    if not path.is_dir():
        try:
            value = OverridesParser.create().parse_overrides([f"resume={text}"])[0].value()
        except OverrideParseException:
            value = None
        if isinstance(value, str):
            path = Path(value).expanduser()
    return path.resolve()


def latest_attempt(run: Path) -> Path:
    """The ``.hydra`` folder of the run's latest start: ``.hydra/resume_<k>`` for the largest k, else
    ``.hydra``. Raises ``ConfigError`` when ``run`` is not a train.py run folder."""
    if run.exists() and not run.is_dir():
        raise ConfigError(f"resume={run} is a file, not a run folder; pass the folder of a train.py run (the "
                          "one that holds .hydra/ and checkpoints/)")
    if not run.is_dir():
        raise ConfigError(f"resume={run}: no such run folder; pass a folder under logs/train/runs/ "
                          "(or logs/train/multiruns/<time>/<job>)")
    if not (run / ".hydra" / "overrides.yaml").is_file():
        raise ConfigError(f"resume={run}: not a train.py run folder (no .hydra/overrides.yaml); pass the "
                          "folder that holds .hydra/ and checkpoints/")
    resumes = _resume_dirs(run)
    return resumes[-1] if resumes else run / ".hydra"


def _resume_dirs(run: Path) -> list[Path]:
    """``RUN/.hydra/resume_<k>`` folders of earlier resumes that started training, by k."""
    found = [(int(p.name[len(RESUME_SUBDIR):]), p) for p in (run / ".hydra").glob(f"{RESUME_SUBDIR}*")
             if p.name[len(RESUME_SUBDIR):].isdigit() and (p / "overrides.yaml").is_file()]
    return [p for _, p in sorted(found)]


def _saved_overrides(attempt: Path) -> list[str]:
    """The overrides an attempt was started with: its ``overrides.yaml``, or, if that file is empty (Hydra
    writes ``[]`` for none, so an empty one was cut short), the same list in its ``hydra.yaml``."""
    path = attempt / "overrides.yaml"
    overrides = OmegaConf.load(path)
    if not overrides:  # an empty file loads as {}
        overrides = []
        if (attempt / "hydra.yaml").is_file():
            overrides = OmegaConf.select(OmegaConf.load(attempt / "hydra.yaml"), "hydra.overrides.task") or []
    if not isinstance(overrides, ListConfig | list):
        raise ConfigError(f"{path} is not a list of overrides (Hydra writes one per run); restore it, or "
                          "start a new run")
    return [str(o) for o in overrides]


def _refuse_ckpt_path(run: Path, extras: list[str]) -> None:
    """``ckpt_path=X`` with ``resume=``: Lightning would continue from the run's ``last.ckpt``, ignoring X."""
    for arg in extras:
        parsed = OverridesParser.create().parse_overrides([arg])[0]
        if parsed.key_or_group == "ckpt_path" and parsed.value() is not None:
            raise ConfigError(f"resume={run} continues the run from its own {LAST_CHECKPOINT}, so {arg} "
                              f"cannot be given with it: drop {arg}, or start a new run from that checkpoint "
                              f"without resume= ({command('<overrides>', arg)})")


class ResumeAttempt(Callback):
    """Records a resume attempt when its training starts: ``.hydra/resume_<k>.pending`` becomes
    ``.hydra/resume_<k>`` (rank 0; a job that is no such attempt is left alone)."""

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and HydraConfig.initialized():
            pending = pending_attempt(HydraConfig.get())
            if pending is not None:
                pending.rename(pending.with_name(pending.name[: -len(PENDING)]))


def resume_checkpoint(cfg: DictConfig) -> tuple[Path, int]:
    """For ``train()`` with ``cfg.resume`` set: the run's ``last.ckpt`` and its global step.

    Checks that the job runs in the resumed folder (``python train.py resume=RUN`` arranges it) and that
    the run has epochs or steps left under ``cfg.trainer``'s limits.
    """
    run = Path(cfg.resume).expanduser().resolve()
    output_dir = Path(cfg.paths.output_dir).resolve()
    if output_dir != run:
        raise ConfigError(f"resume={run} but this job writes to {output_dir}: resume with "
                          f"{command(f'resume={run}')} (it continues in the run's own folder)")
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return _check_checkpoint(run, cfg.trainer, [o for o in overrides if _override_key(o) != "resume"])


def _check_checkpoint(run: Path, trainer: DictConfig, overrides: list[str]) -> tuple[Path, int]:
    """``run``'s ``last.ckpt`` and its global step; a ``UserError`` if it is missing or unreadable (naming
    the command that continues from the run's best checkpoint, given the run's ``overrides``) or the run is
    finished under the ``trainer`` config's ``max_epochs`` / ``max_steps``."""
    last = run / LAST_CHECKPOINT
    if last.is_dir():
        raise ConfigError(f"resume={run}: {last} is a folder, not a checkpoint file; nothing to resume")
    if not last.is_file():
        raise ConfigError(f"resume={run}: there is no {LAST_CHECKPOINT} (the run stopped before its first "
                          "training epoch ended, or ran with callbacks=none); nothing to resume: start it "
                          "again as a new run with its overrides (.hydra/overrides.yaml)")
    try:
        with open(last, "rb") as file:
            file.read(1)
    except OSError as error:  # permission denied, say: the file may well be intact
        raise CheckpointError(f"resume={run}: {unreadable(last, error)}") from None
    finished = f"resume={run}: the run is finished since its {LAST_CHECKPOINT}"
    try:
        return last, check_training_left(last, trainer, finished)
    except CheckpointError as error:
        problem = str(error).removesuffix("; use another one")
        raise CheckpointError(f"resume={run}: {problem}; {_instead_of(last, trainer, overrides)}") from None


def _instead_of(broken: Path, trainer: DictConfig, overrides: list[str]) -> str:
    """What to do when ``broken`` (the run's ``last.ckpt``) cannot be read: continue from the latest other
    checkpoint of the run (``best_*.ckpt``) that is intact and has training left, in a new run folder with
    the run's ``overrides`` (this folder stays as it is), or start the run again."""
    usable = []
    for path in sorted(broken.parent.glob("*.ckpt")):
        if path != broken:
            try:
                usable.append((check_training_left(path, trainer, str(path)), path))
            except UserError:
                continue
    kept = [o for o in overrides if _override_key(o) != "ckpt_path"]
    if not usable:
        return (f"the run has no other intact checkpoint with training left: start it again as a new run "
                f"({command(*kept)})")
    step, best = max(usable)
    return (f"its {best.name} (step {step}) is intact: continue from it in a new run folder (this one stays "
            f"as it is) with {command(*kept, f'ckpt_path={hydra_value(str(best))}')}")


def check_training_left(checkpoint: Path, trainer: DictConfig, name: str) -> int:
    """The global step of ``checkpoint``; ``ConfigError`` (``name`` is ...) if it is already at
    the ``trainer`` config's ``max_epochs`` / ``max_steps``, where Lightning would stop at once: the job
    would train nothing, log no metric and look like a success."""
    state = read_checkpoint(checkpoint, mmap=True)
    try:
        epochs_done, step = int(state["epoch"]) + 1, int(state["global_step"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{checkpoint} is not a Lightning training checkpoint (no epoch or "
                              "global_step); pass a checkpoint written by python train.py") from None
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if max_epochs not in (None, -1) and epochs_done >= max_epochs:
        raise ConfigError(f"{name} is from epoch {epochs_done} of trainer.max_epochs={max_epochs}: nothing "
                          f"to train. To train it longer, add trainer.max_epochs=<more than {epochs_done}>")
    if max_steps not in (None, -1) and step >= max_steps:
        raise ConfigError(f"{name} is at step {step} of trainer.max_steps={max_steps}: nothing to train. "
                          f"To train it longer, add trainer.max_steps=<more than {step}>")
    return step


def _override_key(override: str) -> str:
    """The key (``group@package`` or ``a.b.c``) an override sets, e.g. ``+trainer.max_epochs=3`` → same key
    as ``trainer.max_epochs=3``."""
    parsed = OverridesParser.create().parse_overrides([override])[0]
    return parsed.key_or_group + (f"@{parsed.package}" if parsed.package else "")


def _check_same_config(run: Path, latest: Path, overrides: list[str], new_keys: set[str],
                       config_dir: Path, config_name: str, none_saved: bool) -> DictConfig:
    """Compose ``config_name`` with ``overrides`` and compare it (unresolved) with the config saved in
    ``latest``, ignoring ``resume`` and the keys under ``new_keys`` (the overrides given with resume=);
    returns the composed config. ``none_saved``: ``latest`` was started without overrides."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        composed = compose(config_name=config_name, overrides=overrides)
    now = _flatten(OmegaConf.to_container(composed, resolve=False))
    saved = _flatten(OmegaConf.to_container(OmegaConf.load(latest / "config.yaml"), resolve=False))
    ignored = {"resume", *(key.split("@")[0] for key in new_keys)}
    changed = sorted(key for key in now.keys() | saved.keys()
                     if now.get(key, "<unset>") != saved.get(key, "<unset>")
                     and not any(key == k or key.startswith(k + ".") for k in ignored))
    if changed:
        listed = "; ".join(f"{k}: saved {saved.get(k, '<unset>')!r}, now {now.get(k, '<unset>')!r}"
                           for k in changed[:8])
        more = f" (and {len(changed) - 8} more)" if len(changed) > 8 else ""
        why = (f"{latest / 'overrides.yaml'} lists no overrides, yet the run's saved config differs from "
               "conf/'s defaults" if none_saved else
               "conf/ changed since the run started, so the resumed run would differ from it")
        raise ConfigError(f"resume={run}: {why} at {listed}{more}. Pass the saved values as overrides after "
                          "resume= (or new values on purpose), or start a new run")
    return composed


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        flat: dict = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: node}
