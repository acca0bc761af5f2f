"""The caption figure logged to TensorBoard: sized to be read in an image card without zooming."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from visgrad.captioning.figures import caption_grid


def test_caption_grid_is_a_card_wide_with_readable_text() -> None:
    images = np.zeros((5, 64, 64, 3), dtype=np.uint8)
    references = [["a small red circle above a large blue square"]] * 5
    generated = {"greedy": ["a red circle"] * 5, "beam-3 (a=0.7)": ["a small red circle above a square"] * 5}
    fig = caption_grid(images, references, generated, limit=4)
    try:
        assert fig.get_size_inches()[0] * fig.dpi == pytest.approx(360)  # TensorBoard's card: ~350-480 px
        assert len(fig.axes) == 4  # one row per image, up to limit
        texts = [t.get_text() for t in fig.texts]
        assert len(texts) == 4 * 3 and texts[:3] == [
            "greedy: a red circle", "beam-3 (a=0.7): a small red circle above\n  a square",
            "reference: a small red circle above a\n  large blue square"]
        assert {t.get_fontsize() for t in fig.texts} == {8.0}  # 11 px at 100 dpi
        fig.canvas.draw()  # every text ends inside the figure
        right = max(t.get_window_extent().x1 for t in fig.texts)
        assert right <= fig.get_size_inches()[0] * fig.dpi
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="at least one image"):
        caption_grid(images[:0], [], {})
