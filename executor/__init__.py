"""YMIR executor contract layer: no torch at import time."""

__version__ = "0.1.0"
