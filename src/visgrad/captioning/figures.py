"""Sample captions to look at: a Markdown table (TensorBoard text) and an image grid (matplotlib)."""

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
    limit: int = 8, ncols: int = 4, width: int = 44,
) -> plt.Figure:
    """A grid of the first ``limit`` images (M, H, W, 3) uint8, each titled with its generated captions
    (one per strategy) and its first reference caption, wrapped at ``width`` characters."""
    count = min(limit, len(images))
    if count == 0:
        raise ValueError("caption_grid needs at least one image")
    titles = []
    for i in range(count):
        texts = [f"{name}: {captions[i]}" for name, captions in generated.items()]
        texts.append(f"reference: {references[i][0]}")
        titles.append("\n".join(textwrap.fill(t, width=width, subsequent_indent="    ") for t in texts))
    ncols = min(ncols, count)
    nrows = -(-count // ncols)
    side = 2.8  # inches per image
    text = 0.14 * max(title.count("\n") + 1 for title in titles) + 0.1  # inches of text under each image
    height = nrows * (side + text) + 0.1
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (side + 0.2), height), squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.05 / height, bottom=text / height,
                        hspace=text / side, wspace=0.07)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images[:count], titles, strict=False):
        ax.imshow(image, interpolation="nearest")
        ax.text(0, -0.02, title, transform=ax.transAxes, va="top", ha="left", fontsize=7)
    return fig
