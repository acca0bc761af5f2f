"""The task lifecycle: plugins by dotted path (an attribution method, a task with its own options), refusals
that leave no run folder, the one summary (metrics.json, HParams row) and the warning for a task without
declared options."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hparams_dashboard import read_dashboard
from omegaconf import open_dict

from visgrad.data.image_sets import sample_inputs
from visgrad.errors import ConfigError
from visgrad.models.classifier import efficientnet_lite0_classifier
from visgrad.options import option, positive_int
from visgrad.tasks import run_task
from visgrad.tasks.inputs import predict
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.vision.attribution import Attribution
from visgrad.vision.saliency import compute_saliency_maps
from visgrad.vision.saliency_metrics import ScoringOptions, score_maps

ROOT = Path(__file__).resolve().parents[1]
TINY_SALIENCY = ["task=saliency", "task.num_images=2", "task.num_show=2", "device=cpu",
                 "task.metrics.steps=3", "task.metrics.patch=32",
                 "task.optimized_metric=saliency/inverted_vanilla/deletion_auc"]


def inverted_vanilla(X: torch.Tensor, y: torch.Tensor, classifier, *,
                     generator: torch.Generator) -> torch.Tensor:
    """A plain function at a dotted path as an attribution method: the vanilla map upside down."""
    maps = compute_saliency_maps(X, y, classifier.model)
    return maps.amax(dim=(1, 2), keepdim=True) - maps


@dataclass
class ScaledOptions:
    factor: int = option(2, positive_int, "a positive integer")


SEEN_FACTORS: list[int] = []


def _scaled(X, y, classifier, *, generator, factor: int) -> torch.Tensor:
    SEEN_FACTORS.append(factor)
    return factor * compute_saliency_maps(X, y, classifier.model)


SCALED_VANILLA = Attribution("scaled_vanilla", "vanilla, scaled", _scaled, ScaledOptions)


def test_a_dotted_path_attribution_method_is_scored_by_task_saliency(compose_cfg) -> None:
    methods = f"task.methods=[vanilla,{__name__}.inverted_vanilla,{__name__}.SCALED_VANILLA]"
    cfg = compose_cfg("visualize", [*TINY_SALIENCY, methods, "+task.scaled_vanilla.factor=3"])
    value = run_task(cfg)
    out = Path(cfg.paths.output_dir)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["saliency/inverted_vanilla/deletion_auc"] == value
    # a map of its own, scored as the library scores any map: the same numbers
    classifier = efficientnet_lite0_classifier()
    images = sample_inputs(classifier.image_size, 2, classifier.norm).images
    y = predict(classifier, images)  # the sample photos have no labels: the predicted classes are explained
    saliency = inverted_vanilla(images, y, classifier, generator=torch.Generator())
    expected = score_maps(images, y, classifier.model, {"inverted_vanilla": saliency},
                          ScoringOptions(steps=3, patch=32), classifier.norm, seed=cfg.seed)
    for key, score in expected["inverted_vanilla"].metrics().items():
        assert metrics[f"saliency/inverted_vanilla/{key}"] == pytest.approx(score, abs=1e-6)
    # an entry with options: task.scaled_vanilla.factor reaches it; scaling keeps the pixel order
    assert SEEN_FACTORS[-1] == 3
    for key in ("deletion_auc", "insertion_auc"):
        assert metrics[f"saliency/scaled_vanilla/{key}"] == metrics[f"saliency/vanilla/{key}"]
    (row,) = read_dashboard(out).rows.values()
    assert row.hparams["scaled_vanilla.factor"] == 3
    assert row.metrics["saliency/inverted_vanilla/insertion_auc"] == pytest.approx(
        metrics["saliency/inverted_vanilla/insertion_auc"])


def test_a_dotted_path_method_with_bad_options_is_refused_before_anything(compose_cfg) -> None:
    cfg = compose_cfg("visualize", [*TINY_SALIENCY, f"task.methods=[{__name__}.SCALED_VANILLA]",
                                    "+task.scaled_vanilla.factor=0", "+task.scaled_vanilla.bogus_option=1"])
    with pytest.raises(ConfigError) as info:
        run_task(cfg)
    assert str(info.value).splitlines() == [
        "task.scaled_vanilla.bogus_option: not an option of ScaledOptions (factor)",
        "task.scaled_vanilla.factor=0: must be a positive integer; e.g. task.scaled_vanilla.factor=2"]
    assert not Path(cfg.paths.output_dir).exists()
    cfg = compose_cfg("visualize", [*TINY_SALIENCY, f"task.methods=[{__name__}.bogus_method]"])
    with pytest.raises(ConfigError, match=r"^task.methods=\['test_tasks_lifecycle.bogus_method'\]: "
                                          r"test_tasks_lifecycle.bogus_method: module test_tasks_lifecycle "
                                          r"has no attribute 'bogus_method'$"):
        run_task(cfg)


@dataclass
class EchoOptions:
    value: int = option(1, positive_int, "a positive integer")
    repeat: int = option(2, positive_int, "a positive integer")


def _echo_prepare(run: TaskRun) -> list[int]:
    if run.options.value == 13:
        raise ConfigError("task.value=13: unlucky; choose another")
    return [run.options.value] * run.options.repeat


def _echo_run(run: TaskRun, prepared: list[int]) -> dict[str, float]:
    run.writer.add_scalar("echo/step", 1.0, 0)
    (run.output_dir / "echo.txt").write_text(str(prepared))
    run.add_file(run.output_dir / "echo.txt")
    run.note("values", prepared)
    return {"echo/sum": float(sum(prepared))}


ECHO = Task("echo_task", "echo", _echo_prepare, _echo_run, EchoOptions, uses_classifier=False)


def _task(compose_cfg, task: dict, *overrides: str):
    cfg = compose_cfg("visualize", ["task=saliency", *overrides])
    with open_dict(cfg):
        cfg.task = task
    return cfg


def test_a_task_of_your_own_runs_in_the_lifecycle(compose_cfg) -> None:
    cfg = _task(compose_cfg, {"name": f"{__name__}.ECHO", "value": 4, "optimized_metric": "echo/sum"})
    assert run_task(cfg) == 8.0
    out = Path(cfg.paths.output_dir)
    assert json.loads((out / "metrics.json").read_text()) == {"echo/sum": 8.0}
    assert (out / "echo.txt").read_text() == "[4, 4]"
    (row,) = read_dashboard(out).rows.values()
    assert row.status == "STATUS_SUCCESS" and row.metrics == {"echo/step": 1.0, "echo/sum": 8.0}
    assert {"value": 4, "repeat": 2}.items() <= row.hparams.items()  # the defaults are columns too


@pytest.mark.parametrize(("task", "message"), [
    ({"value": 0}, r"^task.value=0: must be a positive integer; e.g. task.value=1$"),
    ({"value": 2, "bogus_key": 1}, r"^task.bogus_key: not an option of EchoOptions \(value, repeat\)$"),
    ({"value": 13}, r"^task.value=13: unlucky"),
])
def test_a_task_of_your_own_is_refused_cleanly(compose_cfg, task: dict, message: str) -> None:
    cfg = _task(compose_cfg, {"name": f"{__name__}.ECHO", **task})
    with pytest.raises(ConfigError, match=message):
        run_task(cfg)
    assert not Path(cfg.paths.output_dir).exists()


UNDECLARED = Task("undeclared", "a task without options", lambda run: dict(run.options),
                  lambda run, prepared: {"undeclared/value": float(prepared["value"])}, uses_classifier=False)


def test_a_task_without_declared_options_gets_a_warning(compose_cfg, caplog) -> None:
    cfg = _task(compose_cfg, {"name": f"{__name__}.UNDECLARED", "value": 5})
    with caplog.at_level(logging.WARNING, logger="visgrad.tasks.config"):
        run_task(cfg)
    assert "task undeclared declares no options dataclass: its keys (value) are not checked" in caplog.text
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text()) == {"undeclared/value": 5.0}


def test_a_refused_visualize_run_leaves_no_folder(tmp_path: Path) -> None:
    """Through the app: a refusal in prepare (after the classifier is loaded) leaves no run folder (no
    .hydra/, log, event file or HParams row), and says why in a few lines."""
    env = {**os.environ, "VISGRAD_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    run_dir = tmp_path / "runs" / "refused"
    command = [sys.executable, str(ROOT / "visualize.py"), "task=fooling", "task.target=notaclass",
               "device=cpu", f"hydra.run.dir={run_dir}", "print_config=false"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "Error: task.target='notaclass': unknown class name 'notaclass'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4, result.stderr
    assert not (tmp_path / "runs").exists()  # nor the folder above it, which this run created


def test_config_keys_turns_arguments_into_config_keys() -> None:
    from visgrad.images import ImageError
    from visgrad.tasks.config import config_keys

    # `arg=` becomes `key=`; a bare word, or a longer name ending in the argument's, stays
    with pytest.raises(ConfigError, match=r"^task.style_weights=\[1, 2\] for \(task.style_blend=3\); "
                                          r"style_weights, my_blend=2$"):
        with config_keys(style_weights="task.style_weights", blend="task.style_blend"):
            raise ValueError("style_weights=[1, 2] for (blend=3); style_weights, my_blend=2")
    with pytest.raises(ImageError, match=r"^bad classifier.weights_path=x$"):  # a user error keeps its type
        with config_keys(weights_path="classifier.weights_path"):
            raise ImageError("bad weights_path=x")
    with pytest.raises(ConfigError, match=r"^a=1$"), config_keys():
        raise ValueError("a=1")
