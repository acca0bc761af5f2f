"""``python visualize.py task=feature_inversion``: reconstruct the content image from its features at one
layer, from noise, with no style term (Mahendran & Vedaldi 2015).

It is the style-transfer optimisation with ``style_weights: 0`` (``conf/task/feature_inversion.yaml``
composes ``style_transfer.yaml``), so it shares that runner.
"""

from visgrad.tasks.style_transfer import run

__all__ = ["run"]
