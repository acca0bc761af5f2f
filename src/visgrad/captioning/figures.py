"""Sample captions to look at: a Markdown table (TensorBoard text) and a figure of images with their
captions (matplotlib)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "(empty)"


def samples_markdown(
    references: Sequence[Sequence[str]], generated: Mapping[str, Sequence[str]], limit: int = 8
) -> str:
    """A Markdown table: per image (the first ``limit``), its first reference and each strategy's caption."""
    names = list(generated)
    lines = ["| # | reference | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for i in range(min(limit, len(references))):
        row = [str(i), _cell(references[i][0])] + [_cell(generated[name][i]) for name in names]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def caption_grid(
    images: np.ndarray, references: Sequence[Sequence[str]], generated: Mapping[str, Sequence[str]],
    limit: int = 8, width: int = 40, fontsize: float = 8.0,
) -> plt.Figure:
    """The first ``limit`` images (M, H, W, 3) uint8, one per row, each with its generated captions (one per
    strategy) and its first reference (grey) beside it, wrapped at ``width`` characters.

    Sized for TensorBoard's image cards (about 350-480 pixels wide): 3.6 inches wide at the default 100 dpi
    is 360 pixels, so a card shows the figure at about its own size and the 8-point text (11 pixels) stays
    readable without zooming (a grid of several images per row was scaled down to unreadable text).
    """
    count = min(limit, len(images))
    if count == 0:
        raise ValueError("caption_grid needs at least one image")
    rows = []
    for i in range(count):
        lines = [(textwrap.fill(f"{name}: {captions[i]}", width=width, subsequent_indent="  "), "black")
                 for name, captions in generated.items()]
        lines.append((textwrap.fill(f"reference: {references[i][0]}", width=width, subsequent_indent="  "),
                      "dimgray"))
        rows.append(lines)
    fig_width, thumb, pad = 3.6, 0.8, 0.08  # inches
    line = fontsize * 1.3 / 72
    heights = [max(thumb, line * sum(text.count("\n") + 1 for text, _ in lines)) + pad for lines in rows]
    fig_height = sum(heights) + pad
    fig = plt.figure(figsize=(fig_width, fig_height))
    top = fig_height - pad
    for image, lines, height in zip(images[:count], rows, heights, strict=False):
        box = (pad, top - thumb, thumb, thumb)  # left, bottom, width, height in inches
        ax = fig.add_axes((box[0] / fig_width, box[1] / fig_height, box[2] / fig_width, box[3] / fig_height))
        ax.imshow(image, interpolation="nearest")
        ax.axis("off")
        y = top
        for text, color in lines:
            fig.text((2 * pad + thumb) / fig_width, y / fig_height, text, va="top", ha="left",
                     fontsize=fontsize, color=color, linespacing=1.05)
            y -= line * (text.count("\n") + 1)
        top -= height
    return fig


def attention_figure(images: np.ndarray, captions: Sequence[str], maps: Sequence[np.ndarray],
                     limit: int = 4, max_words: int = 12, panel: float = 0.75) -> plt.Figure:
    """Show, Attend and Tell's figure: per image (the first ``limit`` of uint8 (M, S, S, 3)), the image and,
    for each word of its caption (up to ``max_words``), the attention of the step that emits it (``maps``: a
    list of (n_words, h, w), ``visgrad.captioning.grounding.attention_maps``) upsampled over the image."""
    count = min(limit, len(images))
    if count == 0:
        raise ValueError("attention_figure needs at least one image")
    columns = 1 + min(max_words, max(len(c.split()) for c in captions[:count]))
    fig, axes = plt.subplots(count, columns, figsize=(panel * columns, (panel + 0.2) * count), squeeze=False)
    for row, (image, caption, weights) in enumerate(zip(images[:count], captions, maps, strict=False)):
        size = image.shape[0]
        axes[row, 0].imshow(image, interpolation="nearest")
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if 1 <= col <= min(max_words, len(weights)):
                ax.imshow(image, interpolation="nearest")
                ax.imshow(weights[col - 1], cmap="gray", alpha=0.7, vmin=0, vmax=weights[col - 1].max(),
                          interpolation="bilinear", extent=(0, size, size, 0))
                ax.set_title(caption.split()[col - 1], fontsize=7, pad=2)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01, wspace=0.05, hspace=0.25)
    return fig
