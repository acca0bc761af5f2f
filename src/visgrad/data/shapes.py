"""`shapes`: a synthetic image-captioning dataset, generated deterministically in the CS231n COCO format.

Each image (S x S RGB, default 64) shows one to three non-overlapping shapes (circle, square, triangle,
diamond) in one of five colours (red, green, blue, yellow, purple) and two sizes (small, large), at random
positions on a light, plain or softly striped background. Objects are listed left to right (their centres
are at least S/8 apart horizontally) and each image gets captions from a small grammar, with
NP = "a <size> <colour> <kind>":

- 1 object: ``NP`` | ``there is NP`` | ``a <colour> <kind>`` | ``the image shows NP`` | ``NP in the picture``
- 2 objects: ``NP1 left of NP2`` | ``NP2 right of NP1`` | ``there is NP1 and NP2`` | ``NP1 and NP2`` |
  the first without sizes
- 3 objects: ``NP1 left of NP2 left of NP3`` | ``NP3 right of NP2 right of NP1`` | ``there is NP1 NP2 and
  NP3`` | ``NP1 NP2 and NP3`` | the first without sizes

A train image gets the first form plus 2-4 others drawn at random (3-5 captions, varied training
targets); a val image gets all five forms, in template order, so its references are complete: every
caption the grammar allows counts as correct when scoring decoders (BLEU, CIDEr). Features come from a
fixed extractor (``visgrad.data.shapes_features``). Besides the COCO files, ``shapes_images.h5`` holds the
images, object masks, labels (kind of the largest object) and object annotations, the images are also PNGs
under ``images/<split>/`` (listed in ``*_urls.txt``), and ``preview.png`` shows a few of them with captions.

CLI: ``python -m visgrad.data.shapes --root data/shapes`` generates (if needed) and prints statistics.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
from PIL import Image

from visgrad.data.coco import (
    CAPTIONS_FILE,
    SPLITS,
    VOCAB_FILE,
    features_file,
    urls_file,
    write_coco_folder,
    write_h5,
)
from visgrad.data.shapes_features import PALETTE, Pca, extract_features
from visgrad.data.vocab import build_vocab, encode_captions

FORMAT_VERSION = 3  # 3: val images carry every caption form of the grammar
KINDS = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
HALF_SIZES = ((5.0, 6.0), (10.0, 11.0))  # per size, for a 64-pixel image
PCA_DIM = 512
MANIFEST = "manifest.json"
IMAGES_FILE = "shapes_images.h5"
PREVIEW_FILE = "preview.png"
OBJECT_FIELDS = ("kind", "colour", "size", "cx", "cy")
TEMPLATES = {
    1: ("{A}", "there is {A}", "{a}", "the image shows {A}", "{A} in the picture"),
    2: ("{A} left of {B}", "{B} right of {A}", "there is {A} and {B}", "{A} and {B}", "{a} left of {b}"),
    3: (
        "{A} left of {B} left of {C}",
        "{C} right of {B} right of {A}",
        "there is {A} {B} and {C}",
        "{A} {B} and {C}",
        "{a} left of {b} left of {c}",
    ),
}


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


class ShapesImages(NamedTuple):
    """Images of one split: ``images`` uint8 (N, S, S, 3), ``masks`` bool (N, S, S) (pixels of any object),
    ``labels`` int64 (N,) (kind of the largest object), ``label_names`` (the kinds)."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    label_names: list[str]


def sample_scene(rng: np.random.Generator, size: int) -> list[Shape]:
    """One to three non-overlapping shapes, sorted left to right, with centres >= size/8 apart in x."""
    scale = size / 64
    count = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    while True:
        shapes: list[Shape] = []
        for _ in range(count):
            size_idx = int(rng.integers(len(SIZES)))
            half = float(rng.choice(HALF_SIZES[size_idx])) * scale
            cx, cy = rng.uniform(half + 1, size - half - 1, size=2)
            new = Shape(
                int(rng.integers(len(KINDS))), int(rng.integers(len(COLOURS))), size_idx, cx, cy, half
            )
            if all(_apart(old, new, size) for old in shapes):
                shapes.append(new)
        if len(shapes) == count:
            return sorted(shapes, key=lambda s: s.cx)


def _apart(a: Shape, b: Shape, size: int) -> bool:
    gap = a.half + b.half + 2 * size / 64
    return abs(a.cx - b.cx) >= size / 8 and (abs(a.cx - b.cx) >= gap or abs(a.cy - b.cy) >= gap)


@functools.lru_cache(maxsize=4)
def _pixel_centres(size: int) -> np.ndarray:
    """float (2, S, S): y and x of every pixel's centre."""
    return np.mgrid[0:size, 0:size] + 0.5


def shape_mask(shape: Shape, size: int) -> np.ndarray:
    """bool (size, size): the pixels (centres) inside the shape."""
    yy, xx = _pixel_centres(size)
    dx, dy, r = xx - shape.cx, yy - shape.cy, shape.half
    kind = KINDS[shape.kind]
    if kind == "circle":
        return dx**2 + dy**2 <= r**2
    if kind == "square":
        return np.maximum(abs(dx), abs(dy)) <= 0.85 * r
    if kind == "diamond":
        return abs(dx) + abs(dy) <= r
    return (abs(dx) <= (dy + r) / 2) & (dy <= r)  # triangle, apex up


def render(shapes: list[Shape], rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw a scene: uint8 image (S, S, 3), bool mask of all objects (S, S), kind of the largest object."""
    base = rng.integers(200, 240) + rng.integers(-10, 11, size=3)
    image = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    if rng.random() < 0.5:  # soft stripes
        yy, xx = _pixel_centres(size)
        angle, period = rng.uniform(0, np.pi), rng.uniform(8, 20) * size / 64
        image += 6 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)[..., None]
    mask = np.zeros((size, size), bool)
    areas = []
    for shape in shapes:
        inside = shape_mask(shape, size)
        image[inside] = PALETTE[shape.colour]
        mask |= inside
        areas.append(inside.sum())
    image += rng.normal(0, 3, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, shapes[int(np.argmax(areas))].kind


def captions_for(shapes: list[Shape], rng: np.random.Generator, complete: bool = False) -> list[str]:
    """Captions of a scene (objects sorted left to right), in template order: all forms if ``complete``,
    else 3-5 of them (the first, then 2-4 random others).

    The random draw is made either way, so both settings consume ``rng`` alike and the scenes that follow
    (images, features) do not depend on ``complete``.
    """
    forms = TEMPLATES[len(shapes)]
    names = dict(zip("ABC", (s.phrase() for s in shapes), strict=False))
    names |= dict(zip("abc", (s.phrase(with_size=False) for s in shapes), strict=False))
    extra = rng.choice(np.arange(1, len(forms)), size=int(rng.integers(2, 5)), replace=False)
    chosen = range(len(forms)) if complete else [0, *sorted(extra)]
    return [forms[i].format(**names) for i in chosen]


def vocabulary() -> tuple[list[str], dict[str, int]]:
    """The grammar's full vocabulary (independent of the sampled data)."""
    words = [*KINDS, *COLOURS, *SIZES, "a"]
    for forms in TEMPLATES.values():
        words += [w for form in forms for w in form.split() if not w.startswith("{")]
    return build_vocab([" ".join(words)])


def _generate_split(rng: np.random.Generator, num: int, size: int, complete_captions: bool) -> dict:
    images = np.zeros((num, size, size, 3), np.uint8)
    masks = np.zeros((num, size, size), bool)
    labels = np.zeros(num, np.int64)
    objects = np.full((num, 3, len(OBJECT_FIELDS)), -1, np.int16)
    captions, image_idxs = [], []
    for i in range(num):
        shapes = sample_scene(rng, size)
        images[i], masks[i], labels[i] = render(shapes, rng, size)
        objects[i, : len(shapes)] = [(s.kind, s.colour, s.size, round(s.cx), round(s.cy)) for s in shapes]
        for caption in captions_for(shapes, rng, complete=complete_captions):
            captions.append(caption)
            image_idxs.append(i)
    return dict(
        images=images,
        masks=masks,
        labels=labels,
        objects=objects,
        captions=captions,
        image_idxs=np.asarray(image_idxs, np.int32),
    )


def _generate(root: Path, num_train: int, num_val: int, seed: int, image_size: int) -> dict:
    """Write the whole dataset into the (empty) folder ``root``; returns the manifest, written last."""
    from rich.progress import Progress

    rng = np.random.default_rng(seed)
    idx_to_word, word_to_idx = vocabulary()
    data = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("shapes: rendering", total=5)
        for split, num in zip(SPLITS, (num_train, num_val), strict=True):
            data[split] = _generate_split(rng, num, image_size, complete_captions=split == "val")
            progress.advance(task)
        progress.update(task, description="shapes: features")
        for split in SPLITS:
            data[split]["features"] = extract_features(data[split]["images"])
        pca = Pca.fit(data["train"]["features"], min(PCA_DIM, *data["train"]["features"].shape))
        progress.advance(task)
        progress.update(task, description="shapes: writing")
        length = max(len(c.split()) for split in SPLITS for c in data[split]["captions"]) + 2
        for split in SPLITS:
            d = data[split]
            d["features_pca"] = pca(d["features"])
            d["captions"] = encode_captions(d["captions"], word_to_idx, length)
            d["urls"] = [f"images/{split}/{i:06d}.png" for i in range(len(d["images"]))]
            (root / "images" / split).mkdir(parents=True)
            for url, image in zip(d["urls"], d["images"], strict=True):
                Image.fromarray(image).save(root / url, compress_level=1)
        write_coco_folder(root, data, idx_to_word, word_to_idx)
        write_h5(
            root / IMAGES_FILE,
            {f"{s}_{k}": data[s][k] for s in SPLITS for k in ("images", "masks", "labels", "objects")},
            attrs={
                "label_names": json.dumps(list(KINDS)),
                "object_fields": json.dumps(OBJECT_FIELDS),
                "colour_names": json.dumps(list(COLOURS)),
                "size_names": json.dumps(list(SIZES)),
            },
        )
        progress.advance(task)
        progress.update(task, description="shapes: preview")
        save_preview(
            root / PREVIEW_FILE,
            data["val"]["images"],
            data["val"]["captions"],
            data["val"]["image_idxs"],
            idx_to_word,
        )
        progress.advance(task)
    manifest = _manifest(num_train, num_val, seed, image_size)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def save_preview(
    path: Path,
    images: np.ndarray,
    captions: np.ndarray,
    image_idxs: np.ndarray,
    idx_to_word: list[str],
    count: int = 12,
) -> None:
    """A PNG grid of the first ``count`` images, each with its captions below (matplotlib, no pyplot)."""
    from matplotlib.figure import Figure

    from visgrad.data.vocab import decode_captions

    count = min(count, len(images))
    cols = min(4, count)
    rows = -(-count // cols)
    fig = Figure(figsize=(3.6 * cols, 4.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            ax.imshow(images[i], interpolation="nearest")
            lines = [
                textwrap.fill(c, 52, subsequent_indent="   ")
                for c in decode_captions(captions[image_idxs == i], idx_to_word)
            ]
            ax.text(0, -0.03, "\n".join(lines), transform=ax.transAxes, fontsize=7, va="top")
    fig.subplots_adjust(left=0.02, right=0.98, bottom=1.3 / (4.6 * rows), top=0.99, wspace=0.08, hspace=0.55)
    fig.savefig(path, dpi=80, metadata={"Software": None})


def _manifest(num_train: int, num_val: int, seed: int, image_size: int) -> dict:
    return dict(
        format_version=FORMAT_VERSION, num_train=num_train, num_val=num_val, seed=seed, image_size=image_size
    )


def expected_files() -> list[str]:
    """The files of a complete `shapes` folder (besides the PNGs)."""
    names = [CAPTIONS_FILE, VOCAB_FILE, IMAGES_FILE, PREVIEW_FILE, MANIFEST]
    names += [
        f(split)
        for split in SPLITS
        for f in (urls_file, lambda s: features_file(s, False), lambda s: features_file(s, True))
    ]
    return names


def _is_current(root: Path, manifest: dict) -> bool:
    try:
        found = json.loads((root / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return found == manifest and all((root / name).is_file() for name in expected_files())


def ensure_shapes(
    root: str | Path, num_train: int = 4000, num_val: int = 500, seed: int = 0, image_size: int = 64
) -> Path:
    """Generate the `shapes` dataset into ``root`` unless it is already there with these parameters.

    The dataset is written to a temporary folder next to ``root`` and renamed into place, so a failure
    leaves no partial dataset; an older `shapes` dataset in ``root`` (one with a ``manifest.json``) is
    replaced, while a non-empty folder without a manifest is never touched. Returns ``root``.
    """
    root = Path(root).expanduser().resolve()
    for name, value, low in (
        ("num_train", num_train, 1),
        ("num_val", num_val, 1),
        ("seed", seed, 0),
        ("image_size", image_size, 32),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"ensure_shapes: {name} must be an integer >= {low}, got {value!r}")
    manifest = _manifest(num_train, num_val, seed, image_size)
    if _is_current(root, manifest):
        return root
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).is_file():
        raise FileExistsError(
            f"{root} is not empty and holds no `shapes` {MANIFEST}; refusing to overwrite it. "
            "Point data.root at an empty or new folder."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        _generate(tmp, num_train, num_val, seed, image_size)
        if _is_current(root, manifest):  # another process finished the same dataset meanwhile
            shutil.rmtree(tmp)
            return root
        old = None
        if root.exists():  # an empty folder or an outdated dataset: swap it out, then delete it
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent)) / root.name
            os.replace(root, old)
        try:
            os.replace(tmp, root)
        except OSError:
            if old is not None:
                os.replace(old, root)
            raise
        if old is not None:
            shutil.rmtree(old.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def load_shapes_images(root: str | Path, split: str) -> ShapesImages:
    """The images, object masks and labels of one split (``"train"`` or ``"val"``) of a `shapes` folder."""
    path = Path(root).expanduser() / IMAGES_FILE
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not path.is_file():
        raise FileNotFoundError(
            f"missing file {path}; generate the dataset with "
            f"`python -m visgrad.data.shapes --root {path.parent}` (or ensure_shapes)"
        )
    with h5py.File(path, "r") as f:
        return ShapesImages(
            f[f"{split}_images"][()],
            f[f"{split}_masks"][()].astype(bool),
            f[f"{split}_labels"][()].astype(np.int64),
            json.loads(f.attrs["label_names"]),
        )


def load_shapes_objects(root: str | Path, split: str) -> np.ndarray:
    """Object annotations int16 (N, 3, 5): (kind, colour, size, cx, cy) left to right, -1 for no object."""
    with h5py.File(Path(root).expanduser() / IMAGES_FILE, "r") as f:
        return f[f"{split}_objects"][()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="dataset folder (created if missing)")
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-val", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = ensure_shapes(args.root, args.num_train, args.num_val, args.seed, args.image_size)
    elapsed = time.perf_counter() - start
    print_stats(root, elapsed)


def print_stats(root: Path, elapsed: float) -> None:
    """A Rich table of what a `shapes` folder holds."""
    from rich.console import Console
    from rich.table import Table

    from visgrad.data.coco import load_coco_data
    from visgrad.data.vocab import decode_captions

    data = load_coco_data(root, pca_features=True)
    with h5py.File(root / features_file("train", False), "r") as f:
        raw_dim = f["features"].shape[1]
    table = Table(title=f"shapes dataset at {root} (ready in {elapsed:.1f} s)")
    for column in ("split", "images", "captions", "caption length T", "raw / pca features", "labels"):
        table.add_column(column)
    for split in SPLITS:
        labels = load_shapes_images(root, split).labels
        counts = ", ".join(
            f"{k} {c}" for k, c in zip(KINDS, np.bincount(labels, minlength=len(KINDS)), strict=True)
        )
        table.add_row(
            split,
            str(len(data[f"{split}_features"])),
            str(len(data[f"{split}_captions"])),
            str(data[f"{split}_captions"].shape[1]),
            f"{raw_dim} / {data[f'{split}_features'].shape[1]}",
            counts,
        )
    console = Console()
    console.print(table)
    console.print(f"vocabulary: {len(data['idx_to_word'])} words")
    for caption in decode_captions(data["val_captions"][:5], data["idx_to_word"]):
        console.print(f"  {caption}")
    console.print(f"preview: {root / PREVIEW_FILE}")


if __name__ == "__main__":
    main()
