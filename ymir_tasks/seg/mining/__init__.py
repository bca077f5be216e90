"""RSAL and RIPU mining for semantic segmentation (see scoring.py for the decisions)."""
