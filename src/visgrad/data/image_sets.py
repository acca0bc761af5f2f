"""The images a visualization task works on (``task.images``), as one preprocessed batch.

- ``shapes``: the `shapes` validation images, with their labels and object masks (for measured quality);
- ``samples``: photos that ship with scikit-image (a cat, a cup of coffee, an astronaut, a rocket);
- a path to an image, a folder of images, or a list of them;
- CS231n's ``imagenet_val_25.npz`` (arrays ``X`` uint8 (N, 224, 224, 3) and ``y`` labels), with its labels;

The caller chooses the default (``tasks/runner.py``: ``shapes`` for the shapes classifier, ``samples`` for
ImageNet classifiers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from visgrad.images import ImageError, list_images, load_image, normalize, preprocess

SKIMAGE_SAMPLES = ("chelsea", "coffee", "astronaut", "rocket")


@dataclass
class InputBatch:
    """images (N, 3, S, S) normalised; labels (N,) true classes or None; masks (N, S, S) bool or None."""

    images: torch.Tensor
    names: list[str]
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


def square_preprocess(img: Image.Image | str | Path, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and center-crop to a square: (1, 3, size, size)."""
    return TF.center_crop(preprocess(img, size), [size, size])


def shapes_inputs(root: str | Path, dataset: dict, size: int, limit: int | None) -> InputBatch:
    """The first ``limit`` `shapes` validation images (generated into ``root`` if needed) at ``size``."""
    from visgrad.data.shapes import ensure_shapes, load_shapes_images

    data = load_shapes_images(ensure_shapes(root, **dataset), "val")
    count = len(data.labels) if limit is None else min(limit, len(data.labels))
    images = normalize(torch.from_numpy(data.images[:count]).permute(0, 3, 1, 2).float() / 255)
    masks = torch.from_numpy(data.masks[:count])
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        masks = F.interpolate(masks[:, None].float(), size=(size, size), mode="nearest")[:, 0].bool()
    names = [f"val {i}" for i in range(count)]
    return InputBatch(images, names, torch.from_numpy(data.labels[:count]).long(), masks)


def sample_inputs(size: int, limit: int | None) -> InputBatch:
    """Photos shipped with scikit-image (no download), preprocessed to (N, 3, size, size)."""
    import skimage.data

    names = list(SKIMAGE_SAMPLES[:limit])
    images = [square_preprocess(Image.fromarray(getattr(skimage.data, name)()), size) for name in names]
    return InputBatch(torch.cat(images), names)


def file_inputs(paths: str | Path | Sequence[str | Path], size: int, limit: int | None) -> InputBatch:
    """Images from paths and folders (grayscale and RGBA converted), as (N, 3, size, size)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = [file for path in paths for file in list_images(path)][:limit]
    images = [square_preprocess(load_image(file), size) for file in files]
    return InputBatch(torch.cat(images), [Path(file).name for file in files])


def npz_inputs(path: str | Path, size: int, limit: int | None) -> InputBatch:
    """CS231n's ImageNet sample file: images ``X`` (N, H, W, 3) uint8 and true labels ``y`` (N,)."""
    path = Path(path).expanduser()
    try:
        with np.load(path) as data:
            images, labels = data["X"][:limit], data["y"][:limit]
    except (OSError, ValueError, KeyError) as err:
        raise ImageError(f"cannot read {path} as an image archive with arrays X and y ({err})") from err
    batch = torch.cat([square_preprocess(Image.fromarray(np.asarray(x, np.uint8)), size) for x in images])
    return InputBatch(batch, [f"{path.stem} {i}" for i in range(len(batch))], torch.as_tensor(labels).long())


def load_inputs(
    spec: str | Sequence[str],
    size: int,
    limit: int | None = None,
    shapes_root: str | Path = "data/shapes",
    shapes_dataset: dict | None = None,
    num_classes: int | None = None,
    classifier_name: str = "this classifier",
) -> InputBatch:
    """Resolve ``task.images`` (see the module docstring) to a batch of (N, 3, size, size) images.

    ``num_classes``: the classifier's class count, against which the labels of an ``.npz`` are checked.
    """
    if spec == "shapes":
        return shapes_inputs(shapes_root, dict(shapes_dataset or {}), size, limit)
    if spec == "samples":
        return sample_inputs(size, limit)
    if isinstance(spec, (str, Path)) and str(spec).endswith(".npz"):
        batch = npz_inputs(spec, size, limit)
        labels = batch.labels
        if num_classes is not None and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels y in {spec} are not classes of {classifier_name} "
                             f"(0..{num_classes - 1}); use an ImageNet classifier")
        return batch
    return file_inputs(spec, size, limit)
