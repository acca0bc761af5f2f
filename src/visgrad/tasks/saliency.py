"""``python visualize.py task=saliency``: saliency maps of the classifier's evidence by several methods
(vanilla, SmoothGrad, Integrated Gradients), as one figure, in TensorBoard and measured: the deletion and
insertion metrics of RISE for every method against a random pixel order and, when object masks are known
(`shapes`), the pointing game and the saliency mass inside the objects against a random map.
"""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig, ListConfig
from rich.progress import Progress

from visgrad.images import Normalization
from visgrad.tasks.figures import saliency_curves_figure, saliency_figure
from visgrad.tasks.runner import start
from visgrad.vision.saliency import mass_in_mask, pointing_game, saliency_maps
from visgrad.vision.saliency_metrics import deletion, insertion, random_saliency

LABELS = {"vanilla": "vanilla", "smoothgrad": "SmoothGrad", "integrated_gradients": "Integrated Gradients",
          "random": "random order"}


def chosen_methods(task: DictConfig) -> list[str]:
    """``task.methods`` (a list, or one name; ``tasks/options.py`` checks the names) as a list."""
    methods = task.methods
    return list(methods) if isinstance(methods, (list, tuple, ListConfig)) else [methods]


def method_kwargs(task: DictConfig, method: str, seed: int, norm: Normalization) -> dict:
    """Extra arguments of ``method`` from ``task.smoothgrad`` / ``task.integrated_gradients``."""
    if method == "smoothgrad":
        return {**task.smoothgrad, "generator": torch.Generator().manual_seed(seed)}
    if method == "integrated_gradients":
        return {**task.integrated_gradients, "norm": norm}
    return {}


def run(cfg: DictConfig) -> dict[str, float]:
    """Saliency maps by each of ``task.methods`` for ``task.num_images`` inputs; figure of ``task.num_show``.

    The class explained is ``task.target`` if set, else the true label (shapes) or the predicted class.
    Returns, per method, the deletion and insertion AUC (``task.metrics.steps`` points) with the random
    order's beside them, the pointing game and mass in mask when masks are known, the accuracy on labelled
    inputs and the seconds each method took.
    """
    task = cfg.task
    methods = chosen_methods(task)
    run_ = start(cfg)
    classifier = run_.classifier
    model, norm = classifier.model, classifier.norm
    batch = run_.inputs(task.num_images)
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(dim=1) for chunk in batch.images.split(64)]).cpu()
    if task.get("target") is not None:
        classes = torch.full_like(predicted, classifier.class_index(task.target))
    else:
        classes = batch.labels if batch.labels is not None else predicted
    y = classes.to(run_.device)

    metrics: dict[str, float] = {"saliency/num_images": float(len(batch))}
    if batch.labels is not None:
        metrics["saliency/accuracy"] = (predicted == batch.labels).float().mean().item()
    maps: dict[str, torch.Tensor] = {}
    curves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    steps = task.metrics.steps
    with Progress(console=run_.console, transient=True) as progress:
        bar = progress.add_task("saliency maps and deletion/insertion", total=2 * len(methods) + 1)
        for method in [*methods, "random"]:
            began = time.perf_counter()
            if method == "random":
                saliency = random_saliency(batch.images[:, 0], seed=cfg.seed)
            else:
                saliency = saliency_maps(batch.images, y, model, method,
                                         **method_kwargs(task, method, cfg.seed, norm))
                metrics[f"saliency/{method}/seconds"] = time.perf_counter() - began
                maps[method] = saliency.cpu()
                progress.advance(bar)
            opts = task.metrics
            removed = deletion(batch.images, y, model, saliency, steps, norm, opts.patch, opts.deletion_fill,
                               opts.blur)
            inserted = insertion(batch.images, y, model, saliency, steps, opts.blur, opts.patch)
            curves[method] = (removed.curves.cpu(), inserted.curves.cpu())
            metrics[f"saliency/{method}/deletion_auc"] = removed.auc.mean().item()
            metrics[f"saliency/{method}/insertion_auc"] = inserted.auc.mean().item()
            progress.advance(bar)
    if batch.masks is not None:
        masks = batch.masks.cpu()
        for method, saliency in maps.items():
            metrics[f"saliency/{method}/pointing_game"] = pointing_game(saliency, masks).float().mean().item()
            metrics[f"saliency/{method}/mass_in_mask"] = mass_in_mask(saliency, masks).mean().item()
        # a uniform-random map scores the object-area fraction in expectation on both
        metrics["saliency/random/pointing_game"] = masks.flatten(1).float().mean().item()

    show = slice(0, task.num_show)
    titles = [
        f"{name}\n{run_.class_name(int(c))}" + ("" if p == c else f"\n(pred {run_.class_name(int(p))})")
        for name, c, p in zip(batch.names[show], classes[show], predicted[show], strict=True)
    ]
    notes = {LABELS[m]: "deletion {:.2f}, insertion {:.2f}".format(
        metrics[f"saliency/{m}/deletion_auc"], metrics[f"saliency/{m}/insertion_auc"]) for m in methods}
    fig = saliency_figure(batch.images[show].cpu(), {LABELS[m]: maps[m][show] for m in methods}, titles,
                          None if batch.masks is None else batch.masks[show], norm, notes)
    run_.add_figure(fig, "saliency")
    run_.add_figure(saliency_curves_figure({LABELS[m]: c for m, c in curves.items()}), "saliency_curves")
    return run_.finish("saliency: deletion AUC (lower is better), insertion AUC (higher is better)", metrics)
