"""Entrypoints of the segmentation kind."""
from .infer import infer  # noqa: F401
from .mining.mine import mine  # noqa: F401
from .train import train  # noqa: F401
