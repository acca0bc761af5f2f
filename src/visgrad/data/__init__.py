"""Captioning data: the CS231n COCO folder format, the synthetic `shapes` dataset, and the vocabulary.

``CaptionDataModule`` (and ``CaptionDataset``, ``EvalSet``) are imported on first use, so that the
generator and loaders (``visgrad.data.shapes``, ``visgrad.data.coco``) do not pull in Lightning.
"""

from visgrad.data.coco import CaptionDataError, load_coco_data
from visgrad.data.shapes import ShapesImages, ensure_shapes, load_shapes_images
from visgrad.data.vocab import decode_captions

_LAZY = ("CaptionDataModule", "CaptionDataset", "EvalSet")


def __getattr__(name: str):
    if name in _LAZY:
        from visgrad.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module 'visgrad.data' has no attribute {name!r}")


__all__ = [
    "CaptionDataError",
    "ShapesImages",
    "decode_captions",
    "ensure_shapes",
    "load_coco_data",
    "load_shapes_images",
    *_LAZY,
]
