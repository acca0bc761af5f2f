"""The fixed, hand-designed image feature extractor of the `shapes` dataset (no learned weights).

It plays the role of CS231n's VGG-16 fc7 features: ``extract_features`` maps each RGB image to a raw
vector (the ``*_vgg16_fc7.h5`` files) and ``Pca`` reduces it to 512 dimensions (``*_pca.h5``), fitted on
the training split. The raw vector of an (S, S, 3) image is the concatenation of

1. colour occupancy maps (5 x 16 x 16 = 1280): for each palette colour, the fraction of pixels of that
   colour in each cell of a 16 x 16 grid (a pixel has a palette colour when it is within
   ``COLOUR_TOLERANCE`` of it in RGB; the light background matches none);
2. three object slots (3 x 78 = 234): the connected regions of one colour (``scipy.ndimage.label``), sorted
   left to right by centroid; each slot holds presence, the colour one-hot (5), centroid x and y, bounding
   box width and height, sqrt(area), fill ratio of the box, top/bottom mass asymmetry, compactness
   (4 pi area / perimeter^2) and the region's mask resampled to 8 x 8 inside its box (64); empty slots are 0;
3. the object count one-hot (0..3 objects, 4);
4. only when more than these ``RAW_DIM`` = 1518 dimensions are asked for (``feature_dim``, e.g. 4096 as
   VGG-16's fc7): ``feature_dim - RAW_DIM`` random ReLU features ``relu(W @ v)`` of the vector v of blocks
   1-3, like a fully connected layer with fixed random weights; W's rows are standard normal / sqrt(RAW_DIM)
   from ``np.random.default_rng(PROJECTION_SEED)``, so a smaller ``feature_dim`` gives a prefix of a
   larger one's features.

Lengths are in units of the image size, so the extractor works for any image size. Block 2 is weighted by
``SLOT_WEIGHT`` so that the PCA keeps the per-object descriptors whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

PALETTE = np.array([(220, 40, 40), (40, 170, 60), (40, 80, 220), (235, 200, 30), (150, 60, 200)], np.float32)
COLOUR_TOLERANCE = 60.0
GRID = 16
MAX_OBJECTS = 3
PATCH = 8
MIN_REGION_PIXELS = 4
SLOT_WEIGHT = 4.0
SLOT_DIM = 1 + len(PALETTE) + 8 + PATCH * PATCH
RAW_DIM = len(PALETTE) * GRID * GRID + MAX_OBJECTS * SLOT_DIM + MAX_OBJECTS + 1
PROJECTION_SEED = 4096


def colour_masks(images: np.ndarray) -> np.ndarray:
    """Which pixels have which palette colour. images: uint8 (N, S, S, 3) -> bool (N, K, S, S)."""
    pixels = torch.from_numpy(images).float()  # (N, S, S, 3)
    palette = torch.from_numpy(PALETTE)  # (K, 3)
    dist2 = (pixels**2).sum(-1, keepdim=True) - 2 * pixels @ palette.T + (palette**2).sum(-1)  # (N, S, S, K)
    best, nearest = dist2.min(-1)
    masks = (nearest[..., None] == torch.arange(len(PALETTE))) & (best <= COLOUR_TOLERANCE**2)[..., None]
    return masks.permute(0, 3, 1, 2).numpy()


def _region_descriptor(region: np.ndarray, colour: int, size: int) -> np.ndarray:
    """The SLOT_DIM descriptor of one region. region: bool (S, S), True on the region's pixels."""
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = y1 - y0, x1 - x0
    area = len(ys)
    box = region[y0:y1, x0:x1]
    centre_y = (y0 + y1 - 1) / 2
    asymmetry = (np.count_nonzero(ys > centre_y) - np.count_nonzero(ys < centre_y)) / area
    perimeter = area - np.count_nonzero(ndimage.binary_erosion(box, border_value=0))
    compactness = 4 * np.pi * area / max(perimeter, 1) ** 2
    rows = ((np.arange(PATCH) + 0.5) * h / PATCH).astype(int)
    cols = ((np.arange(PATCH) + 0.5) * w / PATCH).astype(int)
    patch = box[np.ix_(rows, cols)]
    colour_onehot = np.eye(len(PALETTE))[colour]
    geometry = [
        xs.mean() / size,
        ys.mean() / size,
        w / size,
        h / size,
        np.sqrt(area) / size,
        area / (h * w),
        asymmetry,
        min(compactness, 2.0),
    ]
    return np.concatenate([[1.0], colour_onehot, geometry, patch.ravel()])


@functools.lru_cache(maxsize=2)
def _projection(extra: int) -> torch.Tensor:
    """float32 (extra, RAW_DIM): the fixed random weights of block 4."""
    rng = np.random.default_rng(PROJECTION_SEED)
    weights = rng.standard_normal((extra, RAW_DIM), dtype=np.float32) / np.float32(np.sqrt(RAW_DIM))
    return torch.from_numpy(weights)


def extract_features(images: np.ndarray, feature_dim: int = RAW_DIM, chunk: int = 128) -> np.ndarray:
    """Features of images. images: uint8 (N, S, S, 3) -> float32 (N, feature_dim), feature_dim >= RAW_DIM."""
    if feature_dim < RAW_DIM:
        raise ValueError(f"feature_dim must be at least RAW_DIM = {RAW_DIM}, got {feature_dim}")
    raw = _raw_features(images, chunk)
    if feature_dim == RAW_DIM:
        return raw
    # in float64, rounded once to float32: every column is the same whatever the width and the thread count
    # (a float32 product's rounding depends on both), so a smaller feature_dim gives an exact prefix
    extra = torch.relu(torch.from_numpy(raw).double() @ _projection(feature_dim - RAW_DIM).double().T)
    return np.concatenate([raw, extra.float().numpy()], axis=1)


def _raw_features(images: np.ndarray, chunk: int) -> np.ndarray:
    """Blocks 1-3. images: uint8 (N, S, S, 3) -> float32 (N, RAW_DIM)."""
    n, size = len(images), images.shape[1]
    out = np.zeros((n, RAW_DIM), np.float32)
    occupancy_dim = len(PALETTE) * GRID * GRID
    for start in range(0, n, chunk):
        masks = colour_masks(images[start : start + chunk])  # (B, K, S, S)
        pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(masks).float(), GRID)
        out[start : start + len(masks), :occupancy_dim] = pooled.flatten(1).numpy()
        for b, image_masks in enumerate(masks):
            regions = []
            for colour in np.flatnonzero(image_masks.any((1, 2))):
                labels, count = ndimage.label(image_masks[colour])
                for region_id in range(1, count + 1):
                    region = labels == region_id
                    if np.count_nonzero(region) >= MIN_REGION_PIXELS:
                        regions.append(_region_descriptor(region, colour, size))
            regions.sort(key=lambda d: d[1 + len(PALETTE)])  # left to right by centroid x
            row = out[start + b]
            for slot, descriptor in enumerate(regions[:MAX_OBJECTS]):
                offset = occupancy_dim + slot * SLOT_DIM
                row[offset : offset + SLOT_DIM] = SLOT_WEIGHT * descriptor
            row[occupancy_dim + MAX_OBJECTS * SLOT_DIM + min(len(regions), MAX_OBJECTS)] = 1.0
    return out


@dataclass(frozen=True)
class Pca:
    """A PCA projection fitted on training features: ``(x - mean) @ components.T / scale``.

    ``scale`` makes the projected training features have unit mean variance per dimension, and each
    component's sign is fixed (largest-magnitude loading positive) so the result is deterministic.
    """

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (K, D)
    scale: float

    @classmethod
    def fit(cls, features, dim: int, block: int = 4096) -> Pca:
        """Fit on float (N, D) features, keeping ``dim`` <= min(N, D) components.

        ``features`` is an array or anything sliced by rows into arrays (an h5py dataset): with N >= D it is
        read ``block`` rows at a time into the covariance (float64, about the first block's mean), so that
        memory stays O(D^2) for any N; with N < D the SVD of the (small) data is cheaper.
        """
        n, d = features.shape
        if dim > min(n, d):
            raise ValueError(
                f"cannot keep {dim} PCA components of {n} samples x {d} features; "
                "generate more training images"
            )
        if n < d:
            x = np.asarray(features[:], np.float64)
            mean = x.mean(0)
            _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
            variances, components = singular[:dim] ** 2 / n, vt[:dim]
        else:
            shift = np.asarray(features[:block], np.float64).mean(0)
            total, cross = np.zeros(d), np.zeros((d, d))
            for start in range(0, n, block):
                x = np.asarray(features[start : start + block], np.float64) - shift
                total += x.sum(0)
                cross += x.T @ x
            mean = shift + total / n
            covariance = cross / n - np.outer(total / n, total / n)
            eigenvalues, vectors = np.linalg.eigh(covariance)  # ascending
            variances, components = eigenvalues[::-1][:dim], vectors[:, ::-1][:, :dim].T
        signs = np.sign(components[np.arange(dim), np.abs(components).argmax(1)])
        components = components * signs[:, None]
        scale = float(np.sqrt(variances.clip(min=0).mean()))
        return cls(mean.astype(np.float32), components.astype(np.float32), scale)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Project float (N, D) features to float32 (N, K)."""
        return ((features - self.mean) @ self.components.T / self.scale).astype(np.float32)
