"""The images a visualization task works on (``task.images``), as one preprocessed batch.

- ``shapes``: the `shapes` validation images, with their labels and object masks (for measured quality);
- ``samples``: real photos that ship offline (:data:`SAMPLE_PHOTOS`: scikit-image's cat, coffee, astronaut,
  rocket, motorcycle and cameraman, matplotlib's Grace Hopper);
- a path to an image, a folder of images, or a list of them;
- CS231n's ``imagenet_val_25.npz`` (arrays ``X`` uint8 (N, 224, 224, 3) and ``y`` labels), with its labels;

The caller chooses the default (``tasks/inputs.py``: ``shapes`` for the shapes classifier, ``samples`` for
ImageNet classifiers).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from visgrad.errors import unreadable
from visgrad.images import IMAGENET, ImageError, Normalization, list_images, load_image, preprocess

# Photos that ship offline: scikit-image's bundled data (motorcycle = the left view of stereo_motorcycle)
# and matplotlib's sample grace_hopper.jpg.
SAMPLE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "grace_hopper", "camera")


@dataclass
class InputBatch:
    """images (N, 3, S, S) normalised; labels (N,) true classes or None; masks (N, S, S) bool or None."""

    images: torch.Tensor
    names: list[str]
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


def square_preprocess(img: Image.Image | str | Path, size: int, norm: Normalization = IMAGENET,
                      name: str | None = None) -> torch.Tensor:
    """Resize the shorter side to ``size``, center-crop to a square and normalise: (1, 3, size, size)."""
    return TF.center_crop(preprocess(img, size, norm, name=name), [size, size])


def shapes_inputs(root: str | Path, dataset: dict, size: int, limit: int | None,
                  norm: Normalization = IMAGENET) -> InputBatch:
    """The first ``limit`` `shapes` validation images (generated into ``root`` if needed) at ``size``."""
    from visgrad.data.shapes import ensure_shapes, load_shapes_images

    data = load_shapes_images(ensure_shapes(root, **dataset), "val")
    count = len(data.labels) if limit is None else min(limit, len(data.labels))
    images = norm.normalize(torch.from_numpy(data.images[:count]).permute(0, 3, 1, 2).float() / 255)
    masks = torch.from_numpy(data.masks[:count])
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        masks = F.interpolate(masks[:, None].float(), size=(size, size), mode="nearest")[:, 0].bool()
    names = [f"val {i}" for i in range(count)]
    return InputBatch(images, names, torch.from_numpy(data.labels[:count]).long(), masks)


def sample_photo(name: str) -> Image.Image:
    """One of :data:`SAMPLE_PHOTOS` as a PIL RGB image (grayscale ``camera`` as RGB)."""
    if name == "grace_hopper":
        from matplotlib import cbook

        return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    import skimage.data

    array = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return load_image(Image.fromarray(array))


def sample_inputs(size: int, limit: int | None, norm: Normalization = IMAGENET) -> InputBatch:
    """The sample photos (:data:`SAMPLE_PHOTOS`, no download), preprocessed to (N, 3, size, size)."""
    names = list(SAMPLE_PHOTOS[:limit])
    return InputBatch(torch.cat([square_preprocess(sample_photo(name), size, norm) for name in names]), names)


def file_inputs(paths: str | Path | Sequence[str | Path], size: int, limit: int | None,
                norm: Normalization = IMAGENET) -> InputBatch:
    """Images from paths and folders (grayscale and RGBA converted), as (N, 3, size, size)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = [file for path in paths for file in list_images(path)][:limit]
    images = [square_preprocess(load_image(file), size, norm, name=f"task.images: {file}") for file in files]
    return InputBatch(torch.cat(images), [Path(file).name for file in files])


def npz_inputs(path: str | Path, size: int, limit: int | None, norm: Normalization = IMAGENET) -> InputBatch:
    """CS231n's ImageNet sample file: images ``X`` (N, H, W, 3) or (N, H, W) uint8 and true labels ``y`` (N,).
    ``ImageError`` naming the file if it is missing, unreadable, not an ``.npz`` archive or holds other
    arrays."""
    path = Path(path).expanduser()
    broken = ImageError(f"{path} is not a readable .npz archive (truncated, corrupt or another kind of "
                        "file); give CS231n's imagenet_val_25.npz, or images")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a single .npy array
            raise broken
        with data:
            arrays = {key: data[key][:limit] for key in ("X", "y") if key in data.files}
            held = ", ".join(data.files) or "nothing"
    except OSError as err:
        raise ImageError(unreadable(path, err) if err.errno is not None else str(broken)) from err
    except (ValueError, EOFError, zipfile.BadZipFile) as err:  # numpy's and zipfile's words for broken files
        raise broken from err
    if len(arrays) < 2:
        raise ImageError(f"{path} must hold the arrays X (images) and y (labels); it holds {held}")
    images, labels = arrays["X"], arrays["y"]
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ImageError(f"{path}: X must hold uint8 images (N, H, W, 3) or (N, H, W), not {images.dtype} "
                         f"{images.shape}")
    if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu":
        raise ImageError(f"{path}: y must hold one integer label per image of X ({len(images)}), not "
                         f"{labels.dtype} {labels.shape}")
    batch = torch.cat([square_preprocess(Image.fromarray(x), size, norm) for x in images])
    return InputBatch(batch, [f"{path.stem} {i}" for i in range(len(batch))], torch.as_tensor(labels).long())


def load_inputs(
    spec: str | Sequence[str],
    size: int,
    limit: int | None = None,
    shapes_root: str | Path = "data/shapes",
    shapes_dataset: dict | None = None,
    num_classes: int | None = None,
    classifier_name: str = "this classifier",
    norm: Normalization = IMAGENET,
) -> InputBatch:
    """Resolve ``task.images`` (see the module docstring) to a batch of (N, 3, size, size) images,
    normalised with the classifier's ``norm``.

    ``num_classes``: the classifier's class count, against which the labels of an ``.npz`` are checked.
    """
    if spec == "shapes":
        return shapes_inputs(shapes_root, dict(shapes_dataset or {}), size, limit, norm)
    if spec == "samples":
        return sample_inputs(size, limit, norm)
    if isinstance(spec, (str, Path)) and str(spec).endswith(".npz"):
        batch = npz_inputs(spec, size, limit, norm)
        labels = batch.labels
        if num_classes is not None and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ImageError(f"labels y in {spec} are not classes of {classifier_name} "
                             f"(0..{num_classes - 1}); use an ImageNet classifier")
        return batch
    return file_inputs(spec, size, limit, norm)
