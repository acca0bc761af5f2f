"""The pixel optimisation that style transfer, texture synthesis and feature inversion share: a checked
:class:`Setup` (``visgrad.tasks.style_transfer.prepare``) is optimised coarse to fine by :func:`synthesize`,
with a progress bar, the loss terms and images logged to TensorBoard and snapshots kept for the figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.tensorboard import SummaryWriter

from visgrad.images import preprocess
from visgrad.models.feature_nets import FeatureNet
from visgrad.options import as_list
from visgrad.style.images import luminance
from visgrad.style.multiscale import ScaleInputs, optimize_multiscale
from visgrad.style.objective import StyleObjective, build_objective, optimize_image, pixel_bounds
from visgrad.tasks.figures import save_image_row


@dataclass
class Setup:
    """A checked run: the options, images (PIL), the feature network on the device, layers and weights per
    layer, scales and steps per scale."""

    options: Any  # StyleOptions (visgrad.tasks.style_transfer) or a specialisation
    name: str
    device: torch.device
    net: FeatureNet
    content_img: Image.Image | None
    style_imgs: list[Image.Image]
    style_specs: list[str]
    content_layers: list[int]
    style_layers: list[int]
    style_weights: list[float]
    scales: list[float]
    steps: list[int]


@dataclass
class Synthesis:
    """One optimised image: the result (1, 3, H, W), the last scale's objective and inputs, the start
    image, the last logged loss terms, snapshots and the wall time."""

    result: torch.Tensor
    objective: StyleObjective
    inputs: ScaleInputs
    start: torch.Tensor
    final: dict[str, float]
    snapshots: list[tuple[int, Image.Image]]
    seconds: float


def synthesize(setup: Setup, content_layer: int, writer: SummaryWriter, label: str) -> Synthesis:
    """Optimise one image coarse to fine with a progress bar, logging to ``writer`` (see module docstring)."""
    task, net, device = setup.options, setup.net, setup.device
    content_in = setup.content_img
    if content_in is not None and task.preserve_color == "luminance":
        content_in = luminance(content_in)
    uses_content = task.content_weight != 0 or task.init == "content"

    def inputs_at(scale: float) -> ScaleInputs:
        size, style_size = round(task.image_size * scale), round(task.style_size * scale)
        content = None if content_in is None else preprocess(
            content_in, size, net.norm, name=f"content={task.content}").to(device)
        styles = [preprocess(img, style_size, net.norm, name=f"style={spec}").to(device)
                  for img, spec in zip(setup.style_imgs, setup.style_specs, strict=False)]
        shape = tuple(content.shape[-2:]) if content is not None else (size, size)
        return ScaleInputs(content if uses_content else None, styles, shape)

    def build(inputs: ScaleInputs) -> StyleObjective:
        return build_objective(
            net.cnn, inputs.content if task.content_weight else None, inputs.styles, content_layer,
            task.content_weight, setup.style_layers, setup.style_weights, task.tv_weight,
            blend=as_list(task.style_blend) or None, normalize_weights=task.normalize_weights,
        )

    first = inputs_at(setup.scales[0])
    if task.init == "content":
        start = first.content.clone()
    else:  # uniform noise over the valid pixel range
        lo, hi = pixel_bounds(torch.zeros(1, device=device), net.norm)
        start = lo + (hi - lo) * torch.rand(1, 3, *first.shape, device=device)
    total = sum(setup.steps)
    count = max(task.num_snapshots, 1)
    snap_steps = {round(total * (i + 1) / count) for i in range(count)}
    snapshots = [(0, net.norm.deprocess(start))]
    final: dict[str, float] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[loss]}"))

    def optimize(img: torch.Tensor, objective: StyleObjective, steps: int, first_step: int) -> torch.Tensor:
        def log(step: int, x: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
            step += first_step
            done = step + 1
            if step % task.log_every == 0 or done == total:
                values = {k: v.item() for k, v in losses.items()}
                for key, value in values.items():
                    writer.add_scalar(f"{label}loss/{key}", value, step)
                final.update({f"loss/{k}": v for k, v in values.items()})
                progress.update(bar, loss=f"loss {values['total']:.4g}")
            if done % task.image_every == 0 or done == total:
                writer.add_image(f"{label}image", pixels(net, x), done)
            if done in snap_steps:
                snapshots.append((done, net.norm.deprocess(x)))
            progress.advance(bar)

        return optimize_image(img, objective, task.optimizer, steps, task.lr, task.decayed_lr,
                              task.decay_lr_at, callback=log, bounds=pixel_bounds(img, net.norm))

    start_time = time.perf_counter()
    with progress:
        bar = progress.add_task(f"{label or setup.name} ({task.optimizer})", total=total, loss="")
        result, objective, inputs = optimize_multiscale(
            start, setup.scales, setup.steps, lambda s: first if s == setup.scales[0] else inputs_at(s),
            build, optimize,
        )
    seconds = time.perf_counter() - start_time
    return Synthesis(result, objective, inputs, start, final, snapshots, seconds)


def pixels(net: FeatureNet, x: torch.Tensor) -> torch.Tensor:
    """Network input (1, 3, H, W) -> pixels (3, H, W) in [0, 1] on the CPU (for TensorBoard)."""
    return net.norm.unnormalize(x.detach()[0]).clamp(0, 1).float().cpu()


def save_strip(snapshots: list[tuple[int, Image.Image]], path: Path) -> None:
    """The images over the steps, side by side, titled by step."""
    save_image_row([(img, f"step {step}") for step, img in snapshots], path, panel_size=(2.4, 2.6))
