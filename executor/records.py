"""Dataclasses for what the readers return (the contract's dataset structures)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass(frozen=True)
class IndexEntry:
    """One line of an index file. Paths are local (already mapped from /in)."""

    image: str
    annotation: Optional[str]  # None for candidate-index.tsv
    line: int  # 1-based line number in the index file
    raw_image: str = ""  # the path exactly as written in the index file
    raw_annotation: Optional[str] = None  # the annotation's path as written there


@dataclass
class DetObject:
    """One box. Continuous pixel coordinates with exclusive x2/y2.

    YMIR's ark and voc coordinates are inclusive (``xmax = x + w - 1``); readers
    convert with ``x2 = xmax + 1`` so that ``w = x2 - x1`` everywhere.
    """

    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    quality: float = -1.0
    rotate_angle: float = 0.0

    @property
    def w(self) -> float:
        return self.x2 - self.x1

    @property
    def h(self) -> float:
        return self.y2 - self.y1


@dataclass
class DetAnnotation:
    image: str
    annotation: Optional[str]
    objects: List[DetObject] = field(default_factory=list)
    width: Optional[int] = None
    height: Optional[int] = None


ANNOTATION_FORMATS = ("ark", "voc", "coco", "seg-coco", "seg-mask")
