"""Sanity checks for saliency maps (Adebayo et al. 2018): does a map depend on the model's weights?

**Model-parameter randomisation.** The network is cut into blocks (:func:`randomization_blocks`: the
logits layer, ..., the stem), and a copy of it (:class:`Randomizer`; the trained model is never written)
has its blocks replaced by freshly initialised ones (:func:`fresh_model`), either *cascading* from the
logits down to the stem, block after block, or *independently*, one block at a time. A method whose maps
hardly change when the weights they explain are replaced by noise is not explaining the model.

**Similarity** of a map to the trained model's map of the same image (:func:`similarities`), as in the
paper:

- ``spearman_abs`` / ``spearman_signed``: Spearman's rank correlation of the absolute / signed maps (ties
  ranked by their mean rank; a constant map correlates 0 with anything);
- ``ssim``: the structural similarity (scikit-image; Gaussian window sigma 1.5, data range 1) of the
  maps shown, i.e. |map| divided by its 99th percentile and clipped to [0, 1];
- ``hog``: the Pearson correlation of the histograms of oriented gradients (scikit-image ``hog``: 9
  orientations, 16-pixel cells, 2 x 2 blocks) of the maps shown.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from skimage.feature import hog
from skimage.metrics import structural_similarity
from torch import nn

from visgrad.models.efficientnet_lite0 import EfficientNetLite0

MEASURES = ("spearman_abs", "spearman_signed", "ssim", "hog")
_CONTAINERS = (nn.Sequential, nn.ModuleList)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Block:
    """A unit of randomisation: ``name`` (its first module's name) and the names of its modules."""

    name: str
    modules: tuple[str, ...]


def randomization_blocks(model: nn.Module) -> list[Block]:
    """The blocks of ``model`` from the logits down to the input: its top-level children, with
    ``nn.Sequential`` / ``nn.ModuleList`` children taken one level down; children without parameters are
    skipped and a normalisation layer joins the block before it. EfficientNet-Lite0: ``_fc``,
    ``_conv_head``, ``_blocks.15`` ... ``_blocks.0``, ``_conv_stem`` (19); the shapes CNN: its linear layer
    and its four conv + BatchNorm blocks."""
    units: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, _CONTAINERS):
            units += [(f"{name}.{inner}", module) for inner, module in child.named_children()]
        else:
            units.append((name, child))
    blocks: list[list[str]] = []
    for name, module in units:
        if next(module.parameters(), None) is None:
            continue
        if isinstance(module, _NORMS) and blocks:
            blocks[-1].append(name)
        else:
            blocks.append([name])
    return [Block(names[0], tuple(names)) for names in reversed(blocks)]


def fresh_model(model: nn.Module, seed: int) -> nn.Module:
    """A freshly initialised network of ``model``'s architecture, drawn with ``seed`` (the global random
    state is left as it was), on ``model``'s device, in eval mode.

    - EfficientNet-Lite0: a new ``EfficientNetLite0`` (PyTorch's default initialisation of every layer,
      BatchNorm gamma 1, beta 0, statistics 0 and 1), its BatchNorms folded if ``model``'s are: so a
      randomised convolution has a fresh Kaiming-uniform weight (times 1 / sqrt(1 + eps)) and bias 0;
    - any other network: a copy whose every module with ``reset_parameters`` (convolutions, linear and
      normalisation layers) is reset, as a new instance of it would start.
    """
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, EfficientNetLite0):
            fresh = EfficientNetLite0(num_classes=model._fc.out_features).eval()
            if isinstance(model._bn0, nn.Identity):
                fresh.fold_batchnorm()
        else:
            fresh = copy.deepcopy(model).cpu()
            for module in fresh.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return fresh.eval().requires_grad_(False).to(device)


class Randomizer:
    """A copy ``model`` of a trained network whose blocks are swapped for the blocks of ``fresh`` (same
    architecture; :func:`fresh_model`) by :meth:`randomize` and back by :meth:`restore`."""

    def __init__(self, trained: nn.Module, fresh: nn.Module) -> None:
        self.model = copy.deepcopy(trained)
        self._trained = trained.state_dict()
        self._fresh = fresh.state_dict()
        self._state = self.model.state_dict()

    def module(self, original: nn.Module, trained: nn.Module) -> nn.Module | None:
        """The module of the copy that is ``original`` in ``trained`` (e.g. the feature layer), or None."""
        names = {id(module): name for name, module in trained.named_modules()}
        return self.model.get_submodule(names[id(original)]) if id(original) in names else None

    @torch.no_grad()
    def _load(self, block: Block, source: dict[str, torch.Tensor]) -> None:
        for key, value in self._state.items():
            if any(key.startswith(prefix + ".") for prefix in block.modules):
                value.copy_(source[key])

    def randomize(self, block: Block) -> None:
        self._load(block, self._fresh)

    def restore(self, block: Block) -> None:
        self._load(block, self._trained)


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1 .. P of each row of ``values`` (N, P), tied values sharing their mean rank (SciPy's
    ``rankdata``). (N, P) float64."""
    return torch.from_numpy(rankdata(values.detach().cpu().to(torch.float64).numpy(), axis=1))


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the rows of a and b (N, P): (N,) float64; 0 where a row is constant."""
    a = a.to(torch.float64) - a.to(torch.float64).mean(dim=1, keepdim=True)
    b = b.to(torch.float64) - b.to(torch.float64).mean(dim=1, keepdim=True)
    scale = (a.norm(dim=1) * b.norm(dim=1))
    return torch.where(scale > 0, (a * b).sum(dim=1) / scale.clamp_min(1e-300), torch.zeros_like(scale))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of maps a and b (N, H, W), image by image: (N,) float64."""
    return pearson(average_ranks(a.flatten(1)), average_ranks(b.flatten(1)))


def shown(maps: torch.Tensor) -> np.ndarray:
    """Maps (N, H, W) as shown: |map| over its 99th percentile, clipped to [0, 1]. (N, H, W) float64."""
    values = maps.detach().abs().flatten(1).to(torch.float64)
    top = torch.quantile(values, 0.99, dim=1, keepdim=True)
    scaled = torch.where(top > 0, values / top.clamp_min(1e-300), torch.zeros_like(values)).clamp(0, 1)
    return scaled.view(maps.shape).cpu().numpy()


def hog_features(images: np.ndarray) -> np.ndarray:
    """HOG descriptors (N, F) of maps (N, H, W) in [0, 1] (9 orientations, 16-pixel cells, 2 x 2 blocks)."""
    return np.stack([hog(image, orientations=9, pixels_per_cell=(16, 16), cells_per_block=(2, 2))
                     for image in images])


@dataclass
class Reference:
    """What the maps of the trained model are compared with: absolute and signed maps (N, H, W), the maps
    shown (N, H, W) and their HOG descriptors (N, F)."""

    absolute: torch.Tensor
    signed: torch.Tensor
    shown: np.ndarray
    hog: np.ndarray

    @classmethod
    def of(cls, absolute: torch.Tensor, signed: torch.Tensor) -> Reference:
        images = shown(absolute)
        return cls(absolute.abs(), signed, images, hog_features(images))


def similarities(reference: Reference, absolute: torch.Tensor, signed: torch.Tensor) -> dict[str, np.ndarray]:
    """Each of :data:`MEASURES` (N,) between the maps of a randomised model (absolute and signed, (N, H, W))
    and the trained model's ``reference``."""
    images = shown(absolute)
    features = hog_features(images)
    return {
        "spearman_abs": spearman(reference.absolute, absolute.abs()).cpu().numpy(),
        "spearman_signed": spearman(reference.signed, signed).cpu().numpy(),
        "ssim": np.array([structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False)
                          for a, b in zip(reference.shown, images, strict=True)]),
        "hog": pearson(torch.from_numpy(reference.hog), torch.from_numpy(features)).numpy(),
    }


def group_blocks(blocks: Sequence[Block], per_step: int) -> list[list[Block]]:
    """Consecutive groups of ``per_step`` blocks (the last one may be smaller), from the logits down."""
    return [list(blocks[i : i + per_step]) for i in range(0, len(blocks), per_step)]
