"""The grounding score: does the attention land on the object a word names?

For every generated word that names an object of a `shapes` scene (a colour or a kind), the attention of the
step that emits it (``net.attention``, (h, w) over the image) is compared with that object's mask:

- **mass**: the attention inside the mask, sum_l alpha_l * f_l with f_l the fraction of cell l's pixels
  inside the mask; uniform attention gives mean_l f_l, the mask's area fraction (``mass_uniform``);
- **pointing**: whether the peak cell (argmax of the attention) overlaps the mask (f > 0); a uniformly random
  peak does so with probability = the fraction of cells that overlap it (``pointing_uniform``).

Ground truth comes from the dataset, never from the model: the scene's objects (``EvalSet.objects``: kind,
colour, size, centre) and the image's pixels, an object's mask being the connected region of its palette
colour that holds its centre (``object_masks``).

**Matching words to objects.** A caption is read as noun phrases ``[a|two|three] [size] [colour] kind[s]``.
The kind word and the colour word just before it (if any) of a phrase name the objects of the scene with
that kind (and colour): "red circle above blue square" matches "red" and "circle" to the red circle and
"blue" and "square" to the blue square, and "two red circles" matches its words to the union of the red
circles' masks (the caption does not say which is which). A phrase that names no object of the scene (a
hallucination) is counted in ``unmatched`` and not scored; size words and relations are not scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from visgrad.data.shapes_features import colour_masks
from visgrad.data.shapes_scene import COLOURS, KINDS

KIND_WORDS = {**{k: i for i, k in enumerate(KINDS)}, **{f"{k}s": i for i, k in enumerate(KINDS)}}
COLOUR_WORDS = {c: i for i, c in enumerate(COLOURS)}
METRICS = ("mass", "mass_uniform", "pointing", "pointing_uniform", "words", "unmatched")


def object_masks(image: np.ndarray, objects: np.ndarray) -> list[np.ndarray]:
    """bool (S, S) masks of a scene's objects: image uint8 (S, S, 3), objects int (K, 5) rows (kind, colour,
    size, cx, cy) with -1 for no object. Each mask is the connected region of the object's colour that holds
    its centre (empty if the centre pixel does not have the colour)."""
    colours = colour_masks(image[None])[0]  # (5, S, S)
    masks = []
    for kind, colour, _, cx, cy in objects:
        if kind < 0:
            continue
        labels, _ = ndimage.label(colours[colour])
        centre = labels[int(cy), int(cx)]
        masks.append(labels == centre if centre > 0 else np.zeros(labels.shape, bool))
    return masks


def word_objects(words: Sequence[str], objects: np.ndarray) -> list[tuple[int, list[int] | None]]:
    """(position, object indices or None for no such object) of each word that names an object, in order
    (module docstring). ``objects`` int (K, 5) as for ``object_masks`` (indices count the real objects)."""
    real = [o for o in objects if o[0] >= 0]
    named = []
    for t, word in enumerate(words):
        if word not in KIND_WORDS:
            continue
        kind = KIND_WORDS[word]
        colour = COLOUR_WORDS.get(words[t - 1]) if t > 0 else None
        match = [i for i, o in enumerate(real) if o[0] == kind and (colour is None or o[1] == colour)]
        if colour is not None:
            named.append((t - 1, match or None))
        named.append((t, match or None))
    return named


def cell_fractions(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The fraction of each cell of a grid (h, w) inside a bool mask (S, S): float (h, w)."""
    m = torch.from_numpy(mask).float()[None, None]
    return torch.nn.functional.adaptive_avg_pool2d(m, grid)[0, 0].numpy()


@torch.no_grad()
def attention_maps(net, features: torch.Tensor, captions: Sequence[str], word_to_idx: dict[str, int],
                   batch_size: int = 256) -> list[np.ndarray]:
    """The attention of the step that emits each word of each caption: a list of float (n_words, h, w),
    one per caption of features (M, ...) (``net.attention`` teacher-forced on ``<START>`` + the caption)."""
    start, null = word_to_idx["<START>"], word_to_idx["<NULL>"]
    device, dtype = next(net.parameters()).device, next(net.parameters()).dtype
    split = [c.split() for c in captions]
    longest = max((len(w) for w in split), default=0)
    out = []
    for i in range(0, len(split), batch_size):
        chunk = split[i : i + batch_size]
        words = torch.full((len(chunk), max(longest, 1)), null, dtype=torch.long)
        words[:, 0] = start
        for row, caption in enumerate(chunk):
            ids = [word_to_idx[w] for w in caption[:-1]]
            words[row, 1 : 1 + len(ids)] = torch.tensor(ids, dtype=torch.long)
        batch = features[i : i + batch_size].to(device, dtype)
        weights = net.attention(batch, words.to(device)).float().cpu()
        out += [weights[row, : len(caption)].numpy() for row, caption in enumerate(chunk)]
    return out


def grounding_scores(maps: Sequence[np.ndarray], captions: Sequence[str], images: np.ndarray,
                     objects: np.ndarray) -> dict[str, float]:
    """The grounding metrics (``METRICS``) of captions with their per-word attention ``maps`` (a list of
    (n_words, h, w)) over scenes ``images`` uint8 (M, S, S, 3) with ``objects`` int (M, K, 5): mean mass and
    pointing over the matched words and their uniform baselines, the number of matched words, and the
    fraction of object words that named no object of the scene. NaN means when no word matched."""
    mass, mass_u, point, point_u, unmatched, total = [], [], [], [], 0, 0
    for weights, caption, image, scene in zip(maps, captions, images, objects, strict=True):
        named = word_objects(caption.split(), scene)
        if not named:
            continue
        masks = object_masks(image, scene)
        cells = {}
        for t, match in named:
            total += 1
            if match is None:
                unmatched += 1
                continue
            key = tuple(match)
            if key not in cells:
                union = np.logical_or.reduce([masks[i] for i in match])
                cells[key] = cell_fractions(union, weights.shape[1:])
            fractions, alpha = cells[key], weights[t]
            mass.append(float((alpha * fractions).sum()))
            mass_u.append(float(fractions.mean()))
            point.append(bool(fractions.flat[int(alpha.argmax())] > 0))
            point_u.append(float((fractions > 0).mean()))
    mean = (lambda v: float(np.mean(v)) if v else float("nan"))
    return {"mass": mean(mass), "mass_uniform": mean(mass_u), "pointing": mean(point),
            "pointing_uniform": mean(point_u), "words": float(len(mass)),
            "unmatched": unmatched / total if total else float("nan")}


def grounding(net, eval_set, captions: Sequence[str]) -> dict[str, float] | None:
    """The grounding metrics of a network's captions of an eval set, or None when it cannot be scored (the
    network has no ``attention`` or the set has no images and objects)."""
    if not hasattr(net, "attention") or eval_set.images is None or getattr(eval_set, "objects", None) is None:
        return None
    maps = attention_maps(net, eval_set.features, captions, eval_set.word_to_idx)
    return grounding_scores(maps, captions, eval_set.images, eval_set.objects)
