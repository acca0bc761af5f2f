"""What the classifier tasks share: their input images (``task.images``), class options given by index or
name, the predicted classes, and the class each input is explained for (saliency and any attribution task).
"""

from __future__ import annotations

from pathlib import Path

import torch

from visgrad.data.image_sets import InputBatch, load_inputs
from visgrad.errors import ConfigError
from visgrad.models.classifier import Classifier
from visgrad.options import as_list, fmt, is_int
from visgrad.tasks.lifecycle import TaskRun
from visgrad.vision.attribution import ATTRIBUTIONS, Attribution, method_problems

IMAGES_ALLOWED = ("null (the shapes validation images for classifier=shapes, the sample photos for ImageNet "
                  "classifiers), shapes, samples, an image file, a folder, a list of them, or an .npz "
                  "(arrays X, y)")
CLASS_ALLOWED = "a class index or a class name"


def image_spec(value) -> bool:
    """``task.images``: a name, a path, or a non-empty list of paths."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, str) and v for v in value)
    return isinstance(value, str) and bool(value)


def class_spec(value) -> bool:
    """A class given by index or by (non-empty) name; the classifier checks it in ``prepare``."""
    return is_int(value) or (isinstance(value, str) and bool(value.strip()))


def class_option(classifier: Classifier, value: int | str, key: str) -> int:
    """The index of the class ``value`` (index or name) of the option ``key``; errors name the key."""
    try:
        return classifier.class_index(value)
    except ConfigError as err:
        raise ConfigError(f"{key}={fmt(value)}: {err}") from None


def load_images(run: TaskRun, images: str | list[str] | None, limit: int | None) -> InputBatch:
    """``task.images`` (see :data:`IMAGES_ALLOWED`) as a batch on the run's device, at the classifier's input
    size and normalisation; the first ``limit`` (None: all)."""
    classifier, classifier_cfg = run.classifier, run.cfg.classifier
    shapes_root = classifier_cfg.get("data_root") or Path(run.cfg.paths.data_dir) / "shapes"
    spec = images if images is not None else ("shapes" if classifier.name == "shapes" else "samples")
    batch = load_inputs(spec, classifier.image_size, limit, shapes_root, classifier_cfg.get("dataset"),
                        num_classes=len(classifier.class_names), classifier_name=classifier.name,
                        norm=classifier.norm)
    batch.images = batch.images.to(run.device)
    return batch


@torch.no_grad()
def predict(classifier: Classifier, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The classifier's predicted class of each image (N, 3, S, S): (N,) long on the CPU."""
    return torch.cat([classifier.model(chunk).argmax(dim=1) for chunk in images.split(batch_size)]).cpu()


def explained_classes(target: int | None, labels: torch.Tensor | None,
                      predicted: torch.Tensor) -> torch.Tensor:
    """The class to explain for each input (N,): ``target`` for all when given (``task.target``), else the
    true labels when known, else the predicted classes."""
    if target is not None:
        return torch.full_like(predicted, target)
    return labels if labels is not None else predicted


def attribution_methods(run: TaskRun) -> list[Attribution]:
    """The entries of ``task.methods`` (names or dotted paths), each named once, after checking what each
    needs of the run's classifier (:func:`~visgrad.vision.attribution.method_problems`): one ConfigError, a
    line per problem, before any work."""
    methods = [ATTRIBUTIONS.get(name) for name in as_list(run.options.methods)]
    names = [method.name for method in methods]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"task.methods={fmt(run.options.methods)}: {', '.join(twice)} more than once "
                          "(metric keys and options are per method name)")
    problems = [line for m in methods
                for line in method_problems(m, run.classifier, run.options_of(m), f"task.{m.name}")]
    if problems:
        raise ConfigError("\n".join(problems))
    return methods
