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
