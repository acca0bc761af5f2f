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
    limit: int = 8, ncols: int = 4, width: int = 34,
) -> plt.Figure:
    """A grid of the first ``limit`` images (M, H, W, 3) uint8, each titled with its generated captions
    (one line per strategy) and its first reference caption."""
    count = min(limit, len(images))
    if count == 0:
        raise ValueError("caption_grid needs at least one image")
    ncols = min(ncols, count)
    nrows = -(-count // ncols)
    lines_per_panel = len(generated) + 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, (2.6 + 0.32 * lines_per_panel) * nrows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:count]):
        ax.imshow(images[i])
        texts = [f"{name}: {captions[i]}" for name, captions in generated.items()]
        texts.append(f"ref: {references[i][0]}")
        ax.set_title("\n".join(textwrap.shorten(t, width=width, placeholder="...") for t in texts),
                     fontsize=7, loc="left")
    fig.tight_layout()
    return fig
