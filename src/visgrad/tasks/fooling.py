"""``python visualize.py task=fooling``: fooling images for many image/target pairs, with the success rate
and perturbation size, a figure of the first few and the attack's progress in TensorBoard.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from visgrad.errors import ConfigError
from visgrad.tasks.figures import fooling_figure
from visgrad.tasks.runner import start
from visgrad.vision.fooling import make_fooling_images


def run(cfg: DictConfig) -> dict[str, float]:
    """Fool the classifier on ``task.num_images`` inputs; figure of the first ``task.num_show``.

    Targets: ``task.target`` (index or name) for every image, or else a random class other than the
    predicted one (seeded). Images already predicted as their target are left out. Returns the success
    rate and medians of iterations, L-inf and L2 perturbation (pixel units, 0-255), target probability.
    """
    task = cfg.task
    run_ = start(cfg)
    batch = run_.inputs(task.num_images)
    model, num_classes = run_.classifier.model, len(run_.classifier.class_names)
    with torch.no_grad():
        predicted = model(batch.images).argmax(dim=1)
    if task.get("target") is not None:
        targets = torch.full_like(predicted, run_.classifier.class_index(task.target))
    else:
        generator = torch.Generator().manual_seed(cfg.seed)
        offsets = torch.randint(1, num_classes, predicted.shape, generator=generator).to(predicted.device)
        targets = (predicted + offsets) % num_classes
    keep = predicted != targets
    if not keep.any():
        raise ConfigError(f"every input is already classified as the target {task.target!r}; choose another")
    images, targets = batch.images[keep], targets[keep]
    names = [name for name, k in zip(batch.names, keep.tolist(), strict=True) if k]

    def on_step(iteration: int, target_scores: torch.Tensor, fooled: torch.Tensor) -> None:
        run_.writer.add_scalar("fooling/mean_target_score", target_scores.mean().item(), iteration)
        run_.writer.add_scalar("fooling/fooled_fraction", fooled.float().mean().item(), iteration)

    foolings, result = make_fooling_images(images, targets, model, task.learning_rate, task.max_iter,
                                           task.clamp, on_step, run_.classifier.norm)
    success = result.success.float()
    metrics = {
        "fooling/num_pairs": float(len(targets)),
        "fooling/success_rate": success.mean().item(),
        "fooling/median_iterations": result.iterations.float().median().item(),
        "fooling/median_linf": result.linf.median().item(),
        "fooling/median_l2": result.l2.median().item(),
        "fooling/median_target_prob": result.target_prob.median().item(),
    }

    show = slice(0, task.num_show)
    name = run_.class_name
    original_titles = [
        f"{n}: {name(int(c))}" for n, c in zip(names[show], result.original_class[show], strict=True)
    ]
    fooling_titles = [
        (f"{name(int(c))} (p={p:.2f})" if c == t else f"{name(int(c))}; target {name(int(t))} p={p:.2f}")
        + f"\nL-inf {li:.1f}/255, {int(it)} steps"
        for c, t, p, li, it in zip(result.final_class[show], targets[show], result.target_prob[show],
                                   result.linf[show], result.iterations[show], strict=True)
    ]
    fig = fooling_figure(images[show].cpu(), foolings[show].cpu(), original_titles, fooling_titles,
                         run_.classifier.norm)
    run_.add_figure(fig, "fooling")
    return run_.finish("fooling images", metrics)
