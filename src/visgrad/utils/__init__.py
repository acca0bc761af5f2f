"""Small helpers shared by the Hydra entry points."""

from visgrad.utils.config import print_config_tree, resolve_device

__all__ = ["print_config_tree", "resolve_device"]
