"""Sample quality of a generator (GAN or diffusion), judged by a small classifier trained on the same
real images.

- ``confident``: the fraction of samples the judge classifies with probability >= 0.9 (recognisable
  images; the GAN analogue of the Inception Score's sharp predictions).
- ``entropy``: the entropy of the histogram of predicted classes divided by its uniform maximum
  ``log K`` (1: every class equally often; 0: one class only, i.e. mode collapse).
- ``precision`` and ``recall`` (Kynkäänniemi et al. 2019, k = 3): the fraction of samples that fall inside
  the real images' feature manifold (the union of balls around each real feature reaching its k-th nearest
  real neighbour: fidelity), and the fraction of real images inside the samples' manifold (coverage);
- ``collapsed``: the fraction of samples far outside the real images' features: farther from every real
  feature than 99% of the real features are from their k-th nearest real neighbour (the 0.99 quantile of
  the radii of the precision manifold, put around every real feature). On the digits no held-out real
  image is (0 of 300), while white blobs and uniform noise are: "no collapsed samples" is
  ``collapsed == 0``;
- ``fd``: the Fréchet distance between Gaussians fitted to the judge's penultimate features of real
  and generated images, ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` (Heusel et al. 2017).

This is the FID recipe on our own feature extractor. It differs from Inception-FID in that the features
are the 64-d penultimate layer of a small CNN trained on the GAN's own training images (not the 2048-d
pool layer of Inception-v3 trained on ImageNet), and that both sides have a few hundred samples (FID
uses 10k-50k; the estimate is biased upwards at small sample sizes). So the numbers rank runs on the
same data and sample size, but are not comparable with published FIDs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from visgrad.data.labelled_images import LabelledImages
from visgrad.images import Normalization
from visgrad.models.classifier import Classifier

CONFIDENCE = 0.9
NEIGHBOURS = 3  # k of precision and recall
COLLAPSE_QUANTILE = 0.99  # of the real k-NN radii: the distance beyond which a sample counts as collapsed
SCORES = ("confident", "entropy", "fd", "precision", "recall", "collapsed")  # the keys of SampleQuality.score


class Judge(nn.Module):
    """A small CNN classifier: images (N, C, S, S) in [-1, 1] -> logits (N, K); ``features`` gives the
    penultimate (N, 64) ReLU features. Conv(C, 16, 3) ReLU MaxPool 2 -> Conv(16, 32, 3) ReLU MaxPool 2 ->
    Linear(32*(S/4)^2, 64) ReLU -> Linear(64, K)."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 64) -> None:
        super().__init__()
        channels, size = int(image_shape[0]), int(image_shape[1])
        self.image_size = size
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (size // 4) ** 2, width),
            nn.ReLU(),
        )
        self.head = nn.Linear(width, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


class GreyJudge(nn.Module):
    """The judge on RGB inputs in [-1, 1] (N, 3, S, S): their channel mean (N, 1, S, S) -> logits (N, K)."""

    def __init__(self, judge: Judge) -> None:
        super().__init__()
        self.judge = judge

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.judge(images.mean(dim=1, keepdim=True))


def judge_classifier(judge: Judge, class_names, name: str = "judge") -> Classifier:
    """The judge as a :class:`~visgrad.models.classifier.Classifier` for the image-gradient tasks (attacks,
    saliency): RGB pixels in [0, 1] normalised to [-1, 1] (mean = std = 0.5), averaged to grey; its
    feature layer is the second convolution's ReLU (N, 32, S/2, S/2)."""
    model = GreyJudge(judge).eval().requires_grad_(False)
    grey = Normalization((0.5,) * 3, (0.5,) * 3)
    return Classifier(name, model, list(class_names), judge.image_size, grey, judge.body[4])


def train_judge(
    data: LabelledImages, epochs: int = 10, batch_size: int = 64, lr: float = 2e-3, seed: int = 0
) -> Judge:
    """Train a :class:`Judge` on ``data`` with Adam and cross-entropy; returned frozen, in eval mode.
    Uses its own seeded RNG state (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = Judge(tuple(data.images.shape[1:]), len(data.class_names))
        optimizer = torch.optim.Adam(judge.parameters(), lr=lr)
        for _ in range(epochs):
            for idx in torch.randperm(len(data.labels)).split(batch_size):
                loss = F.cross_entropy(judge(data.images[idx]), data.labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    judge.eval().requires_grad_(False)
    return judge


@torch.no_grad()
def judge_outputs(
    judge: Judge, images: torch.Tensor, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probs (N, K), features (N, F))`` of ``images`` (N, C, S, S), in batches, on the judge's device."""
    device = next(judge.parameters()).device
    probs, feats = [], []
    for chunk in images.split(batch_size):
        features = judge.features(chunk.to(device))
        probs.append(judge.head(features).softmax(dim=1))
        feats.append(features)
    return torch.cat(probs), torch.cat(feats)


def confident_fraction(probs: torch.Tensor, threshold: float = CONFIDENCE) -> float:
    """Fraction of rows of ``probs`` (N, K) whose largest probability is >= ``threshold``."""
    return float((probs.max(dim=1).values >= threshold).float().mean())


def class_entropy(probs: torch.Tensor) -> float:
    """Entropy of the histogram of ``probs.argmax(1)`` over the K classes, divided by ``log K``: in [0, 1]."""
    counts = torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1]).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum() / math.log(probs.shape[1]))


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and covariance (F, F) (unbiased) of ``features`` (N, F), in float64."""
    x = features.double()
    return x.mean(dim=0), torch.cov(x.T)


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2): ``|mu1 - mu2|^2 + Tr(s1) + Tr(s2) - 2 Tr
    ((s1 s2)^(1/2))``. The trace of the square root is that of the symmetric ``s1^(1/2) s2 s1^(1/2)``
    (same eigenvalues), from its eigenvalues, which is stable for singular covariances."""
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    w, v = torch.linalg.eigh(sigma1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    middle = root1 @ sigma2 @ root1
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * cross)


def knn_radii(features: torch.Tensor, k: int = NEIGHBOURS) -> torch.Tensor:
    """Distance (N,) from each row of ``features`` (N, F) to its k-th nearest other row."""
    distances = torch.cdist(features.double(), features.double())
    return distances.kthvalue(k + 1, dim=1).values  # the 1st smallest is the row itself (0)


def manifold_fraction(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of ``points`` (N, F) within ``radii[i]`` (M,) of some ``centres[i]`` (M, F)."""
    inside = torch.cdist(points.double(), centres.double()) <= radii[None, :]
    return float(inside.any(dim=1).double().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake`` (N, F) against ``real`` (M, F)
    features: (fraction of fakes in the real manifold, fraction of reals in the fake manifold)."""
    precision = manifold_fraction(fake, real, knn_radii(real, k))
    return precision, manifold_fraction(real, fake, knn_radii(fake, k))


def collapsed_fraction(
    real: torch.Tensor, fake: torch.Tensor, k: int = NEIGHBOURS, quantile: float = COLLAPSE_QUANTILE
) -> float:
    """Fraction of ``fake`` (N, F) farther from every row of ``real`` (M, F) than the ``quantile`` of
    ``knn_radii(real, k)`` (linear interpolation, as ``numpy.quantile``)."""
    nearest = torch.cdist(fake.double(), real.double()).min(dim=1).values
    return float((nearest > knn_radii(real, k).quantile(quantile)).double().mean())


class SampleQuality:
    """Scores image batches against ``reference`` real images with a judge trained on them.

    ``score(images)`` returns ``{"confident", "entropy", "fd", "precision", "recall", "collapsed"}`` for
    images (N, C, S, S) in [-1, 1].
    """

    def __init__(self, reference: LabelledImages, judge: Judge | None = None, **train_kwargs) -> None:
        self.judge = judge if judge is not None else train_judge(reference, **train_kwargs)
        _, self.features = judge_outputs(self.judge, reference.images)
        self.mu, self.sigma = gaussian_stats(self.features)

    def accuracy(self, data: LabelledImages) -> float:
        """The judge's accuracy on labelled ``data``."""
        probs, _ = judge_outputs(self.judge, data.images)
        return float((probs.argmax(dim=1).cpu() == data.labels).float().mean())

    def score(self, images: torch.Tensor) -> dict[str, float]:
        probs, features = judge_outputs(self.judge, images)
        mu, sigma = gaussian_stats(features)
        precision, recall = precision_recall(self.features, features)
        return {
            "confident": confident_fraction(probs),
            "entropy": class_entropy(probs),
            "fd": frechet_distance(self.mu, self.sigma, mu.to(self.mu), sigma.to(self.sigma)),
            "precision": precision,
            "recall": recall,
            "collapsed": collapsed_fraction(self.features, features),
        }
