"""Captioning data: the CS231n COCO folder format, the synthetic `shapes` dataset, and the vocabulary."""
