"""Check a task's options before any work (classifier, images, figures), as ``train.py`` checks its config.

``validate_task(cfg)`` raises one ``ConfigError`` listing every bad ``task.*`` value of the task that
``cfg.task.run`` names, one line each with the key, the value, what is allowed and an example, e.g.::

    task.num_iterations=-3: must be a positive integer; e.g. task.num_iterations=100

The rules use ``visgrad.utils.preflight``'s ``Rule``; keys a task config does not have are skipped.
"""

from __future__ import annotations

from omegaconf import DictConfig

from visgrad.utils.preflight import (
    ConfigError,
    Rule,
    non_negative_int,
    non_negative_number,
    one_of,
    optional,
    positive_int,
    positive_number,
    rule_problems,
)
from visgrad.vision.saliency import METHODS


def _each(check):
    """A value or a non-empty list of values that all pass ``check`` (per-layer / per-scale options)."""

    def passes(value) -> bool:
        values = list(value) if hasattr(value, "__iter__") and not isinstance(value, str) else [value]
        return len(values) > 0 and all(check(v) for v in values)

    return passes


INPUTS = (
    Rule("task.num_images", optional(positive_int), "null (all) or a positive integer", 8),
    Rule("task.num_show", positive_int, "a positive integer", 4),
)
SALIENCY = (
    *INPUTS,
    Rule("task.methods", _each(one_of(*METHODS)), f"one or a list of {', '.join(METHODS)}",
         "[vanilla,smoothgrad]"),
    Rule("task.smoothgrad.num_samples", positive_int, "a positive integer", 25),
    Rule("task.smoothgrad.noise_level", non_negative_number, "a number >= 0", 0.15),
    Rule("task.integrated_gradients.steps", positive_int, "a positive integer", 32),
    Rule("task.integrated_gradients.baseline", one_of("black", "mean", "blur"), "one of black, mean, blur",
         "blur"),
    Rule("task.metrics.steps", positive_int, "a positive integer", 12),
    Rule("task.metrics.patch", positive_int, "a positive integer (1: single pixels)", 8),
    Rule("task.metrics.deletion_fill", one_of("blur", "black"), "blur or black", "blur"),
    Rule("task.metrics.blur", positive_number, "a positive number (pixels)", 5.0),
)
FOOLING = (
    *INPUTS,
    Rule("task.learning_rate", positive_number, "a positive number", 1.0),
    Rule("task.max_iter", positive_int, "a positive integer", 100),
    Rule("task.clamp", one_of(True, False), "true or false", "true"),
)
CLASS_VIZ = (
    Rule("task.param", one_of("fourier", "pixel"), "one of fourier, pixel", "fourier"),
    Rule("task.num_iterations", positive_int, "a positive integer", 128),
    Rule("task.show_every", positive_int, "a positive integer", 32),
    Rule("task.pixel.learning_rate", positive_number, "a positive number", 25),
    Rule("task.pixel.l2_reg", non_negative_number, "a number >= 0", 0.001),
    Rule("task.pixel.blur_every", non_negative_int, "an integer >= 0 (0: never)", 10),
    Rule("task.pixel.blur_sigma", non_negative_number, "a number >= 0", 0.5),
    Rule("task.pixel.max_jitter", non_negative_int, "an integer >= 0", 16),
    Rule("task.fourier.learning_rate", positive_number, "a positive number", 0.02),
    Rule("task.fourier.decay_power", non_negative_number, "a number >= 0", 1.5),
    Rule("task.fourier.image_size", lambda v: positive_int(v) and v >= 16, "an integer >= 16", 128),
    Rule("task.fourier.input_size", optional(positive_int), "null (the classifier's) or a positive integer",
         "null"),
    Rule("task.robustness.num_crops", positive_int, "a positive integer", 32),
)


STYLE = (
    Rule("task.image_size", lambda v: positive_int(v) and v >= 16, "an integer >= 16", 192),
    Rule("task.style_size", lambda v: positive_int(v) and v >= 16, "an integer >= 16", 192),
    Rule("task.content_weight", non_negative_number, "a number >= 0", 1.0),
    Rule("task.style_weights", _each(non_negative_number), "a number >= 0 or a list of them (one per style "
         "layer)", 1.0),
    Rule("task.tv_weight", non_negative_number, "a number >= 0", 0.1),
    Rule("task.scales", _each(positive_number), "a list of positive numbers", "[1.0]"),
    Rule("task.steps", _each(positive_int), "a positive integer (or one per scale)", 150),
    Rule("task.lr", positive_number, "a positive number", 0.02),
    Rule("task.decayed_lr", positive_number, "a positive number", 0.01),
    Rule("task.decay_lr_at", non_negative_int, "an integer >= 0", 120),
    Rule("task.log_every", positive_int, "a positive integer", 10),
    Rule("task.image_every", positive_int, "a positive integer", 25),
    Rule("task.num_snapshots", non_negative_int, "an integer >= 0", 6),
)
CAPTIONS = (
    Rule("task.split", one_of("train", "val"), "train or val", "val"),
    Rule("task.max_length", positive_int, "a positive integer", 30),
    Rule("task.batch_size", positive_int, "a positive integer", 512),
    Rule("task.num_images", non_negative_int, "an integer >= 0", 12),
    Rule("task.meteor", one_of(True, False, "auto"), "true, false or auto", "auto"),
)
RULES = {
    "saliency": SALIENCY,
    "fooling": FOOLING,
    "class_viz": CLASS_VIZ,
    "style_transfer": STYLE,
    "feature_inversion": STYLE,
    "texture": STYLE,
    "captions": CAPTIONS,
}


def task_problems(cfg: DictConfig) -> list[str]:
    """One line per bad option of the task ``cfg.task.run`` names (``visgrad.tasks.<name>.run``)."""
    name = str(cfg.task.run).rsplit(".", 2)[-2] if str(cfg.task.run).count(".") >= 2 else ""
    return rule_problems(cfg, RULES.get(name, ()))


def validate_task(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` listing every bad task option (see ``task_problems``)."""
    problems = task_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
