"""Self-supervised learning: SimCLR (Chen et al., 2020) as in CS231n, and what its features are worth.

- :mod:`~visgrad.ssl.losses`: the course's ``sim``, ``simclr_loss_naive``, ``sim_positive_pairs``,
  ``compute_sim_matrix``, ``simclr_loss_vectorized``;
- :mod:`~visgrad.ssl.augment`: ``Augment``, batched random views (crop, flip, rotation, colour jitter, grey);
- :mod:`~visgrad.ssl.module`: ``SimCLRModule`` (pre-training an injected encoder) and ``ProjectionHead``;
- :mod:`~visgrad.ssl.monitor`: ``FeatureMonitor`` (kNN accuracy during training, TensorBoard projector,
  t-SNE / PCA maps);
- :mod:`~visgrad.ssl.probe`: linear probes on frozen features with a fraction of the labels
  (``python visualize.py task=linear_probe``).
"""

from visgrad.ssl.augment import Augment
from visgrad.ssl.losses import (
    compute_sim_matrix,
    sim,
    sim_positive_pairs,
    simclr_loss_naive,
    simclr_loss_vectorized,
)
from visgrad.ssl.module import ProjectionHead, SimCLRModule
from visgrad.ssl.monitor import FeatureMonitor

__all__ = [
    "Augment",
    "FeatureMonitor",
    "ProjectionHead",
    "SimCLRModule",
    "compute_sim_matrix",
    "sim",
    "sim_positive_pairs",
    "simclr_loss_naive",
    "simclr_loss_vectorized",
]
