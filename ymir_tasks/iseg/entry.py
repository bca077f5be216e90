"""Entrypoints of the instance-segmentation kind."""
from .infer import infer  # noqa: F401
from .mining import mine  # noqa: F401
from .train import train  # noqa: F401
