"""The figures of ``task=sanity_checks`` (:mod:`visgrad.tasks.sanity_checks`): Adebayo et al.'s cascade of
maps and the similarity curves."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from visgrad.tasks.figures import plt


def sanity_cascade_figure(image: np.ndarray, maps: dict[str, list[torch.Tensor]], columns: list[str],
                          title: str) -> Figure:
    """The paper's figure: the image (H, W, 3) uint8, then one row per method (``maps[label]``: (H, W) maps
    of the trained model and of each cascading step, ``columns`` their titles), each |map| shown up to its
    99th percentile."""
    rows, cols = len(maps), len(columns) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols + 0.6, 1.3 * rows + 0.6), squeeze=False)
    for row, (label, series) in enumerate(maps.items()):
        axes[row, 0].imshow(image)
        axes[row, 0].set_ylabel(label, fontsize=7)
        for col, values in enumerate(series, start=1):
            values = values.abs().numpy()
            axes[row, col].imshow(np.clip(values / max(np.percentile(values, 99), 1e-12), 0, 1), cmap="gray",
                                  vmin=0, vmax=1)
    axes[0, 0].set_title(title, fontsize=7)
    for col, name in enumerate(columns, start=1):
        axes[0, col].set_title(name, fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("cascading randomisation from the logits down: each column re-initialises more blocks",
                 fontsize=8)
    fig.tight_layout()
    return fig


def sanity_curves_figure(curves: dict[str, dict[str, dict[str, list[float]]]], steps: list[str],
                         labels: dict[str, str], threshold: float) -> Figure:
    """One panel per measure: the mean similarity to the trained model's maps (``curves[kind][method]
    [measure]``, one value per step) against the blocks randomised, cascading solid, independent dashed;
    the verdict's threshold dotted on the Spearman |map| panel."""
    fig, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3.4), squeeze=False)
    axes = axes[0]
    x = np.arange(1, len(steps) + 1)
    for ax, (measure, label) in zip(axes, labels.items(), strict=True):
        for kind, style in (("cascading", "-o"), ("independent", "--")):
            for color, (method, values) in enumerate(curves.get(kind, {}).items()):
                ax.plot(x, values[measure], style, color=f"C{color}", markersize=3,
                        label=method if kind == "cascading" else None)
        if measure == "spearman_abs":
            ax.axhline(threshold, color="k", linestyle=":", linewidth=1)
        ax.set_title(label, fontsize=9)
        ax.set_xticks(x, steps, rotation=60, ha="right", fontsize=6)
        ax.set_ylim(-0.3, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("similarity to the trained model's maps")
    axes[0].legend(fontsize=6, title="solid: cascading, dashed: independent", title_fontsize=6)
    fig.tight_layout()
    return fig
