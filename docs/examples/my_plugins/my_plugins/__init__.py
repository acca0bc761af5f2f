"""A user's own visgrad extensions: a GRU cell, Grad-CAM and an occlusion task (docs/extending.md)."""
