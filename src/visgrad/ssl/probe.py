"""Linear probes: how much a frozen encoder's features tell of the class with few labels (as SimCLR's).

The encoder's features (``net.embed``) of the training and val images are standardised with the training
features' mean and std (no labels needed), a multinomial logistic regression (L-BFGS,
:func:`visgrad.data.shapes_probe.fit_probe`) is fitted on a class-balanced random ``fraction`` of the
labelled training images, and its val accuracy is the score: the mean (and std) over ``repeats`` draws of
the labelled subset, so that 1% of the labels (15 digits) is not one lucky draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from visgrad.data.shapes_probe import fit_probe


@dataclass(frozen=True)
class ProbeScore:
    """Val accuracy of the probes at one label fraction: mean and std over the draws, labelled images used."""

    mean: float
    std: float
    num_labels: int


def label_subset(labels: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """Indices of a class-balanced random ``fraction`` of ``labels`` (N,): round(fraction n_c) of the n_c
    images of each class c, at least one. Sorted."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    picks = []
    for c in labels.unique():
        members = (labels == c).nonzero().squeeze(1)
        count = max(1, round(fraction * len(members)))
        picks.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(picks).sort().values


def standardise(train: Tensor, *others: Tensor) -> list[Tensor]:
    """``train`` (N, E) and ``others`` centred and scaled by the training features' per-dimension mean and
    std (a constant dimension keeps scale 1)."""
    mean, std = train.mean(dim=0), train.std(dim=0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return [(x - mean) / std for x in (train, *others)]


def probe_scores(train_x: Tensor, train_y: Tensor, val_x: Tensor, val_y: Tensor, num_classes: int,
                 fractions: list[float], repeats: int = 3, weight_decay: float = 1e-3,
                 seed: int = 0) -> dict[float, ProbeScore]:
    """``{fraction: ProbeScore}``: linear probes on features train_x (N, E) / val_x (M, E) with labels
    train_y (N,) / val_y (M,). A fraction of 1 is one fit on every label (std 0)."""
    train_x, val_x = standardise(train_x.double(), val_x.double())
    scores = {}
    for fraction in fractions:
        generator = torch.Generator().manual_seed(seed)
        accs, used = [], 0
        for _ in range(1 if fraction == 1 else repeats):
            rows = label_subset(train_y, fraction, generator)
            probe = fit_probe(train_x[rows].float(), train_y[rows], num_classes, weight_decay=weight_decay)
            with torch.no_grad():
                accs.append((probe(val_x.float()).argmax(dim=1) == val_y).float().mean().item())
            used = len(rows)
        values = torch.tensor(accs, dtype=torch.float64)
        scores[fraction] = ProbeScore(values.mean().item(), values.std(unbiased=False).item(), used)
    return scores
