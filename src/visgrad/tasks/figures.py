"""Matplotlib figures (Agg) of the visualization tasks (each function returns a Figure), and how they and
the other outputs are named and saved.

Every output file is written through :func:`visgrad.utils.checkpoint_io.atomic_open` (``save_figure``,
``save_image``, ``save_text``): it appears whole or not at all, so a full disk leaves no 0-byte or cut PNG,
and is reported as a ``DiskFullError`` naming the file in the run folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from visgrad.images import IMAGENET, Normalization  # noqa: E402
from visgrad.utils.checkpoint_io import atomic_open  # noqa: E402


def slug(text: str) -> str:
    """``text`` as a file-name part: lower case, runs of other characters as ``_`` (``"school bus"`` ->
    ``school_bus``)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def save_figure(fig: Figure, path: Path, **savefig_kwargs) -> Path:
    """Write ``fig`` as a PNG (whole or not at all) and close it; ``savefig_kwargs`` replace the defaults
    (``dpi=100, bbox_inches="tight"``)."""
    try:
        with atomic_open(Path(path), "wb") as file:
            fig.savefig(file, format="png", **{"dpi": 100, "bbox_inches": "tight", **savefig_kwargs})
    finally:
        plt.close(fig)
    return path


def save_image(image: Image.Image, path: Path) -> Path:
    """Write a PIL image as a PNG, whole or not at all."""
    with atomic_open(Path(path), "wb") as file:
        image.save(file, format="PNG")
    return path


def save_text(text: str, path: Path) -> Path:
    """Write a text file (UTF-8), whole or not at all."""
    with atomic_open(Path(path), "w") as file:
        file.write(text)
    return path


def save_image_row(panels: list[tuple[Image.Image, str]], path: Path, panel_size: tuple[float, float],
                   fontsize: float = 9, title: str | None = None, dpi: int = 110) -> None:
    """Save titled images side by side, each ``panel_size`` inches (width, height), as a PNG."""
    fig = Figure(figsize=(panel_size[0] * len(panels), panel_size[1]))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (img, panel_title) in zip(axes[0], panels, strict=True):
        ax.imshow(img)
        ax.set_title(panel_title, fontsize=fontsize)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=dpi, bbox_inches=None)


def display_scale(values: np.ndarray) -> np.ndarray:
    """A map (H, W) in [0, 1] for display: from its floor (0, or its 1st percentile when that is positive,
    as for RISE, whose map is the expected score with the pixel kept and never near 0) to its 99th
    percentile (as SmoothGrad's figures, so a few extreme pixels do not leave the rest of the map black),
    clipped."""
    floor = max(float(np.percentile(values, 1)), 0.0)
    return np.clip((values - floor) / max(float(np.percentile(values, 99)) - floor, 1e-12), 0, 1)


def saliency_figure(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    titles: list[str],
    masks: torch.Tensor | None = None,
    norm: Normalization = IMAGENET,
    notes: dict[str, str] | None = None,
) -> Figure:
    """Images (N, 3, H, W) (normalised with ``norm``) over one row per saliency method: the map (N, H, W)
    laid over the image (scaled by :func:`display_scale`), its peak marked + and, with masks (N, H, W), the
    object outlined.

    ``maps`` and ``notes`` (one line under each row label, e.g. its scores) are keyed by the row label.
    """
    n, rows = images.shape[0], 1 + len(maps)
    pixels = norm.to_uint8(images).numpy()
    fig, axes = plt.subplots(rows, n, figsize=(1.9 * n + 0.4, 2.0 * rows + 0.3), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(pixels[i])
        axes[0, i].set_title(titles[i], fontsize=8)
        for row, saliency in enumerate(maps.values(), start=1):
            values = saliency[i].detach().cpu().numpy()
            scaled = display_scale(values)
            ax = axes[row, i]
            ax.imshow(pixels[i], alpha=0.35)
            ax.imshow(scaled, cmap="hot", alpha=np.clip(0.25 + scaled, 0, 1), vmin=0, vmax=1)
            if masks is not None:
                ax.contour(masks[i].cpu().numpy().astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
            peak = np.unravel_index(values.argmax(), values.shape)
            ax.plot(peak[1], peak[0], "c+", markersize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for row, label in enumerate(maps, start=1):
        note = (notes or {}).get(label)
        axes[row, 0].set_ylabel(label + (f"\n{note}" if note else ""), fontsize=8)
    fig.tight_layout()
    return fig


def saliency_curves_figure(curves: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Figure:
    """Mean deletion and insertion curves (RISE) per method: ``curves[label] = (deletion (N, K + 1),
    insertion (N, K + 1))`` class probabilities at pixel fractions 0, 1/K, ..., 1; AUCs in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, pair in curves.items():
        for ax, values in zip(axes, pair, strict=True):
            mean = values.mean(dim=0).numpy()
            fraction = np.linspace(0, 1, len(mean))
            area = float(((mean[1:] + mean[:-1]) / 2).mean())
            ax.plot(fraction, mean, "--" if label == "random order" else "-", label=f"{label} ({area:.3f})")
    titles = ("deletion: most salient pixels removed first (lower is better)",
              "insertion: most salient pixels restored first (higher is better)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("fraction of pixels")
        ax.set_ylabel("probability of the class")
        ax.legend(fontsize=7, title="mean curve (AUC)", title_fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fooling_figure(originals: torch.Tensor, foolings: torch.Tensor, original_titles: list[str],
                   fooling_titles: list[str], norm: Normalization = IMAGENET) -> Figure:
    """Per row: original, fooling image, difference, and 10x the difference (CS231n's layout); the images
    (N, 3, H, W) are normalised with ``norm``, the differences are shown around the mean colour."""
    n = originals.shape[0]
    fig, axes = plt.subplots(n, 4, figsize=(9.2, 2.5 * n), squeeze=False)
    for i in range(n):
        diff = foolings[i : i + 1] - originals[i : i + 1]
        panels = [norm.deprocess(originals[i]), norm.deprocess(foolings[i]), norm.deprocess(diff),
                  norm.deprocess(10 * diff)]
        titles = [original_titles[i], fooling_titles[i], "difference", "difference x10"]
        for ax, panel, title in zip(axes[i], panels, titles, strict=True):
            ax.imshow(np.asarray(panel))
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig


def _hwc(pixels: torch.Tensor) -> np.ndarray:
    """Pixels in [0, 1], (1, 3, H, W) or (3, H, W) -> an (H, W, 3) array for imshow."""
    image = pixels.detach().float().cpu().reshape(-1, *pixels.shape[-3:])[0]
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def class_viz_figure(
    snapshots: list[tuple[int, torch.Tensor]], probs: list[float], class_name: str, method: str = ""
) -> Figure:
    """The progression strip of pixel snapshots ``[(iteration, (1, 3, H, W) in [0, 1])]``: one panel per
    snapshot, titled with the iteration and target probability (``method`` names the parameterisation)."""
    n = len(snapshots)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.6), squeeze=False)
    for ax, (iteration, image), prob in zip(axes[0], snapshots, probs, strict=True):
        ax.imshow(_hwc(image))
        label = f"{method}, iteration {iteration}" if method else f"iteration {iteration}"
        ax.set_title(f"{label}\np({class_name}) = {prob:.2f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def class_viz_grid_figure(images: list[list[torch.Tensor]], row_labels: list[str],
                          titles: list[list[str]]) -> Figure:
    """Class visualizations side by side: ``images[r][c]`` pixels (1, 3, H, W) in [0, 1], one row per
    method (``row_labels``), one column per class, each panel titled ``titles[r][c]``."""
    rows, cols = len(images), len(images[0])
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.5 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            axes[r, c].imshow(_hwc(images[r][c]))
            axes[r, c].set_title(titles[r][c], fontsize=8)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    fig.tight_layout()
    return fig
