"""visgrad: recurrent networks and image gradients (CS231n assignment 3) as a Lightning + Hydra framework."""

__version__ = "0.1.0"
