"""visualize.py checks every task option before any work, one line per bad key, as train.py does."""

from __future__ import annotations

from pathlib import Path

import pytest

from visgrad.tasks import run_task
from visgrad.tasks.options import task_problems
from visgrad.utils.preflight import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TASKS = sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))
CLASSIFIERS = sorted(p.stem for p in (ROOT / "conf" / "classifier").glob("*.yaml"))


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_every_shipped_task_config_passes(compose_cfg, classifier: str) -> None:
    for task in TASKS:
        cfg = compose_cfg("visualize", [f"task={task}", f"classifier={classifier}"])
        assert task_problems(cfg) == [], task


@pytest.mark.parametrize(("overrides", "expected"), [
    (["task=class_viz", "task.num_iterations=-3", "task.pixel.blur_sigma=-1"],
     ["task.num_iterations=-3: must be a positive integer; e.g. task.num_iterations=128",
      "task.pixel.blur_sigma=-1: must be a number >= 0; e.g. task.pixel.blur_sigma=0.5"]),
    (["task=fooling", "task.learning_rate=-1", "task.max_iter=0"],
     ["task.learning_rate=-1: must be a positive number; e.g. task.learning_rate=1.0",
      "task.max_iter=0: must be a positive integer; e.g. task.max_iter=100"]),
    (["task=saliency", "task.num_images=0", "task.integrated_gradients.steps=0", "task.methods=grad",
      "task.metrics.deletion_fill=white"],
     ["task.num_images=0: must be null (all) or a positive integer; e.g. task.num_images=8",
      "task.methods='grad': must be one or a list of vanilla, smoothgrad, integrated_gradients; "
      "e.g. task.methods=[vanilla,smoothgrad]",
      "task.integrated_gradients.steps=0: must be a positive integer; "
      "e.g. task.integrated_gradients.steps=32",
      "task.metrics.deletion_fill='white': must be blur or black; e.g. task.metrics.deletion_fill=blur"]),
    (["task=style_transfer", "task.steps=[100,0]", "task.style_weights=[1,-2]", "task.image_size=8"],
     ["task.image_size=8: must be an integer >= 16; e.g. task.image_size=192",
      "task.style_weights=[1, -2]: must be a number >= 0 or a list of them (one per style layer); "
      "e.g. task.style_weights=1.0",
      "task.steps=[100, 0]: must be a positive integer (or one per scale); e.g. task.steps=150"]),
    (["task=captions", "task.max_length=0", "task.split=test"],
     ["task.split='test': must be train or val; e.g. task.split=val",
      "task.max_length=0: must be a positive integer; e.g. task.max_length=30"]),
])
def test_bad_task_options_one_line_each(compose_cfg, overrides: list[str], expected: list[str]) -> None:
    assert task_problems(compose_cfg("visualize", overrides)) == expected


def test_bad_options_are_refused_before_the_classifier_is_trained(compose_cfg, tmp_path: Path) -> None:
    checkpoint = tmp_path / "shapes_cnn.pt"
    cfg = compose_cfg("visualize", ["task=class_viz", "task.num_iterations=-3", "classifier=shapes",
                                    f"classifier.checkpoint={checkpoint}"])
    with pytest.raises(ConfigError, match=r"^task.num_iterations=-3: must be a positive integer"):
        run_task(cfg)
    assert not checkpoint.exists() and not Path(cfg.paths.output_dir).exists()
