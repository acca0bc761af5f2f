"""``python visualize.py task=sanity_checks``: the model-parameter randomisation test of Adebayo et al. (2018)
for the attribution methods of ``task.methods`` (:data:`~visgrad.vision.attribution.ATTRIBUTIONS`).

The classifier's blocks (:func:`~visgrad.vision.sanity.randomization_blocks`) are re-initialised in groups
of ``task.blocks_per_step`` on a copy of the network (the trained one is never written), cascading from the
logits down to the stem and, with ``task.independent``, one group at a time. At each step every method's
maps of the same images are compared with the trained model's (:func:`~visgrad.vision.sanity.similarities`:
Spearman of the absolute and of the signed maps, SSIM, HOG). A method **passes** when the Spearman rank
correlation of its absolute maps with the trained model's, averaged over the images and over the cascading
steps (the area under the cascade's curve: how much of the network can be replaced by noise before the map
changes), is below ``task.threshold``: its maps depend on the weights.

Outputs: the paper's figure (methods as rows, progressively randomised models as columns), the curves of
every measure against the randomisation depth, the summary table (``sanity_table.md``), ``metrics.json``
(``sanity/<method>/cascade_spearman_abs``, the verdict's measure, ``sanity/<method>/passed``, and
``sanity/<method>/<measure>`` after full randomisation) and TensorBoard (each step as a scalar,
``sanity/<method>/cascading/<measure>`` and ``.../independent/<measure>``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from visgrad.data.image_sets import InputBatch
from visgrad.errors import ConfigError
from visgrad.models.classifier import Classifier
from visgrad.options import (
    boolean,
    each,
    option,
    optional,
    positive_int,
    probability,
    registered,
)
from visgrad.tasks.inputs import IMAGES_ALLOWED, attribution_methods, image_spec, load_images, predict
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.tasks.sanity_figures import sanity_cascade_figure, sanity_curves_figure
from visgrad.vision.attribution import ATTRIBUTIONS, Attribution, attribution_maps
from visgrad.vision.sanity import (
    MEASURES,
    Block,
    Randomizer,
    Reference,
    fresh_model,
    group_blocks,
    randomization_blocks,
    similarities,
)

MEASURE_LABELS = {"spearman_abs": "Spearman |map|", "spearman_signed": "Spearman signed", "ssim": "SSIM",
                  "hog": "HOG"}


@dataclass
class SanityOptions:
    """``task=sanity_checks``; each method's own options are under ``task.<method name>``."""

    methods: list[str] | str = option(
        ["vanilla", "input_x_gradient", "guided_backprop", "gradcam", "guided_gradcam"],
        each(registered(ATTRIBUTIONS)), f"one attribution method or a list of them: {ATTRIBUTIONS.allowed}")
    images: str | list[str] | None = option(None, optional(image_spec), IMAGES_ALLOWED)
    num_images: int | None = option(3, optional(positive_int), "null (all) or a positive integer")
    blocks_per_step: int = option(4, positive_int, "a positive integer (blocks re-initialised per step)")
    independent: bool = option(True, boolean, "true or false")
    threshold: float = option(0.5, probability, "a number in [0, 1]")


@dataclass
class Prepared:
    """The methods, the inputs, the classes explained (N,) (the predictions) and the randomisation groups."""

    methods: list[Attribution]
    batch: InputBatch
    classes: torch.Tensor
    groups: list[list[Block]]


def prepare(run: TaskRun) -> Prepared:
    """Resolve the methods (no name twice) and check what each needs of the classifier; load the inputs."""
    opts, classifier = run.options, run.classifier
    methods = attribution_methods(run)
    blocks = randomization_blocks(classifier.model)
    if not blocks:
        raise ConfigError(f"classifier {classifier.name}: no block with parameters to randomise")
    batch = load_images(run, opts.images, opts.num_images)
    groups = group_blocks(blocks, opts.blocks_per_step)
    return Prepared(methods, batch, predict(classifier, batch.images), groups)


def _maps(run: TaskRun, method: Attribution, X: torch.Tensor, y: torch.Tensor,
          classifier: Classifier) -> tuple[torch.Tensor, torch.Tensor]:
    """(absolute, signed) maps (N, H, W) of ``method``; the same noise for every model (seeded per call)."""
    options = run.options_of(method)
    absolute = attribution_maps(method, X, y, classifier, options, torch.Generator().manual_seed(run.seed))
    if method.signed is None:
        return absolute, absolute
    signed = attribution_maps(method, X, y, classifier, options, torch.Generator().manual_seed(run.seed),
                              signed=True)
    return absolute, signed


def step_label(group: list[Block]) -> str:
    """A column title: the blocks re-initialised at a step (``_fc .. _blocks.13``)."""
    return group[0].name if len(group) == 1 else f"{group[0].name} .. {group[-1].name}"


def run(run: TaskRun, prepared: Prepared) -> dict[str, float]:
    """Every method on the trained model, then on each cascading and each independent randomisation.

    Returns, per method, the verdict's measure (``cascade_spearman_abs``: Spearman |map| averaged over the
    images and the cascading steps), the verdict (``passed`` 1 / 0), the mean of each measure over the images
    after full randomisation and the seconds its maps took; also the threshold and the number of steps.
    """
    opts, classifier, batch = run.options, run.classifier, prepared.batch
    X, y, groups = batch.images, prepared.classes.to(run.device), prepared.groups
    randomizer = Randomizer(classifier.model, fresh_model(classifier.model, run.seed))
    copy = dataclasses.replace(classifier, model=randomizer.model,
                               feature_layer=None if classifier.feature_layer is None else
                               randomizer.module(classifier.feature_layer, classifier.model))
    kinds = ["cascading"] + (["independent"] if opts.independent else [])
    curves = {kind: {m.label: {k: [] for k in MEASURES} for m in prepared.methods} for kind in kinds}
    shown = {m.label: [] for m in prepared.methods}  # the first image's maps: trained, then cascade steps
    metrics: dict[str, float] = {"sanity/num_images": float(len(batch)), "sanity/threshold": opts.threshold,
                                 "sanity/num_steps": float(len(groups))}
    rows = []
    for method in prepared.methods:
        began = time.perf_counter()
        absolute, signed = _maps(run, method, X, y, copy)
        reference = Reference.of(absolute, signed)
        shown[method.label].append(absolute[0].cpu())
        for kind in kinds:
            for step, group in enumerate(groups, start=1):
                for block in group:
                    randomizer.randomize(block)
                absolute, signed = _maps(run, method, X, y, copy)
                if kind == "cascading":
                    shown[method.label].append(absolute[0].cpu())
                else:
                    for block in group:
                        randomizer.restore(block)
                for measure, values in similarities(reference, absolute, signed).items():
                    value = float(np.mean(values))
                    curves[kind][method.label][measure].append(value)
                    run.writer.add_scalar(f"sanity/{method.name}/{kind}/{measure}", value, step)
            for group in groups:
                for block in group:
                    randomizer.restore(block)
        final = {measure: curves["cascading"][method.label][measure][-1] for measure in MEASURES}
        cascade = float(np.mean(curves["cascading"][method.label]["spearman_abs"]))
        passed = cascade < opts.threshold
        metrics[f"sanity/{method.name}/cascade_spearman_abs"] = cascade
        metrics.update({f"sanity/{method.name}/{measure}": value for measure, value in final.items()})
        metrics[f"sanity/{method.name}/passed"] = float(passed)
        metrics[f"sanity/{method.name}/seconds"] = time.perf_counter() - began
        rows.append([method.label, f"{cascade:.3f}", *(f"{final[m]:.3f}" for m in MEASURES),
                     "pass" if passed else "FAIL"])

    columns = ["trained"] + [f"random down to {group[-1].name}" for group in groups]
    image = classifier.norm.to_uint8(X[:1].cpu()).numpy()[0]
    title = f"{batch.names[0]}: {classifier.class_names[int(prepared.classes[0])]}"
    run.add_figure(sanity_cascade_figure(image, shown, columns, title), "sanity_cascade")
    run.add_figure(sanity_curves_figure(curves, [step_label(g) for g in groups], MEASURE_LABELS,
                                        opts.threshold), "sanity_curves")
    run.add_table(f"sanity checks (mean of {len(batch)} images); pass: Spearman |map| over the cascade < "
                  f"{opts.threshold}", ["method", "Spearman |map| over the cascade",
                                        *(f"{MEASURE_LABELS[m]} (all random)" for m in MEASURES), "verdict"],
                  rows, markdown="sanity_table")
    run.note("randomised", f"{sum(len(g) for g in groups)} blocks of {classifier.name} in {len(groups)} "
                           f"steps from the logits down (fresh initialisation, seed {run.seed})")
    return metrics


TASK = Task("sanity_checks", "sanity checks", prepare, run, SanityOptions, choices={"methods": ATTRIBUTIONS})
