"""Neural style transfer, feature inversion and texture synthesis (Gatys et al. 2016; CS231n).

- :mod:`~visgrad.style.losses`: the CS231n losses (content, Gram-matrix style, total variation) and
  ``extract_features``;
- :mod:`~visgrad.style.objective`: the objective with precomputed targets and the pixel optimiser;
- :mod:`~visgrad.style.images`: content and style images (files, scikit-image pictures, a generated
  painting) and colour preservation.
"""

from visgrad.style.losses import content_loss, extract_features, gram_matrix, style_loss, tv_loss

__all__ = ["content_loss", "extract_features", "gram_matrix", "style_loss", "tv_loss"]
