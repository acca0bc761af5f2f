"""``python visualize.py task=class_viz task.target=NAME_OR_INDEX [task.param=fourier|pixel]``: an image the
classifier believes is the target class, its progression strip, the final image, and how robust it is.

``task.param`` names a parameterisation of :data:`~visgrad.vision.parameterizations.PARAMETERIZATIONS`:
``fourier`` (default) is the feature-visualization recipe of Olah et al. 2017
(:mod:`visgrad.vision.feature_viz`), ``pixel`` is CS231n's gradient ascent on the pixels
(:func:`visgrad.vision.class_viz.create_class_visualization`); their options are under ``task.fourier`` /
``task.pixel``. TensorBoard gets the target score and probability per step, the snapshots on its step
slider and the crop probabilities; the summary gives the target probability of the final image and of 32
random crops/rescales of it (robustness), also in the run's ``metrics.json`` (so ``-m`` sweeps tabulate
them; ``scripts/class_viz_compare.py`` draws a sweep's images). The run's ``seed`` seeds the start image,
the transforms and the crops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from rich.progress import Progress

from visgrad.options import is_number, nested, option, pair_of, positive_int, registered
from visgrad.tasks.figures import class_viz_figure, save_image, slug
from visgrad.tasks.inputs import CLASS_ALLOWED, class_option, class_spec
from visgrad.tasks.lifecycle import Task, TaskRun
from visgrad.vision.class_viz import class_probability, crop_robustness
from visgrad.vision.parameterizations import PARAMETERIZATIONS, Parameterization


@dataclass
class RobustnessOptions:
    """``task.robustness``: random crops (area fraction in ``scale``, aspect 3/4-4/3) resized to the input."""

    num_crops: int = option(32, positive_int, "a positive integer")
    scale: list[float] = option([0.5, 1.0], pair_of(lambda v: is_number(v) and 0 < v <= 1),
                                "two area fractions [low, high] in (0, 1]")

    def problems(self) -> list[str]:
        low, high = self.scale
        return [] if low <= high else [f"scale=[{low}, {high}]: the low fraction is above the high one; "
                                       "give [low, high], e.g. [0.5,1.0]"]


@dataclass
class ClassVizOptions:
    """``task=class_viz``; the parameterisation's own options are under ``task.<param>``."""

    target: int | str = option(76, class_spec, f"{CLASS_ALLOWED} (ImageNet 76: tarantula)")
    param: str = option("fourier", registered(PARAMETERIZATIONS),
                        f"a class-visualization parameterisation: {PARAMETERIZATIONS.allowed}")
    num_iterations: int = option(128, positive_int, "a positive integer")
    show_every: int = option(32, positive_int, "a positive integer")
    robustness: RobustnessOptions = nested(RobustnessOptions)


@dataclass
class Prepared:
    """The target class (index and name) and the parameterisation."""

    target: int
    class_name: str
    param: Parameterization


def prepare(run: TaskRun) -> Prepared:
    """Resolve ``task.target`` against the classifier's classes and ``task.param``."""
    target = class_option(run.classifier, run.options.target, "task.target")
    return Prepared(target, run.classifier.class_names[target], PARAMETERIZATIONS.get(run.options.param))


def run(run: TaskRun, prepared: Prepared) -> dict[str, float]:
    """Synthesise the class visualization; returns the target probability of the start and final images,
    the final score, the crop robustness and the seconds taken."""
    opts, classifier, param = run.options, run.classifier, prepared.param
    target, class_name = prepared.target, prepared.class_name
    size = classifier.image_size

    def at_input_size(pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[-1] == size and pixels.shape[-2] == size:
            return pixels
        return F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    with Progress(console=run.console, transient=True) as progress:
        bar = progress.add_task(f"class visualization of {class_name!r} ({param.label})",
                                total=opts.num_iterations)
        start_time = time.perf_counter()
        result = param.fn(target, classifier, num_iterations=opts.num_iterations, show_every=opts.show_every,
                          seed=run.seed, device=run.device,
                          progress=lambda t: progress.update(bar, completed=t), **run.option_kwargs(param))
        seconds = time.perf_counter() - start_time
    for step, (score, prob) in enumerate(zip(result.scores, result.probs, strict=True)):
        run.writer.add_scalar("class_viz/target_score", score, step)
        run.writer.add_scalar("class_viz/target_prob", prob, step)
    model, normalize = classifier.model, classifier.norm.normalize
    probs = [class_probability(normalize(at_input_size(image)), target, model)
             for _, image in result.snapshots]
    for iteration, image in result.snapshots:  # TensorBoard's step slider shows the progression
        run.writer.add_image("class_viz/image", image[0].clamp(0, 1), iteration)
    robustness = crop_robustness(result.image, target, model, normalize, num_crops=opts.robustness.num_crops,
                                 scale=tuple(opts.robustness.scale), output_size=size, seed=run.seed)
    run.writer.add_histogram("class_viz/crop_probs", robustness.probs)

    name = f"class_viz_{target}_{slug(class_name)}_{param.name}"
    run.add_figure(class_viz_figure(result.snapshots, probs, class_name, param.label), name)
    final = run.output_dir / f"{name}_final.png"
    pixels = (result.image[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    save_image(Image.fromarray(pixels), final)
    run.add_file(final)
    run.note("target", f"{target} {class_name!r} ({param.label})")
    with torch.no_grad():
        final_score = model(normalize(at_input_size(result.image)))[0, target].item()
    return {
        "class_viz/target": float(target),
        "class_viz/initial_prob": probs[0],
        "class_viz/final_prob": probs[-1],
        "class_viz/final_score": final_score,
        "class_viz/crop_prob": robustness.mean_prob,
        "class_viz/crop_top1": robustness.top1,
        "class_viz/seconds": seconds,
    }


TASK = Task("class_viz", "class visualization", prepare, run, ClassVizOptions,
            choices={"param": PARAMETERIZATIONS})
