"""``python visualize.py task=texture``: synthesise a texture by matching only the style Gram matrices,
from noise (Gatys et al. 2015).

It is style transfer (:mod:`visgrad.tasks.style_transfer`) without a content image or term: the same
options with other defaults (``conf/task/texture.yaml`` composes ``style_transfer.yaml``).
"""

from visgrad.tasks import style_transfer
from visgrad.tasks.lifecycle import Task

TextureOptions = style_transfer.with_defaults(
    style_transfer.StyleOptions, "TextureOptions", "``task=texture``: style transfer from noise, no content.",
    content=None, content_weight=0, init="noise", tv_weight=0.05, steps=200, lr=0.05, decayed_lr=0.01,
    decay_lr_at=150,
)

TASK = Task("texture", "texture synthesis", style_transfer.prepare, style_transfer.run, TextureOptions,
            uses_classifier=False)
