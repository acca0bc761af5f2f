"""``python visualize.py task=fooling``: fooling images for every input x target class pair by the attack of
``task.attack`` (:data:`~visgrad.vision.attacks.ATTACKS`), with the success rate and perturbation size per
target, whether each fooling image still fools once saved as an 8-bit PNG and read back, a figure of a few
and the attack's progress in TensorBoard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from rich.progress import Progress

from visgrad.data.image_sets import InputBatch
from visgrad.errors import ConfigError
from visgrad.images import Normalization, load_image
from visgrad.options import as_list, each, fmt, option, optional, positive_int, registered
from visgrad.tasks.figures import fooling_figure, save_image, slug
from visgrad.tasks.inputs import (
    CLASS_ALLOWED,
    IMAGES_ALLOWED,
    class_option,
    class_spec,
    image_spec,
    load_images,
    predict,
)
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.vision.attacks import ATTACKS, Attack
from visgrad.vision.fooling import FoolingResult, still_fools


@dataclass
class FoolingOptions:
    """``task=fooling``; the attack's own options are under ``task.<attack name>``."""

    attack: str = option("normalized_gradient", registered(ATTACKS), f"an attack: {ATTACKS.allowed}")
    images: str | list[str] | None = option(None, optional(image_spec), IMAGES_ALLOWED)
    num_images: int | None = option(100, optional(positive_int), "null (all) or a positive integer")
    num_show: int = option(4, positive_int, "a positive integer")
    targets: list[int | str] | int | str | None = option(
        ["stingray", "goldfinch", "school bus", "pizza"], optional(each(class_spec)),
        f"null (a random other class per input), or one or a non-empty list of targets: {CLASS_ALLOWED}")
    target: int | str | None = option(None, optional(class_spec), f"null (see targets), or {CLASS_ALLOWED}")


def target_classes(run: TaskRun) -> list[int] | None:
    """``task.target`` (one class) or else ``task.targets`` as indices; None = random targets."""
    opts = run.options
    if opts.target is not None:
        return [class_option(run.classifier, opts.target, "task.target")]
    if opts.targets is None:
        return None
    return [class_option(run.classifier, t, "task.targets") for t in as_list(opts.targets)]


def make_pairs(predicted: torch.Tensor, targets: list[int] | None, num_classes: int,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image index, target class) pairs, both (P,): every image with every target it is not already
    classified as; without targets one random other class per image (seeded)."""
    if targets is None:
        generator = torch.Generator().manual_seed(seed)
        offsets = torch.randint(1, num_classes, predicted.shape, generator=generator)
        return torch.arange(len(predicted)), (predicted + offsets) % num_classes
    images = torch.arange(len(predicted)).repeat_interleave(len(targets))
    classes = torch.tensor(targets).repeat(len(predicted))
    keep = predicted[images] != classes
    return images[keep], classes[keep]


def save_and_reload(foolings: torch.Tensor, names: list[str], folder: Path,
                    norm: Normalization) -> tuple[torch.Tensor, list[Path]]:
    """Write each fooling image (N, 3, H, W) as an 8-bit PNG into ``folder`` and read it back, normalised."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, reloaded = [], []
    for image, name in zip(foolings, names, strict=True):
        path = folder / f"{name}.png"
        save_image(norm.deprocess(image), path)
        reloaded.append(norm.normalize(TF.to_tensor(load_image(path))))
        paths.append(path)
    return torch.stack(reloaded).to(foolings.device), paths


def _median(values: torch.Tensor) -> float:
    return values.float().median().item() if values.numel() else float("nan")


def summarise(result: FoolingResult, survives: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Success rates (in memory, after the PNG round trip) and medians over the fooled pairs of steps,
    L-inf and L2 (0-255 units) for the pairs selected by ``mask`` (all if None)."""
    mask = torch.ones_like(result.success) if mask is None else mask
    fooled = result.success & mask
    return {
        "pairs": float(mask.sum()),
        "success_rate": result.success[mask].float().mean().item(),
        "success_rate_png": survives[mask].float().mean().item(),
        "median_iterations": _median(result.iterations[fooled]),
        "median_linf": _median(result.linf[fooled]),
        "median_l2": _median(result.l2[fooled]),
    }


@dataclass
class Prepared:
    """The attack, the inputs and the (image index, target class) pairs (P,) with their file names."""

    attack: Attack
    batch: InputBatch
    image_index: torch.Tensor
    classes: torch.Tensor
    names: list[str]


def prepare(run: TaskRun) -> Prepared:
    """Resolve the targets and the attack, load the inputs and pair them with the targets they are not
    already classified as (refused when there is no such pair)."""
    opts, classifier = run.options, run.classifier
    targets = target_classes(run)
    batch = load_images(run, opts.images, opts.num_images)
    image_index, classes = make_pairs(predict(classifier, batch.images), targets, len(classifier.class_names),
                                      run.seed)
    if not len(classes):
        key, value = ("target", opts.target) if opts.target is not None else ("targets", opts.targets)
        raise ConfigError(f"task.{key}={fmt(value)}: every input is already classified as the target; choose "
                          "another")
    name_of = classifier.class_names
    names = [f"{k:03d}_{slug(batch.names[i])}_to_{slug(name_of[c])}" for k, (i, c) in
             enumerate(zip(image_index.tolist(), classes.tolist(), strict=True))]
    return Prepared(ATTACKS.get(opts.attack), batch, image_index, classes, names)


def run(run: TaskRun, prepared: Prepared) -> dict[str, float]:
    """Fool the classifier on every pair; figure of ``task.num_show`` pairs.

    Returns the success rate in memory and after saving as PNG, and medians over the fooled pairs of
    steps, L-inf and L2 perturbation (pixel units, 0-255) and target probability; per target in a table.
    """
    opts, classifier, batch, attack = run.options, run.classifier, prepared.batch, prepared.attack
    model, norm, name = classifier.model, classifier.norm, classifier.class_names
    image_index = prepared.image_index
    images, classes = batch.images[image_index.to(run.device)], prepared.classes.to(run.device)
    began = time.perf_counter()
    with Progress(console=run.console, transient=True) as progress:
        bar = progress.add_task(f"fooling {len(classes)} image/target pairs", total=len(classes))

        def on_step(iteration: int, target_scores: torch.Tensor, fooled: torch.Tensor) -> None:
            run.writer.add_scalar("fooling/mean_target_score", target_scores.mean().item(), iteration)
            run.writer.add_scalar("fooling/fooled_fraction", fooled.float().mean().item(), iteration)
            progress.update(bar, completed=int(fooled.sum()))

        foolings, result = attack.fn(images, classes, classifier, on_step=on_step,
                                     **run.option_kwargs(attack))
    seconds = time.perf_counter() - began
    reloaded, paths = save_and_reload(foolings, prepared.names, run.output_dir / "fooling_images", norm)
    run.note("fooling images", f"{len(paths)} in {run.output_dir / 'fooling_images'}")
    run.note("attack", attack.label)
    survives = still_fools(reloaded, classes, model) & result.success
    result = FoolingResult(**{k: v.cpu() for k, v in vars(result).items()})
    survives, classes = survives.cpu(), classes.cpu()

    rows = {name[t]: summarise(result, survives, classes == t) for t in classes.unique().tolist()}
    if len(rows) > 1:
        rows["all"] = summarise(result, survives)
    heads = ["target", "pairs", "fooled", "fooled after PNG", "median steps", "median L-inf", "median L2"]
    cells = [[target, f"{row['pairs']:.0f}", f"{row['success_rate']:.0%}", f"{row['success_rate_png']:.0%}",
              f"{row['median_iterations']:.0f}", f"{row['median_linf']:.1f}", f"{row['median_l2']:.0f}"]
             for target, row in rows.items()]
    run.add_table("fooling per target (medians over fooled pairs; L-inf and L2 in 0-255 units)", heads, cells,
                  markdown="fooling_table")
    overall = summarise(result, survives)
    metrics = {f"fooling/{key if key != 'pairs' else 'num_pairs'}": value for key, value in overall.items()}
    metrics["fooling/median_target_prob"] = _median(result.target_prob)
    metrics["fooling/seconds"] = seconds
    if result.success.any():
        run.writer.add_histogram("fooling/linf", result.linf[result.success])

    show = _figure_pairs(image_index, classes, opts.num_show)
    original_titles = [f"{batch.names[image_index[i]]}: {name[int(result.original_class[i])]}" for i in show]
    fooling_titles = [
        (f"{name[int(result.final_class[i])]} (p={result.target_prob[i]:.2f})" if result.success[i] else
         f"{name[int(result.final_class[i])]}; target {name[int(classes[i])]} p={result.target_prob[i]:.2f}")
        + f"\nL-inf {result.linf[i]:.1f}/255, {int(result.iterations[i])} steps"
        + ("" if survives[i] or not result.success[i] else ", not after PNG")
        for i in show
    ]
    fig = fooling_figure(images[show].cpu(), foolings[show].cpu(), original_titles, fooling_titles, norm)
    run.add_figure(fig, "fooling")
    return metrics


def _figure_pairs(image_index: torch.Tensor, classes: torch.Tensor, count: int) -> list[int]:
    """Up to ``count`` pairs for the figure, one per image, the targets taken in turn."""
    targets = classes.unique().tolist()
    chosen: list[int] = []
    for image in image_index.unique().tolist():
        if len(chosen) == count:
            break
        options = (image_index == image).nonzero().squeeze(1).tolist()
        preferred = [i for i in options if int(classes[i]) == targets[len(chosen) % len(targets)]]
        chosen.append((preferred or options)[0])
    return chosen


TASK = Task("fooling", "fooling images", prepare, run, FoolingOptions, choices={"attack": ATTACKS})
