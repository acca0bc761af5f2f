"""Matplotlib figures (Agg) of the visualization tasks; each function returns a Figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from visgrad.images import IMAGENET, Normalization  # noqa: E402


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def saliency_figure(
    images: torch.Tensor,
    saliency: torch.Tensor,
    titles: list[str],
    masks: torch.Tensor | None = None,
    method: str = "vanilla",
    norm: Normalization = IMAGENET,
) -> Figure:
    """Images (N, 3, H, W) (normalised with ``norm``) over their saliency maps (N, H, W), and an overlay
    (object outline if masks)."""
    n = images.shape[0]
    pixels = norm.to_uint8(images).numpy()
    maps = saliency.detach().cpu().numpy()
    fig, axes = plt.subplots(3, n, figsize=(2.0 * n, 6.6), squeeze=False)
    for i in range(n):
        scaled = maps[i] / max(maps[i].max(), 1e-12)
        axes[0, i].imshow(pixels[i])
        axes[0, i].set_title(titles[i], fontsize=8)
        axes[1, i].imshow(scaled, cmap="hot", vmin=0, vmax=1)
        axes[2, i].imshow(pixels[i])
        axes[2, i].imshow(scaled, cmap="jet", alpha=np.clip(1.5 * scaled, 0, 0.8), vmin=0, vmax=1)
        if masks is not None:
            outline = masks[i].cpu().numpy().astype(float)
            axes[2, i].contour(outline, levels=[0.5], colors="white", linewidths=0.8)
        peak = np.unravel_index(maps[i].argmax(), maps[i].shape)
        axes[2, i].plot(peak[1], peak[0], "w+", markersize=8)
    for ax in axes.flat:
        ax.axis("off")
    axes[1, 0].text(-0.1, 0.5, f"saliency ({method})", transform=axes[1, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
    axes[2, 0].text(-0.1, 0.5, "overlay, + = peak", transform=axes[2, 0].transAxes, rotation=90,
                    va="center", ha="right", fontsize=9)
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
