"""``python visualize.py task=class_viz task.target=NAME_OR_INDEX [task.param=fourier|pixel]``: an image the
classifier believes is the target class, its progression strip, the final image, and how robust it is.

``task.param=fourier`` (default) is the feature-visualization recipe of Olah et al. 2017
(:mod:`visgrad.vision.feature_viz`); ``task.param=pixel`` is CS231n's gradient ascent on the pixels
(:func:`visgrad.vision.class_viz.create_class_visualization`). TensorBoard gets the target score and
probability per step, the snapshots on its step slider and the crop probabilities; the summary prints the
target probability of the final image and of 32 random crops/rescales of it (robustness), also in the
run's ``metrics.json`` (so ``-m`` sweeps tabulate them; ``scripts/class_viz_compare.py`` draws a sweep's
images).
"""

from __future__ import annotations

import re
import time

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from PIL import Image
from rich.progress import Progress

from visgrad.tasks.figures import class_viz_figure
from visgrad.tasks.runner import TaskRun, start
from visgrad.vision.class_viz import (
    ClassVisualization,
    class_probability,
    create_class_visualization,
    crop_robustness,
)
from visgrad.vision.feature_viz import fourier_class_visualization

METHODS = ("fourier", "pixel")


def _synthesise(run_: TaskRun, target: int, progress) -> ClassVisualization:
    """Run the method that ``task.param`` names; its images as pixels (1, 3, H, W) in [0, 1]."""
    task, classifier = run_.cfg.task, run_.classifier
    if task.param == "pixel":
        opts = task.pixel
        result = create_class_visualization(
            target, classifier.model, l2_reg=opts.l2_reg, learning_rate=opts.learning_rate,
            num_iterations=task.num_iterations, blur_every=opts.blur_every, max_jitter=opts.max_jitter,
            show_every=task.show_every, blur_sigma=opts.blur_sigma, image_size=classifier.image_size,
            seed=task.seed, device=run_.device, progress=progress, norm=classifier.norm,
        )
        result.image = classifier.norm.unnormalize(result.image).clamp(0, 1)
        result.snapshots = [(step, classifier.norm.unnormalize(image).clamp(0, 1))
                            for step, image in result.snapshots]
        return result
    opts = task.fourier
    return fourier_class_visualization(
        target, classifier.model, classifier.norm.normalize,
        image_size=opts.image_size or classifier.image_size,
        input_size=opts.input_size or classifier.image_size, num_iterations=task.num_iterations,
        learning_rate=opts.learning_rate,
        decay_power=opts.decay_power, decorrelate=opts.decorrelate, transforms=opts.transforms,
        show_every=task.show_every, seed=task.seed, device=run_.device, progress=progress,
    )


def run(cfg: DictConfig) -> dict[str, float]:
    """Synthesise a class visualization for ``task.target`` with ``task.param``; returns the target
    probability of the start and final images, the final score, the crop robustness and the seconds taken."""
    task = cfg.task
    if task.param not in METHODS:
        raise ValueError(f"task.param={task.param!r} is not a class-visualization method; use one of: "
                         f"{', '.join(METHODS)}")
    run_ = start(cfg)
    classifier = run_.classifier
    target = classifier.class_index(task.target)
    class_name = classifier.class_names[target]
    size = classifier.image_size

    def at_input_size(pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[-1] == size and pixels.shape[-2] == size:
            return pixels
        return F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    with Progress(console=run_.console, transient=True) as progress:
        bar = progress.add_task(f"class visualization of {class_name!r} ({task.param})",
                                total=task.num_iterations)
        start_time = time.perf_counter()
        result = _synthesise(run_, target, lambda t: progress.update(bar, completed=t))
        seconds = time.perf_counter() - start_time
    for step, (score, prob) in enumerate(zip(result.scores, result.probs, strict=True)):
        run_.writer.add_scalar("class_viz/target_score", score, step)
        run_.writer.add_scalar("class_viz/target_prob", prob, step)
    model, normalize = classifier.model, classifier.norm.normalize
    probs = [class_probability(normalize(at_input_size(image)), target, model)
             for _, image in result.snapshots]
    for iteration, image in result.snapshots:  # TensorBoard's step slider shows the progression
        run_.writer.add_image("class_viz/image", image[0].clamp(0, 1), iteration)
    robustness = crop_robustness(result.image, target, model, normalize, num_crops=task.robustness.num_crops,
                                 scale=tuple(task.robustness.scale), output_size=size, seed=task.seed)
    run_.writer.add_histogram("class_viz/crop_probs", robustness.probs)

    slug = re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")
    name = f"class_viz_{target}_{slug}_{task.param}"
    run_.add_figure(class_viz_figure(result.snapshots, probs, class_name, task.param), name)
    final = run_.output_dir / f"{name}_final.png"
    pixels = (result.image[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(pixels).save(final)
    run_.files.append(final)
    with torch.no_grad():
        final_score = model(normalize(at_input_size(result.image)))[0, target].item()
    metrics = {
        "class_viz/target": float(target),
        "class_viz/initial_prob": probs[0],
        "class_viz/final_prob": probs[-1],
        "class_viz/final_score": final_score,
        "class_viz/crop_prob": robustness.mean_prob,
        "class_viz/crop_top1": robustness.top1,
        "class_viz/seconds": seconds,
    }
    return run_.finish(f"class visualization of {class_name!r} ({task.param})", metrics)
