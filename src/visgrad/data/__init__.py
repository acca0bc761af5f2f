"""Captioning data: the CS231n COCO folder format, the synthetic `shapes` dataset, and the vocabulary.

Names are imported from their modules on first use, so that ``python -m visgrad.data.shapes`` runs cleanly
and the generator and loaders do not pull in Lightning.
"""

import importlib

_EXPORTS = {
    "CaptionDataError": "coco",
    "load_coco_data": "coco",
    "ShapesImages": "shapes",
    "ensure_shapes": "shapes",
    "load_shapes_images": "shapes",
    "decode_captions": "vocab",
    "CaptionDataModule": "datamodule",
    "CaptionDataset": "datamodule",
    "EvalSet": "datamodule",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'visgrad.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"visgrad.data.{_EXPORTS[name]}"), name)
