"""``python visualize.py task=texture``: synthesise a texture by matching only the style Gram matrices,
from noise (Gatys et al. 2015).

It is the style-transfer optimisation with ``content_weight: 0`` (``conf/task/texture.yaml`` composes
``style_transfer.yaml``), so it shares that runner.
"""

from visgrad.tasks.style_transfer import run

__all__ = ["run"]
