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

CLI: ``python -m visgrad.data.shapes --root data/shapes`` generates (if needed) and prints statistics;
at COCO scale (82783 train / 40504 val images, 4096-d raw features as VGG-16's fc7 plus 512-d PCA)::

    python -m visgrad.data.shapes --root data/shapes_coco_scale --num-train 82783 --num-val 40504 \\
        --feature-dim 4096

Generation runs chunk by chunk (bounded memory), with worker processes for the PNGs and features.

The module is longer than most (~600 lines) on purpose: scene sampling, rendering, the caption grammar
and the chunked writer draw from one seeded random stream in a fixed order, which is what makes a set
reproducible from its seed; split apart, that order would be an implicit contract between modules.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import torch
from PIL import Image

from visgrad.data.coco import (
    CAPTIONS_FILE,
    MANIFEST,
    SPLITS,
    VOCAB_FILE,
    RowWriter,
    features_file,
    h5_writer,
    urls_file,
    write_h5,
    write_urls,
    write_vocab,
)
from visgrad.data.shapes_features import PALETTE, RAW_DIM, Pca, extract_features
from visgrad.data.vocab import build_vocab, encode_captions

# 3: val images carry every caption form of the grammar; 4: generated in chunks (same images and captions),
# PCA from streamed moments, HDF5 1.10 files with CRC-32 attributes, feature_dim in the manifest
FORMAT_VERSION = 4
KINDS = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
HALF_SIZES = ((5.0, 6.0), (10.0, 11.0))  # per size, for a 64-pixel image
PCA_DIM = 512
IMAGES_FILE = "shapes_images.h5"
PREVIEW_FILE = "preview.png"
PREVIEW_COUNT = 12
CHUNK = 1024  # images rendered, featurised and written at a time
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


def _render_chunks(rng: np.random.Generator, num: int, size: int, complete_captions: bool) -> Iterator[dict]:
    """The scenes of one split, ``CHUNK`` images at a time, drawn from ``rng`` in image order.

    Each chunk holds ``start`` (index of its first image), ``images`` uint8 (B, S, S, 3), ``masks`` bool
    (B, S, S), ``labels`` int64 (B,), ``objects`` int16 (B, 3, 5), ``captions`` (strings) and their
    ``image_idxs`` (indices in the split).
    """
    for start in range(0, num, CHUNK):
        count = min(CHUNK, num - start)
        chunk = dict(
            start=start,
            images=np.zeros((count, size, size, 3), np.uint8),
            masks=np.zeros((count, size, size), bool),
            labels=np.zeros(count, np.int64),
            objects=np.full((count, 3, len(OBJECT_FIELDS)), -1, np.int16),
            captions=[],
            image_idxs=[],
        )
        for i in range(count):
            shapes = sample_scene(rng, size)
            chunk["images"][i], chunk["masks"][i], chunk["labels"][i] = render(shapes, rng, size)
            chunk["objects"][i, : len(shapes)] = [
                (s.kind, s.colour, s.size, round(s.cx), round(s.cy)) for s in shapes
            ]
            for caption in captions_for(shapes, rng, complete=complete_captions):
                chunk["captions"].append(caption)
                chunk["image_idxs"].append(start + i)
        yield chunk


def _png_name(i: int) -> str:
    return f"{i:06d}.png"


def _finish_chunk(images: np.ndarray, png_dir: Path, start: int, feature_dim: int) -> np.ndarray:
    """The parallel part of a chunk: save its PNGs; returns its features float32 (B, feature_dim)."""
    for i, image in enumerate(images):
        Image.fromarray(image).save(png_dir / _png_name(start + i), compress_level=1)
    return extract_features(images, feature_dim)


def _init_worker() -> None:
    torch.set_num_threads(1)


@contextlib.contextmanager
def _worker_pool(processes: int) -> Iterator[ProcessPoolExecutor | None]:
    """``processes`` worker processes (None if 1): forked on Linux, started now, before the progress bar's
    thread exists (a fork copies only the calling thread); spawned elsewhere."""
    if processes == 1:
        yield None
        return
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker)
    try:
        pool.submit(int).result()  # with fork, the first task starts every worker
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finished(
    chunks: Iterator[dict], png_dir: Path, feature_dim: int, pool: ProcessPoolExecutor | None, window: int
) -> Iterator[tuple[dict, np.ndarray]]:
    """``(chunk, features)`` of every chunk, in order, finished by ``pool``'s workers (at most ``window``
    chunks in flight, so that memory stays bounded while the main process renders ahead) or inline."""
    pending: collections.deque = collections.deque()
    for chunk in chunks:
        args = (chunk["images"], png_dir, chunk["start"], feature_dim)
        if pool is None:
            yield chunk, _finish_chunk(*args)
            continue
        pending.append((chunk, pool.submit(_finish_chunk, *args)))
        if len(pending) >= window:
            done, future = pending.popleft()
            yield done, future.result()
    for done, future in pending:
        yield done, future.result()


def _generate(
    root: Path, num_train: int, num_val: int, seed: int, image_size: int, feature_dim: int, processes: int
) -> dict:
    """Write the whole dataset into the (empty) folder ``root``; returns the manifest, written last.

    Scenes are drawn from one random stream, in order (train, then val); PNGs and features are computed by
    ``processes`` worker processes when there is more than one chunk. Everything is written chunk by chunk,
    so memory stays bounded for any size.
    """
    from rich.progress import Progress

    rng = np.random.default_rng(seed)
    idx_to_word, word_to_idx = vocabulary()
    image_fields = {
        "images": ((image_size, image_size, 3), np.uint8),
        "masks": ((image_size, image_size), bool),
        "labels": ((), np.int64),
        "objects": ((3, len(OBJECT_FIELDS)), np.int16),
    }
    captions: dict[str, list[str]] = {}
    image_idxs: dict[str, list[int]] = {}
    with (
        _worker_pool(processes if num_train + num_val > CHUNK else 1) as pool,
        h5_writer(root / IMAGES_FILE) as images_h5,
        Progress(transient=True) as progress,
    ):
        for split, num in zip(SPLITS, (num_train, num_val), strict=True):
            png_dir = root / "images" / split
            png_dir.mkdir(parents=True)
            task = progress.add_task(f"shapes: {split} images", total=num)
            writers = {
                key: RowWriter(images_h5, f"{split}_{key}", (num, *shape), dtype)
                for key, (shape, dtype) in image_fields.items()
            }
            captions[split], image_idxs[split] = [], []
            with h5_writer(root / features_file(split, False)) as features_h5:
                features = RowWriter(features_h5, "features", (num, feature_dim), np.float32)
                chunks = _render_chunks(rng, num, image_size, complete_captions=split == "val")
                for chunk, chunk_features in _finished(chunks, png_dir, feature_dim, pool, 2 * processes):
                    for key, writer in writers.items():
                        writer.write(chunk[key])
                    features.write(chunk_features)
                    captions[split] += chunk["captions"]
                    image_idxs[split] += chunk["image_idxs"]
                    progress.advance(task, len(chunk["images"]))
                features.close()
            for writer in writers.values():
                writer.close()
        for key, value in (
            ("label_names", list(KINDS)),
            ("object_fields", OBJECT_FIELDS),
            ("colour_names", list(COLOURS)),
            ("size_names", list(SIZES)),
        ):
            images_h5.attrs[key] = json.dumps(value)
        progress.add_task("shapes: PCA, captions, preview", total=None)
        _write_pca(root)
        length = max(len(c.split()) for split in SPLITS for c in captions[split]) + 2
        encoded = {split: encode_captions(captions[split], word_to_idx, length) for split in SPLITS}
        write_h5(
            root / CAPTIONS_FILE,
            {
                f"{split}_{key}": value
                for split in SPLITS
                for key, value in (
                    ("captions", encoded[split]),
                    ("image_idxs", np.asarray(image_idxs[split], np.int32)),
                )
            },
        )
        write_vocab(root, idx_to_word, word_to_idx)
        for split, num in zip(SPLITS, (num_train, num_val), strict=True):
            write_urls(root, split, [f"images/{split}/{_png_name(i)}" for i in range(num)])
        save_preview(
            root / PREVIEW_FILE,
            images_h5["val_images"][:PREVIEW_COUNT],
            encoded["val"],
            np.asarray(image_idxs["val"]),
            idx_to_word,
            count=PREVIEW_COUNT,
        )
    manifest = _manifest(num_train, num_val, seed, image_size, feature_dim)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_pca(root: Path) -> None:
    """Fit the PCA on the raw train features and write both splits' ``*_pca.h5``, a block at a time."""
    with h5py.File(root / features_file("train", False), "r") as f:
        pca = Pca.fit(f["features"], min(PCA_DIM, *f["features"].shape))
    for split in SPLITS:
        with (
            h5py.File(root / features_file(split, False), "r") as f,
            h5_writer(root / features_file(split, True)) as out,
        ):
            raw = f["features"]
            writer = RowWriter(out, "features", (len(raw), len(pca.components)), np.float32)
            for start in range(0, len(raw), 4 * CHUNK):
                writer.write(pca(raw[start : start + 4 * CHUNK]))
            writer.close()


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


def _manifest(num_train: int, num_val: int, seed: int, image_size: int, feature_dim: int) -> dict:
    return dict(
        format_version=FORMAT_VERSION,
        num_train=num_train,
        num_val=num_val,
        seed=seed,
        image_size=image_size,
        feature_dim=feature_dim,
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
    root: str | Path,
    num_train: int = 4000,
    num_val: int = 500,
    seed: int = 0,
    image_size: int = 64,
    feature_dim: int = RAW_DIM,
    processes: int | None = None,
) -> Path:
    """Generate the `shapes` dataset into ``root`` unless it is already there with these parameters.

    ``feature_dim`` is the size of the raw ``*_vgg16_fc7.h5`` features (``RAW_DIM`` = 1518, or more, e.g.
    4096 as VGG-16's fc7: see ``visgrad.data.shapes_features``); ``processes`` worker processes (default:
    up to 4 cores) save the PNGs and extract the features when there is more than one chunk of images;
    the result does not depend on it.

    The dataset is written to a temporary folder next to ``root`` and renamed into place, so a failure
    leaves no partial dataset; an older `shapes` dataset in ``root`` (one with a ``manifest.json``) is
    replaced, while a non-empty folder without a manifest is never touched. Returns ``root``.
    """
    root = Path(root).expanduser().resolve()
    processes = min(4, os.cpu_count() or 1) if processes is None else processes
    for name, value, low in (
        ("num_train", num_train, 1),
        ("num_val", num_val, 1),
        ("seed", seed, 0),
        ("image_size", image_size, 32),
        ("feature_dim", feature_dim, RAW_DIM),
        ("processes", processes, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"ensure_shapes: {name} must be an integer >= {low}, got {value!r}")
    manifest = _manifest(num_train, num_val, seed, image_size, feature_dim)
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
        _generate(tmp, num_train, num_val, seed, image_size, feature_dim, processes)
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


def load_shapes_images(root: str | Path, split: str, rows: np.ndarray | None = None) -> ShapesImages:
    """The images, object masks and labels of one split (``"train"`` or ``"val"``) of a `shapes` folder:
    all of them, or only those at the increasing indices ``rows``."""
    path = Path(root).expanduser() / IMAGES_FILE
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not path.is_file():
        raise FileNotFoundError(
            f"missing file {path}; generate the dataset with "
            f"`python -m visgrad.data.shapes --root {path.parent}` (or ensure_shapes)"
        )
    select = () if rows is None else np.asarray(rows)
    with h5py.File(path, "r") as f:
        return ShapesImages(
            f[f"{split}_images"][select],
            f[f"{split}_masks"][select].astype(bool),
            f[f"{split}_labels"][select].astype(np.int64),
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
    parser.add_argument("--feature-dim", type=int, default=RAW_DIM, help=f">= {RAW_DIM}; COCO: 4096")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: <= 4 cores)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = ensure_shapes(
        args.root, args.num_train, args.num_val, args.seed, args.image_size, args.feature_dim, args.processes
    )
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
    with h5py.File(root / IMAGES_FILE, "r") as f:
        labels = {split: f[f"{split}_labels"][()] for split in SPLITS}
    table = Table(title=f"shapes dataset at {root} (ready in {elapsed:.1f} s)")
    for column in ("split", "images", "captions", "caption length T", "raw / pca features", "labels"):
        table.add_column(column)
    for split in SPLITS:
        counts = ", ".join(
            f"{k} {c}" for k, c in zip(KINDS, np.bincount(labels[split], minlength=len(KINDS)), strict=True)
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
