"""``python visualize.py task=class_viz task.target=NAME_OR_INDEX``: an image the classifier believes is
the target class, its progression strip, and the target score and probability per step in TensorBoard.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig
from rich.progress import Progress

from visgrad.images import to_uint8
from visgrad.tasks.figures import class_viz_figure
from visgrad.tasks.runner import start
from visgrad.vision.class_viz import class_probability, create_class_visualization


def run(cfg: DictConfig) -> dict[str, float]:
    """Synthesise a class visualization for ``task.target``; returns its initial and final target
    probability and final target score."""
    task = cfg.task
    run_ = start(cfg)
    classifier = run_.classifier
    target = classifier.class_index(task.target)
    class_name = classifier.class_names[target]
    with Progress(console=run_.console, transient=True) as progress:
        bar = progress.add_task(f"class visualization of {class_name!r}", total=task.num_iterations)
        result = create_class_visualization(
            target, classifier.model, l2_reg=task.l2_reg, learning_rate=task.learning_rate,
            num_iterations=task.num_iterations, blur_every=task.blur_every, max_jitter=task.max_jitter,
            show_every=task.show_every, blur_sigma=task.blur_sigma, image_size=classifier.image_size,
            seed=task.seed, device=run_.device, progress=lambda t: progress.update(bar, completed=t),
        )
    for step, (score, prob) in enumerate(zip(result.scores, result.probs, strict=True)):
        run_.writer.add_scalar("class_viz/target_score", score, step)
        run_.writer.add_scalar("class_viz/target_prob", prob, step)
    probs = [class_probability(image, target, classifier.model) for _, image in result.snapshots]
    for iteration, image in result.snapshots:  # TensorBoard's step slider shows the progression
        run_.writer.add_image("class_viz/image", to_uint8(image)[0], iteration, dataformats="HWC")
    slug = re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")
    run_.add_figure(class_viz_figure(result.snapshots, probs, class_name), f"class_viz_{target}_{slug}")
    metrics = {
        "class_viz/target": float(target),
        "class_viz/initial_prob": probs[0],
        "class_viz/final_prob": probs[-1],
        "class_viz/final_score": classifier.model(result.image)[0, target].item(),
    }
    return run_.finish(f"class visualization of {class_name!r}", metrics)
