"""Grid (spatial) image features for the attention captioners: one feature vector per cell of the image.

A captioning folder's vector features (``*_vgg16_fc7*.h5``, (N, D)) cannot say where things are; the
attention captioners read a grid (N, h, w, C) instead. ``data.grid`` (``CaptionDataModule(grid=...)``)
names its source, an entry of :data:`GRID_SOURCES`:

- ``lite0``: frozen EfficientNet-Lite0 (ImageNet weights, ``visgrad.models.efficientnet_lite0``) on the image
  upscaled to ``LITE0_SIZE`` (128) pixels, the output of block ``LITE0_BLOCK`` (the last of the stride-16
  stage): (N, 8, 8, 80). Extracted once per data folder into a sibling folder ``<root>_grid_lite0/``
  (``{split}2014_grid.h5``, float16: the captions' metrics are unchanged, docs/attention.md), with a
  ``manifest.json`` that ties it to the data folder (it is extracted again when the data changes).
- ``pixels``: the image itself, uint8 (N, S, S, 3), for a network that learns its own encoder with the
  captioner (``AttentionLSTMCaptioner(encoder_channels=...)``: ``visgrad.captioning.encoders.SmallCNN``).
- ``lite0_pooled``: the ``lite0`` grid averaged over its cells, (N, 80): the same features without the
  where, for the vector captioners (``model=lstm``), the control of the attention comparison.

Images come from the folder: `shapes` stores them (``shapes_images.h5``); for COCO, the images listed in
``*_urls.txt`` must be on disk (paths relative to the folder, or ``images_dir/<file name of the URL>``),
as nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from visgrad.data.coco import H5_ERRORS, MANIFEST, SPLITS, CaptionDataError, _open_h5, urls_file
from visgrad.errors import unreadable

GRID_SOURCES = ("lite0", "pixels", "lite0_pooled")
# what each data.grid gives a captioner (its feature_kind, visgrad.captioning.protocol): None is the vectors
FEATURE_KINDS = {None: "vectors", "lite0_pooled": "vectors", "lite0": "grid", "pixels": "images"}
LITE0_SIZE = 128
LITE0_BLOCK = 8  # features() index: the third block of the stride-16 stage, 80 channels
GRID_FORMAT = 1
CHUNK = 64


def grid_file(split: str) -> str:
    return f"{split}2014_grid.h5"


def grid_folder(root: str | Path, source: str) -> Path:
    """Where the ``source`` grid features of the data folder ``root`` live."""
    root = Path(root).expanduser().resolve()
    return root.parent / f"{root.name}_grid_{source}"


def _data_identity(root: Path) -> dict:
    """What the grid depends on in the data folder: a generated folder's manifest, else the urls files'
    sizes and modification times."""
    manifest = root / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return {name: [p.stat().st_size, p.stat().st_mtime_ns] for name in map(urls_file, SPLITS)
            if (p := root / name).is_file()}


def _manifest(root: Path, image_size: int) -> dict:
    return {"format": GRID_FORMAT, "source": "lite0", "image_size": image_size, "block": LITE0_BLOCK,
            "data": _data_identity(root)}


def lite0_grid(images: np.ndarray, model=None, image_size: int = LITE0_SIZE) -> np.ndarray:
    """Frozen EfficientNet-Lite0 grid features: uint8 images (N, S, S, 3) -> float32 (N, h, w, 80) with
    h = w = image_size / 16 (images are resized to ``image_size`` bilinearly and scaled to [-1, 1])."""
    from visgrad.models.efficientnet_lite0 import load_efficientnet_lite0

    model = load_efficientnet_lite0() if model is None else model
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + CHUNK])).permute(0, 3, 1, 2)
            x = F.interpolate(x.float() / 127.5 - 1, size=image_size, mode="bilinear", align_corners=False)
            grid = model.features(x.contiguous(memory_format=torch.channels_last), upto=LITE0_BLOCK)[-1]
            out.append(grid.permute(0, 2, 3, 1).float().numpy())
    return np.concatenate(out)


def split_images(root: str | Path, split: str, images_dir: str | Path | None = None) -> Iterator[np.ndarray]:
    """The images of a split of a captioning folder, in feature-row order, as uint8 (B, S, S, 3) chunks."""
    from visgrad.data.shapes import IMAGES_FILE

    root = Path(root)
    if (root / IMAGES_FILE).is_file():
        with _open_h5(root, IMAGES_FILE) as f:
            images = f[f"{split}_images"]
            for start in range(0, len(images), CHUNK):
                yield images[start : start + CHUNK]
        return
    from PIL import Image

    urls = (root / urls_file(split)).read_text().split()
    paths = [_local_image(root, url, images_dir) for url in urls]
    for start in range(0, len(paths), CHUNK):
        yield np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224))) for p in
                        paths[start : start + CHUNK]])


def _local_image(root: Path, url: str, images_dir: str | Path | None) -> Path:
    candidates = [root / url] if "://" not in url else []
    if images_dir is not None:
        candidates.append(Path(images_dir).expanduser() / url.rsplit("/", 1)[-1])
    for path in candidates:
        if path.is_file():
            return path
    raise CaptionDataError(
        f"grid features need the images of {root / urls_file('train')} on disk; {url} is not (looked in "
        f"{', '.join(map(str, candidates)) or 'no folder'}); download the COCO 2014 images and set "
        "data.images_dir=<their folder>, or use vector features (data.grid=null)")


def ensure_lite0_grid(root: str | Path, images_dir: str | Path | None = None,
                      image_size: int = LITE0_SIZE) -> Path:
    """Extract the ``lite0`` grid features of both splits of the data folder ``root`` unless they are current;
    written to a temporary folder and renamed into place (a failed run leaves nothing). Returns the folder."""
    root = Path(root).expanduser().resolve()
    folder = grid_folder(root, "lite0")
    manifest = _manifest(root, image_size)
    if _current(folder, manifest):
        return folder
    from visgrad.models.efficientnet_lite0 import load_efficientnet_lite0

    model = load_efficientnet_lite0()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{os.getpid()}-", dir=root.parent))
    try:
        for split in SPLITS:
            grids = [lite0_grid(chunk, model, image_size) for chunk in split_images(root, split, images_dir)]
            with h5py.File(tmp / grid_file(split), "w") as f:
                f.create_dataset("features", data=np.concatenate(grids).astype(np.float16))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _current(folder: Path, manifest: dict) -> bool:
    try:
        found = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return found == manifest and all((folder / grid_file(s)).is_file() for s in SPLITS)


def load_grid(root: str | Path, split: str, source: str, images_dir: str | Path | None = None) -> np.ndarray:
    """The ``source`` grid of a split, in memory: lite0 float16 (N, 8, 8, 80), pixels uint8 (N, S, S, 3),
    lite0_pooled float32 (N, 80)."""
    if source not in GRID_SOURCES:
        raise ValueError(f"grid must be one of {GRID_SOURCES} or null, got {source!r}")
    if source == "pixels":
        return np.concatenate(list(split_images(root, split, images_dir)))
    path = ensure_lite0_grid(root, images_dir) / grid_file(split)
    try:
        with h5py.File(path, "r") as f:
            grid = f["features"][()]
    except PermissionError as err:
        raise CaptionDataError(unreadable(path, err)) from err
    except H5_ERRORS as err:
        raise CaptionDataError(
            f"{path} is not a readable grid file ({' '.join(str(err).split())}); remove the folder "
            f"{path.parent} and the next run extracts it again from {Path(root)}") from err
    return grid.astype(np.float32).mean((1, 2)) if source == "lite0_pooled" else grid
