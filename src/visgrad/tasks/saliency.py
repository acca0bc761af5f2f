"""``python visualize.py task=saliency``: saliency maps of the classifier's evidence by the attribution
methods of ``task.methods`` (:data:`~visgrad.vision.attribution.ATTRIBUTIONS`: vanilla, SmoothGrad,
Integrated Gradients, Input x Gradient, Guided Backprop, Grad-CAM, Guided Grad-CAM, occlusion, RISE, or the
dotted path of your own), as one figure, in TensorBoard and measured: the
deletion and insertion metrics of RISE for every method against a random pixel order and, when object
masks are known (`shapes`), the pointing game and the saliency mass inside the objects
(:func:`~visgrad.vision.saliency_metrics.score_maps`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from rich.progress import Progress

from visgrad.data.image_sets import InputBatch
from visgrad.errors import ConfigError
from visgrad.options import each, nested, option, optional, positive_int, registered
from visgrad.tasks.figures import saliency_curves_figure, saliency_figure
from visgrad.tasks.inputs import (
    CLASS_ALLOWED,
    IMAGES_ALLOWED,
    attribution_methods,
    class_option,
    class_spec,
    explained_classes,
    image_spec,
    load_images,
    predict,
)
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.vision.attribution import ATTRIBUTIONS, Attribution, attribution_maps
from visgrad.vision.saliency_metrics import RANDOM, ScoringOptions, score_maps

RANDOM_LABEL = "random order"


@dataclass
class SaliencyOptions:
    """``task=saliency``; each method's own options are under ``task.<method name>``."""

    methods: list[str] | str = option(["vanilla", "smoothgrad", "integrated_gradients"],
                                      each(registered(ATTRIBUTIONS)),
                                      f"one attribution method or a list of them: {ATTRIBUTIONS.allowed}")
    images: str | list[str] | None = option(None, optional(image_spec), IMAGES_ALLOWED)
    num_images: int | None = option(200, optional(positive_int), "null (all) or a positive integer")
    num_show: int = option(7, positive_int, "a positive integer")
    target: int | str | None = option(None, optional(class_spec),
                                      f"null (the true label, or the prediction), {CLASS_ALLOWED}")
    metrics: ScoringOptions = nested(ScoringOptions)


@dataclass
class Prepared:
    """The methods, the inputs, their predicted classes and the classes explained (N,) on the CPU."""

    methods: list[Attribution]
    batch: InputBatch
    predicted: torch.Tensor
    classes: torch.Tensor


def prepare(run: TaskRun) -> Prepared:
    """Resolve the methods (no name twice), check the patch size, what each method needs of the classifier
    (:func:`~visgrad.vision.attribution.method_problems`) and ``task.target``, load the inputs and
    choose the class to explain for each (``task.target``, else the true label, else the prediction)."""
    opts, classifier = run.options, run.classifier
    if opts.metrics.patch > classifier.image_size:
        raise ConfigError(f"task.metrics.patch={opts.metrics.patch}: larger than the {classifier.image_size}-"
                          f"pixel inputs of {classifier.name}; use at most {classifier.image_size}")
    methods = attribution_methods(run)
    target = None if opts.target is None else class_option(classifier, opts.target, "task.target")
    batch = load_images(run, opts.images, opts.num_images)
    predicted = predict(classifier, batch.images)
    return Prepared(methods, batch, predicted, explained_classes(target, batch.labels, predicted))


def run(run: TaskRun, prepared: Prepared) -> dict[str, float]:
    """Maps by each method for every input and their scores; the figure shows ``task.num_show`` inputs.

    Returns, per method (its registry name), the deletion and insertion AUC (``task.metrics``) with the
    random order's beside them, the pointing game and mass in mask when masks are known, the accuracy on
    labelled inputs and the seconds each method took.
    """
    opts, classifier, batch = run.options, run.classifier, prepared.batch
    methods, y = prepared.methods, prepared.classes.to(run.device)
    metrics: dict[str, float] = {"saliency/num_images": float(len(batch))}
    if batch.labels is not None:
        metrics["saliency/accuracy"] = (prepared.predicted == batch.labels).float().mean().item()
    maps: dict[str, torch.Tensor] = {}
    with Progress(console=run.console, transient=True) as progress:
        bar = progress.add_task("saliency maps and deletion/insertion", total=2 * len(methods) + 1)
        for method in methods:
            began = time.perf_counter()
            generator = torch.Generator().manual_seed(run.seed)
            maps[method.name] = attribution_maps(method, batch.images, y, classifier, run.options_of(method),
                                                 generator)
            metrics[f"saliency/{method.name}/seconds"] = time.perf_counter() - began
            progress.advance(bar)
        scores = score_maps(batch.images, y, classifier.model, maps, opts.metrics, classifier.norm,
                            batch.masks, run.seed, on_scored=lambda _: progress.advance(bar))
    for name, score in scores.items():
        metrics.update({f"saliency/{name}/{key}": value for key, value in score.metrics().items()})

    show, name_of = slice(0, opts.num_show), classifier.class_names
    titles = [f"{name}\n{name_of[int(c)]}" + ("" if p == c else f"\n(pred {name_of[int(p)]})")
              for name, c, p in zip(batch.names[show], prepared.classes[show], prepared.predicted[show],
                                    strict=True)]
    notes = {m.label: "deletion {:.2f}, insertion {:.2f}".format(
        metrics[f"saliency/{m.name}/deletion_auc"], metrics[f"saliency/{m.name}/insertion_auc"])
        for m in methods}
    shown = {m.label: maps[m.name][show].cpu() for m in methods}
    fig = saliency_figure(batch.images[show].cpu(), shown, titles,
                          None if batch.masks is None else batch.masks[show], classifier.norm, notes)
    run.add_figure(fig, "saliency")
    labels = {**{m.name: m.label for m in methods}, RANDOM: RANDOM_LABEL}
    curves = {labels[name]: (score.deletion.curves, score.insertion.curves) for name, score in scores.items()}
    run.add_figure(saliency_curves_figure(curves), "saliency_curves")
    run.note("scores", "deletion AUC (lower is better), insertion AUC (higher is better)")
    return metrics


TASK = Task("saliency", "saliency maps", prepare, run, SaliencyOptions, choices={"methods": ATTRIBUTIONS})
