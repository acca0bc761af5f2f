"""What every caption grammar of the `shapes` dataset shares: the objects of a scene, and the grammar entry.

A scene is a list of :class:`Shape` (kind, colour, size class, centre, half-size in pixels), sorted left
to right. A caption grammar (:class:`Grammar`) samples scenes and words them; ``visgrad.data.shapes.GRAMMARS``
registers visgrad's (``default``, ``hard``), and ``data.shapes.grammar`` (``ensure_shapes(grammar=...)``)
also takes the dotted path of a ``Grammar`` in your own package. The generator draws every scene, image
and caption from one seeded random stream in image order: ``sample_scene``, then the rendering, then
``captions_for`` (which must consume the stream the same way whether or not ``complete`` is set, so that
train and val scenes do not depend on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KINDS = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
HALF_SIZES = ((5.0, 6.0), (10.0, 11.0))  # per size, for a 64-pixel image


@dataclass(frozen=True)
class Shape:
    kind: int
    colour: int
    size: int
    cx: float
    cy: float
    half: float  # half-size in pixels

    def phrase(self, with_size: bool = True) -> str:
        size = f"{SIZES[self.size]} " if with_size else ""
        return f"a {size}{COLOURS[self.colour]} {KINDS[self.kind]}"


@dataclass(frozen=True)
class Grammar:
    """A caption grammar of the `shapes` dataset.

    name, label: registry name and display name.
    sample_scene: ``(rng, size) -> list[Shape]`` one scene in an image of side ``size``, left to right.
    captions_for: ``(shapes, rng, size, complete) -> list[str]`` the scene's captions: all its forms if
        ``complete`` (val images), else a random selection (train images).
    vocabulary: ``() -> (idx_to_word, word_to_idx)`` every word the grammar can write.
    """

    name: str
    label: str
    sample_scene: Callable[[np.random.Generator, int], list[Shape]]
    captions_for: Callable[[list[Shape], np.random.Generator, int, bool], list[str]]
    vocabulary: Callable[[], tuple[list[str], dict[str, int]]]


def random_shape(rng: np.random.Generator, size: int) -> Shape:
    """One shape anywhere inside an image of side ``size``: size class, half-size, centre, kind, colour
    drawn from ``rng`` in that order."""
    size_idx = int(rng.integers(len(SIZES)))
    half = float(rng.choice(HALF_SIZES[size_idx])) * size / 64
    cx, cy = rng.uniform(half + 1, size - half - 1, size=2)
    return Shape(int(rng.integers(len(KINDS))), int(rng.integers(len(COLOURS))), size_idx, cx, cy, half)


def apart(a: Shape, b: Shape, size: int) -> bool:
    """Whether two shapes may share an image: centres >= size/8 apart in x, and no overlap (with a margin)."""
    gap = a.half + b.half + 2 * size / 64
    return abs(a.cx - b.cx) >= size / 8 and (abs(a.cx - b.cx) >= gap or abs(a.cy - b.cy) >= gap)
