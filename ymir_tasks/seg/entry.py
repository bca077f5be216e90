"""Entrypoints of the segmentation kind (mining lands with its own issue)."""
from .infer import infer  # noqa: F401
from .train import train  # noqa: F401
