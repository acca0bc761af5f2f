"""The CS231n COCO captioning folder format: loading (with validation, features memory-mapped) and writing.

A folder holds::

    coco2014_captions.h5          train_captions int (Nc, T), train_image_idxs int (Nc,), val_* likewise
    coco2014_vocab.json           {"idx_to_word": [...], "word_to_idx": {...}}: <NULL>=0 <START> <END> <UNK>
    train2014_vgg16_fc7.h5        features float (N_train, 4096)   (and val2014_vgg16_fc7.h5)
    train2014_vgg16_fc7_pca.h5    features float (N_train, 512)    (and val2014_vgg16_fc7_pca.h5)
    train2014_urls.txt            one image URL (or path relative to the folder) per feature row
    val2014_urls.txt

Get the real one with ``bash scripts/get_coco_captioning.sh DIR``; the synthetic `shapes` dataset
(``visgrad.data.shapes``) is written in the same format. Files written here use the HDF5 1.10 format,
whose metadata carries checksums, and store a CRC-32 of every dataset's bytes in its ``crc32``
attribute, so that the loader detects any corruption; CS231n's files have no such attribute and are
checked for shapes, ranges and finite values only.

Loading and writing stay in one module (~360 lines) because they share the format's names, dtypes and
integrity checks: a writer that drifted from the loader would write folders the loader rejects.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from visgrad.data.vocab import NULL, SPECIAL_TOKENS, START
from visgrad.errors import UserError, not_a_folder, unreadable

SPLITS = ("train", "val")
CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
MANIFEST = "manifest.json"  # marks a generated `shapes` folder
CRC_ATTR = "crc32"
H5_LIBVER = "v110"  # superblock v3 and v2 object headers: checksummed metadata
SCAN_BYTES = 64 << 20  # block size of the feature scan (CRC-32, finiteness)
DOWNLOAD_HINT = (
    "Get the CS231n COCO captioning data with `bash scripts/get_coco_captioning.sh {quoted}` "
    "(downloads http://cs231n.stanford.edu/coco_captioning.zip, about 1 GB), or train on the offline "
    "synthetic dataset instead: `python train.py data=shapes`."
)
SHAPES_HINT = (
    "{root} is a generated `shapes` folder: delete it (after moving out any file of yours) and it is "
    "generated again on the next run "
    "(or by `python -m visgrad.data.shapes --root {quoted}` with its parameters)."
)
# What h5py raises on unreadable, truncated or corrupt files (besides OSError for most cases).
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError)


class CaptionDataError(UserError, FileNotFoundError):
    """A captioning data folder is missing, incomplete, corrupt or inconsistent.

    The message is one line naming the file (and the key or value) and how to fix it.
    """


def features_file(split: str, pca_features: bool) -> str:
    """File name of a split's features, e.g. ``train2014_vgg16_fc7_pca.h5``."""
    return f"{split}2014_vgg16_fc7{'_pca' if pca_features else ''}.h5"


def urls_file(split: str) -> str:
    return f"{split}2014_urls.txt"


def _fail(root: Path, problem: str) -> CaptionDataError:
    hint = SHAPES_HINT if (root / MANIFEST).is_file() else DOWNLOAD_HINT
    return CaptionDataError(f"{problem}. {hint.format(root=root, quoted=shlex.quote(str(root)))}")


def _check_file(root: Path, path: Path) -> None:
    """``CaptionDataError`` if ``path`` is missing or a folder, or (permission denied) not readable: the
    latter two are not fixed by fetching the data again, so they get no download advice."""
    if path.is_dir():
        raise CaptionDataError(f"{path} is a folder, not a file; move it away from {root} (the folder needs "
                               f"a file {path.name} there)")
    if not path.is_file():
        raise _fail(root, f"missing file {path}")
    if not os.access(path, os.R_OK):
        raise CaptionDataError(unreadable(path, PermissionError(errno.EACCES, "Permission denied")))


@contextmanager
def _open_h5(root: Path, name: str) -> Iterator[h5py.File]:
    """The HDF5 file ``root/name`` open for reading; h5py's errors inside become ``CaptionDataError``."""
    path = root / name
    _check_file(root, path)
    try:
        with h5py.File(path, "r") as f:
            yield f
    except CaptionDataError:
        raise
    except H5_ERRORS as err:
        message = " ".join(str(err).split())
        problem = f"{path} is not a readable HDF5 file: it is truncated or corrupt ({message})"
        raise _fail(root, problem) from err


def _dataset(root: Path, f: h5py.File, key: str) -> h5py.Dataset:
    if key not in f:
        path = root / Path(f.filename).name
        raise _fail(root, f"{path} lacks the dataset '{key}' (it has {sorted(f.keys())})")
    return f[key]


def _check_crc(root: Path, name: str, key: str, crc: int, expected) -> None:
    if expected is not None and crc != int(expected):
        raise _fail(
            root,
            f"{root / name}: dataset '{key}' fails its CRC-32 check (stored {int(expected)}, computed "
            f"{crc}): the file is corrupt",
        )


def _read_captions(root: Path) -> dict[str, np.ndarray]:
    """The caption and image-idx arrays of ``coco2014_captions.h5`` (checked against their CRC-32)."""
    data = {}
    with _open_h5(root, CAPTIONS_FILE) as f:
        for split in SPLITS:
            for key in (f"{split}_captions", f"{split}_image_idxs"):
                dataset = _dataset(root, f, key)
                array = dataset[()]
                crc = zlib.crc32(np.ascontiguousarray(array)) if array.size else 0
                _check_crc(root, CAPTIONS_FILE, key, crc, dataset.attrs.get(CRC_ATTR))
                data[key] = array
    return data


def _read_vocab(root: Path) -> dict:
    path = root / VOCAB_FILE
    _check_file(root, path)
    try:
        vocab = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(root, f"{path} is not valid JSON ({err})") from err
    if not isinstance(vocab, dict) or not {"idx_to_word", "word_to_idx"} <= set(vocab):
        raise _fail(root, f"{path} must hold the keys 'idx_to_word' and 'word_to_idx'")
    idx_to_word, word_to_idx = vocab["idx_to_word"], vocab["word_to_idx"]
    if not isinstance(idx_to_word, list) or not isinstance(word_to_idx, dict):
        raise _fail(root, f"{path}: 'idx_to_word' must be a list of words, 'word_to_idx' a word -> id dict")
    missing = [t for t in SPECIAL_TOKENS if t not in word_to_idx]
    if missing:
        raise _fail(root, f"{path} lacks the special token(s) {missing}")
    if word_to_idx[NULL] != 0:
        raise _fail(root, f"{path}: '{NULL}' must have index 0, found {word_to_idx[NULL]!r}")
    if word_to_idx != {word: idx for idx, word in enumerate(idx_to_word)}:
        raise _fail(root, f"{path}: 'idx_to_word' and 'word_to_idx' do not describe the same vocabulary")
    return {"idx_to_word": idx_to_word, "word_to_idx": word_to_idx}


def _read_urls(root: Path, split: str) -> np.ndarray:
    path = root / urls_file(split)
    _check_file(root, path)
    try:
        return np.asarray([line.strip() for line in path.read_text().splitlines()])
    except UnicodeDecodeError as err:
        raise _fail(root, f"{path} is not a text file ({err})") from err


def _file_blocks(path: Path, offset: int, shape: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 rows) blocks of a contiguous (N, D) array at ``offset`` of a file, read with plain
    file reads (so that scanning does not map the file into the process)."""
    rows = max(1, SCAN_BYTES // (4 * shape[1]))
    buffer = np.empty((rows, shape[1]), np.float32)
    with open(path, "rb") as fh:
        fh.seek(offset)
        for start in range(0, shape[0], rows):
            block = buffer[: min(rows, shape[0] - start)]
            fh.readinto(memoryview(block).cast("B"))
            yield start, block


def _scan_features(
    root: Path, name: str, blocks: Iterator[tuple[int, np.ndarray]], expected_crc
) -> None:
    """Check that every value is finite and that the bytes match their stored CRC-32 (if any)."""
    crc = 0
    for start, block in blocks:
        crc = zlib.crc32(block, crc)
        finite = np.isfinite(block).all(1)
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            raise _fail(root, f"{root / name}: 'features' row {row} holds NaN or infinite values")
    _check_crc(root, name, "features", crc, expected_crc)


def open_features(root: str | Path, split: str, pca_features: bool = True) -> np.ndarray:
    """The float32 (N, D) features of ``split``, checked, and memory-mapped when the file allows it.

    A contiguous, uncompressed float32 ``features`` dataset (h5py's default layout, used by CS231n's files
    and by `shapes`) is returned as a read-only ``np.memmap`` of the HDF5 file: nothing is loaded up front,
    rows are read from the page cache when indexed, and worker processes can map the file themselves. Any
    other layout is read into memory. Either way every value is checked to be finite, and the bytes against
    the dataset's ``crc32`` attribute when present. Raises ``CaptionDataError`` naming the file.
    """
    root = Path(root).expanduser()
    name = features_file(split, pca_features)
    path = root / name
    with _open_h5(root, name) as f:
        dataset = _dataset(root, f, "features")
        if dataset.ndim != 2 or 0 in dataset.shape:
            raise _fail(root, f"{path}: 'features' must be a non-empty 2-D (N, D) array, got {dataset.shape}")
        if dataset.dtype.kind != "f":
            raise _fail(root, f"{path}: 'features' must be floating point, got {dataset.dtype}")
        expected_crc = dataset.attrs.get(CRC_ATTR)
        offset = dataset.id.get_offset() if dataset.chunks is None else None
        shape = dataset.shape
        if offset is None or dataset.dtype != np.dtype("<f4"):
            raw = dataset[()]
            _scan_features(root, name, iter([(0, np.ascontiguousarray(raw))]), expected_crc)
            return raw.astype(np.float32, copy=False)
    size, needed = path.stat().st_size, offset + 4 * shape[0] * shape[1]
    if size < needed:
        raise _fail(root, f"{path} is truncated: 'features' {shape} needs {needed} bytes, it has {size}")
    _scan_features(root, name, _file_blocks(path, offset, shape), expected_crc)
    return np.memmap(path, np.float32, "r", offset, shape)


def _check_split(root: Path, data: dict, split: str, pca_features: bool) -> None:
    """Shapes, dtypes and ranges of one split's captions, image idxs, features and URLs."""
    captions, idxs = data[f"{split}_captions"], data[f"{split}_image_idxs"]
    features, urls = data[f"{split}_features"], data[f"{split}_urls"]
    where, features_path = root / CAPTIONS_FILE, root / features_file(split, pca_features)
    if captions.ndim != 2 or idxs.shape != (len(captions),) or captions.shape[1] < 2:
        raise _fail(
            root,
            f"{where}: {split}_captions {captions.shape} and {split}_image_idxs {idxs.shape} must be "
            "(N, T) with T >= 2 and (N,)",
        )
    for key, array in ((f"{split}_captions", captions), (f"{split}_image_idxs", idxs)):
        if array.dtype.kind not in "iu":
            raise _fail(root, f"{where}: {key} must hold integers, got {array.dtype}")
    if len(captions) == 0:
        raise _fail(root, f"{where}: {split}_captions is empty (the {split} split has no captions)")
    if idxs.min() < 0 or idxs.max() >= len(features):
        raise _fail(
            root,
            f"{where}: {split}_image_idxs range {idxs.min()}..{idxs.max()} does not fit the "
            f"{len(features)} feature rows of {features_path}",
        )
    vocab_size = len(data["idx_to_word"])
    bad = (captions < 0) | (captions >= vocab_size)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise _fail(
            root,
            f"{where}: {split}_captions row {row} holds token id {captions[row, col]}, outside the "
            f"{vocab_size}-word vocabulary of {root / VOCAB_FILE}",
        )
    start = data["word_to_idx"][START]
    if not (captions[:, 0] == start).all():
        row = int(np.flatnonzero(captions[:, 0] != start)[0])
        raise _fail(root, f"{where}: {split}_captions row {row} does not begin with {START} (id {start})")
    if len(urls) != len(features):
        raise _fail(
            root,
            f"{root / urls_file(split)} lists {len(urls)} images but {features_path} has {len(features)} "
            "feature rows",
        )


def load_coco_data(
    base_dir: str | Path, max_train: int | None = None, pca_features: bool = True, seed: int = 0
) -> dict:
    """Load a CS231n COCO captioning folder, with CS231n's keys, after checking it is complete and sound.

    Returns a dict with ``train_captions`` int (Nc, T), ``train_image_idxs`` int (Nc,), ``val_*`` likewise,
    ``train_features`` float32 (N_train, D), ``val_features`` float32 (N_val, D) (``np.memmap`` of the
    files, see ``open_features``), ``idx_to_word``, ``word_to_idx``, ``train_urls`` / ``val_urls`` str
    arrays (one per feature row).

    ``pca_features`` picks the ``*_pca.h5`` (512-d) files; ``max_train`` keeps a random subset of that many
    training captions (CS231n's option; here drawn without replacement by ``np.random.default_rng(seed)``).
    Raises ``CaptionDataError`` naming the file when something is missing, corrupt or inconsistent: HDF5
    files that are truncated or fail their checksums, missing keys, captions that are not 2-D integers,
    start without ``<START>`` or hold ids outside the vocabulary, image idxs past the feature rows, empty
    splits, non-finite features, train and val features of different sizes, a vocabulary without its
    special tokens or whose two halves disagree, URL lists of the wrong length.
    """
    root = Path(base_dir).expanduser()
    if not_a_folder(root):
        raise CaptionDataError(f"captioning data folder: {not_a_folder(root)}; give the folder of the data "
                               "(data.root)")
    if not root.is_dir():
        raise _fail(root, f"captioning data folder {root} does not exist")
    data: dict = _read_captions(root)
    data.update(_read_vocab(root))
    for split in SPLITS:
        data[f"{split}_features"] = open_features(root, split, pca_features)
        data[f"{split}_urls"] = _read_urls(root, split)
        _check_split(root, data, split, pca_features)
    train_dim, val_dim = data["train_features"].shape[1], data["val_features"].shape[1]
    if train_dim != val_dim:
        raise _fail(
            root,
            f"train and val features differ in size: {train_dim} vs {val_dim} "
            f"({root / features_file('train', pca_features)}, {root / features_file('val', pca_features)})",
        )
    if max_train is not None:
        data = subsample_train(data, max_train, seed, source=root / CAPTIONS_FILE)
    return data


def subsample_train(data: dict, max_train: int, seed: int = 0, source: str | Path = "the data") -> dict:
    """``data`` with a random subset of ``max_train`` training captions (and their image idxs), in file order.

    The subset is drawn without replacement by ``np.random.default_rng(seed)``; ``max_train`` equal to the
    number of training captions keeps them all, a larger one is an error (naming ``source``). The features
    stay whole (image idxs index into them).
    """
    num_train = len(data["train_captions"])
    if isinstance(max_train, bool) or not isinstance(max_train, (int, np.integer)) or max_train < 1:
        raise ValueError(f"max_train must be a positive number of captions or None, got {max_train!r}")
    if max_train > num_train:
        raise ValueError(
            f"max_train={max_train} is larger than the {num_train} training captions of {source}; "
            f"set max_train to at most {num_train} (or null for all)"
        )
    if max_train == num_train:
        return data
    keep = np.sort(np.random.default_rng(seed).choice(num_train, size=max_train, replace=False))
    return {
        **data,
        "train_captions": data["train_captions"][keep],
        "train_image_idxs": data["train_image_idxs"][keep],
    }


class RowWriter:
    """An HDF5 dataset of known shape, written block by block in row order; ``close()`` stores its CRC-32.

    The dataset is contiguous and uncompressed, so that readers can memory-map it.
    """

    def __init__(self, file: h5py.File, key: str, shape: tuple[int, ...], dtype) -> None:
        self.dataset = file.create_dataset(key, shape, dtype, track_times=False)
        self.rows, self.crc = 0, 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, self.dataset.dtype)
        if len(block):
            self.dataset[self.rows : self.rows + len(block)] = block
            self.crc = zlib.crc32(block, self.crc)
            self.rows += len(block)

    def close(self) -> None:
        if self.rows != self.dataset.shape[0]:
            raise ValueError(f"{self.dataset.name}: wrote {self.rows} of {self.dataset.shape[0]} rows")
        self.dataset.attrs[CRC_ATTR] = self.crc


def h5_writer(path: Path) -> h5py.File:
    """A new HDF5 file in the checksummed 1.10 format (same bytes for the same contents: no timestamps)."""
    return h5py.File(path, "w", libver=H5_LIBVER)


def write_h5(path: Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, str] | None = None) -> None:
    """Write arrays (each with its CRC-32) and string attributes to a new HDF5 file, reproducibly."""
    with h5_writer(path) as f:
        for key, value in arrays.items():
            writer = RowWriter(f, key, np.shape(value), np.asarray(value).dtype)
            writer.write(value)
            writer.close()
        for key, value in (attrs or {}).items():
            f.attrs[key] = value


def write_vocab(root: Path, idx_to_word: list[str], word_to_idx: Mapping[str, int]) -> None:
    (root / VOCAB_FILE).write_text(json.dumps({"idx_to_word": idx_to_word, "word_to_idx": dict(word_to_idx)}))


def write_urls(root: Path, split: str, urls: list[str]) -> None:
    (root / urls_file(split)).write_text("".join(f"{url}\n" for url in urls))

