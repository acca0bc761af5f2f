"""The ``hard`` caption grammar of the `shapes` dataset (``ensure_shapes(..., grammar="hard")``).

The default grammar only ever names objects left to right, so a captioner can copy the feature slots in
order. The hard grammar keeps the same images (one to three shapes, centres >= S/8 apart horizontally,
so the extractor's three object slots still hold them left to right) but draws more three-object scenes
and more repeated objects (same kind and colour), and its captions need what the features carry beyond
the slot order: heights (centroid y), counts of identical objects, and word orders set by the content.

Heights are those of the objects' centres of mass (a triangle's lies a third of its half-size below its
centre). Two objects are *apart vertically* when their heights differ by at least S/8; scenes where two
heights differ by S/16 to S/8 are redrawn, as is a lone object within S/32 of the top/middle/bottom
bands' borders (S/3, 2S/3), so that every relation is clear in the image. With NP = "a <size> <colour>
<kind>", np = "a <colour> <kind>" and, for a pair, REL(X, Y) = "above and left of", "below and right of",
... or just "left of" / "right of" (horizontal first if level):

- 1 object: ``NP at the top|in the middle|at the bottom`` | ``there is NP`` | ``np`` | ``the image shows NP``
  | ``NP in the picture``
- 2-3 objects, left to right A, B(, C):
  ``A REL(A, B) B( REL(B, C) C)`` | ``C REL(C, B) B REL(B, A) A`` (right to left) |
  top to bottom, joined by ``above`` (apart vertically) or ``beside`` (level), ties left first |
  ``there is|are COUNTS`` | the first without sizes

COUNTS groups the objects by colour and kind, in order of each group's leftmost object: ``a red circle``,
``two red circles``, ``three red circles``, joined as "X", "X and Y", "X Y and Z" (e.g. "two red circles
and a blue square"); "there are" when the first group has more than one object. As with the default
grammar, a train image gets the first form plus 2-4 others at random, a val image all five (complete
references).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from visgrad.data.shapes_scene import COLOURS, KINDS, SIZES, Grammar, Shape, apart, random_shape
from visgrad.data.vocab import build_vocab

COUNT_WEIGHTS = (0.2, 0.35, 0.45)  # scenes of 1, 2, 3 objects
REPEAT_PROB = 0.4  # an object after the first copies the kind and colour of an earlier one
NUMBERS = {2: "two", 3: "three"}
WORDS = ("a two three there is are and left right of above below beside the image shows at top in middle "
         "bottom picture")


def height(shape: Shape) -> float:
    """y of the shape's centre of mass (pixels; a triangle's is half/3 below its centre)."""
    return shape.cy + (shape.half / 3 if KINDS[shape.kind] == "triangle" else 0.0)


def _clear(shapes: list[Shape], size: int) -> bool:
    """Whether every vertical relation of the scene is clear (see the module docstring)."""
    if len(shapes) == 1:
        return all(abs(height(shapes[0]) - border) >= size / 32 for border in (size / 3, 2 * size / 3))
    gaps = [abs(height(a) - height(b)) for i, a in enumerate(shapes) for b in shapes[i + 1 :]]
    return all(gap < size / 16 or gap >= size / 8 for gap in gaps)


def sample_scene(rng: np.random.Generator, size: int) -> list[Shape]:
    """One to three non-overlapping shapes (see the module docstring), sorted left to right."""
    count = int(rng.choice([1, 2, 3], p=COUNT_WEIGHTS))
    while True:
        shapes: list[Shape] = []
        for _ in range(count):
            new = random_shape(rng, size)
            if shapes and rng.random() < REPEAT_PROB:
                model = shapes[int(rng.integers(len(shapes)))]
                new = dataclasses.replace(new, kind=model.kind, colour=model.colour)
            if all(apart(old, new, size) for old in shapes):
                shapes.append(new)
        if len(shapes) == count and _clear(shapes, size):
            return sorted(shapes, key=lambda s: s.cx)


def relation(x: Shape, y: Shape, size: int) -> str:
    """Where ``x`` is relative to ``y``: "[above and |below and ]left of|right of"."""
    side = "left of" if x.cx < y.cx else "right of"
    dy = height(x) - height(y)
    if abs(dy) < size / 8:
        return side
    return f"{'above' if dy < 0 else 'below'} and {side}"


def counts(shapes: list[Shape]) -> tuple[str, int]:
    """COUNTS of the scene (objects left to right) and the size of its first group."""
    groups: dict[tuple[int, int], int] = {}
    for s in shapes:
        groups[s.colour, s.kind] = groups.get((s.colour, s.kind), 0) + 1
    parts = [
        f"a {COLOURS[c]} {KINDS[k]}" if n == 1 else f"{NUMBERS[n]} {COLOURS[c]} {KINDS[k]}s"
        for (c, k), n in groups.items()
    ]
    text = parts[0] if len(parts) == 1 else " ".join(parts[:-1]) + " and " + parts[-1]
    return text, next(iter(groups.values()))


def forms(shapes: list[Shape], size: int) -> list[str]:
    """The five captions of a scene (objects sorted left to right), in form order."""
    big = [s.phrase() for s in shapes]
    if len(shapes) == 1:
        y = height(shapes[0])
        where = "at the top" if y < size / 3 else "at the bottom" if y > 2 * size / 3 else "in the middle"
        return [f"{big[0]} {where}", f"there is {big[0]}", shapes[0].phrase(with_size=False),
                f"the image shows {big[0]}", f"{big[0]} in the picture"]

    def chain(order: list[int], names: list[str]) -> str:
        words = [names[order[0]]]
        for i, j in zip(order, order[1:], strict=False):
            words += [relation(shapes[i], shapes[j], size), names[j]]
        return " ".join(words)

    left_to_right = list(range(len(shapes)))
    by_height = sorted(left_to_right, key=lambda i: height(shapes[i]))
    row = {by_height[0]: 0}  # level objects (heights < S/16 apart, see _clear) share a row
    for i, j in zip(by_height, by_height[1:], strict=False):
        row[j] = row[i] + (abs(height(shapes[j]) - height(shapes[i])) >= size / 8)
    top_down = sorted(left_to_right, key=lambda i: (row[i], i))
    vertical = [big[top_down[0]]]
    for i, j in zip(top_down, top_down[1:], strict=False):
        vertical += ["beside" if row[i] == row[j] else "above", big[j]]
    counted, first = counts(shapes)
    return [
        chain(left_to_right, big),
        chain(left_to_right[::-1], big),
        " ".join(vertical),
        f"there {'are' if first > 1 else 'is'} {counted}",
        chain(left_to_right, [s.phrase(with_size=False) for s in shapes]),
    ]


def captions_for(
    shapes: list[Shape], rng: np.random.Generator, size: int, complete: bool = False
) -> list[str]:
    """3-5 of the scene's five forms (the first, then 2-4 random others), or all five if ``complete``;
    the random draw is made either way (as ``visgrad.data.shapes.captions_for``)."""
    all_forms = forms(shapes, size)
    extra = rng.choice(np.arange(1, len(all_forms)), size=int(rng.integers(2, 5)), replace=False)
    chosen = range(len(all_forms)) if complete else [0, *sorted(extra)]
    return [all_forms[i] for i in chosen]


def vocabulary() -> tuple[list[str], dict[str, int]]:
    """The hard grammar's full vocabulary (independent of the sampled data)."""
    words = [*KINDS, *(f"{k}s" for k in KINDS), *COLOURS, *SIZES, *WORDS.split()]
    return build_vocab([" ".join(words)])


GRAMMAR = Grammar("hard", "heights, counts, content-dependent order", sample_scene, captions_for, vocabulary)
