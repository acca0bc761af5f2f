"""``python visualize.py task=saliency``: saliency maps of the classifier's evidence, as a figure, in
TensorBoard and, when object masks are known (`shapes`), measured against a random baseline.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from visgrad.images import Normalization
from visgrad.tasks.figures import saliency_figure
from visgrad.tasks.runner import start
from visgrad.vision.saliency import mass_in_mask, pointing_game, saliency_maps


def method_kwargs(task: DictConfig, seed: int, norm: Normalization) -> dict:
    """Extra arguments of the chosen method from ``task.smoothgrad`` / ``task.integrated_gradients``."""
    if task.method == "smoothgrad":
        return {**task.smoothgrad, "generator": torch.Generator().manual_seed(seed)}
    if task.method == "integrated_gradients":
        return {**task.integrated_gradients, "norm": norm}
    return {}


def run(cfg: DictConfig) -> dict[str, float]:
    """Compute saliency maps for ``task.num_images`` inputs; figure of the first ``task.num_show``.

    The class explained is ``task.target`` if set, else the true label (shapes) or the predicted class.
    Returns accuracy on the inputs and, with masks, the pointing game and saliency mass inside the objects
    next to a uniform-random map's expected score for both (the mean object-area fraction).
    """
    task = cfg.task
    run_ = start(cfg)
    batch = run_.inputs(task.num_images)
    model = run_.classifier.model
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(dim=1) for chunk in batch.images.split(256)]).cpu()
    if task.get("target") is not None:
        classes = torch.full_like(predicted, run_.classifier.class_index(task.target))
    else:
        classes = batch.labels if batch.labels is not None else predicted
    saliency = saliency_maps(batch.images, classes.to(run_.device), model, task.method,
                             **method_kwargs(task, cfg.seed, run_.classifier.norm)).cpu()

    metrics: dict[str, float] = {"saliency/num_images": float(len(batch))}
    if batch.labels is not None:
        metrics["saliency/accuracy"] = (predicted == batch.labels).float().mean().item()
    if batch.masks is not None:
        masks = batch.masks.cpu()
        area = masks.flatten(1).float().mean(dim=1)
        metrics["saliency/pointing_game"] = pointing_game(saliency, masks).float().mean().item()
        metrics["saliency/mass_in_mask"] = mass_in_mask(saliency, masks).mean().item()
        metrics["saliency/random_baseline"] = area.mean().item()

    show = slice(0, task.num_show)
    titles = [
        f"{name}\n{run_.class_name(int(c))}" + ("" if p == c else f" (pred {run_.class_name(int(p))})")
        for name, c, p in zip(batch.names[show], classes[show], predicted[show], strict=True)
    ]
    fig = saliency_figure(batch.images[show].cpu(), saliency[show], titles,
                          None if batch.masks is None else batch.masks[show], task.method,
                          run_.classifier.norm)
    run_.add_figure(fig, f"saliency_{task.method}")
    return run_.finish(f"saliency ({task.method})", metrics)
