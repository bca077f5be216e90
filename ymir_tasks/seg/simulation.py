"""Segmentation in ``ymir-executor simulate``: mIoU and IoU per class, classes from seg-coco."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from executor.annotations import CocoSegReader
from executor.records import IndexEntry

from ..common.simulation import iterations_for

METRIC = "mIoU"
STRATEGIES = ("random", "RSAL", "RIPU")


def image_classes(entries: Sequence[IndexEntry], class_names: Sequence[str]) -> List[List[int]]:
    readers: Dict[str, CocoSegReader] = {}
    out = []
    for e in entries:
        reader = readers.get(e.annotation) or readers.setdefault(e.annotation, CocoSegReader(e.annotation, class_names))
        out.append(reader.classes_of(e.image))
    return out


def class_metrics(evaluation: Dict[str, Any], class_names: Sequence[str]) -> Dict[str, float]:
    per = evaluation.get("IoU") or {}
    return {n: float(per.get(n, 0.0) or 0.0) for n in class_names}


def equal_compute(iters: int, n_labelled: int, train: Dict[str, Any]) -> Dict[str, Any]:
    return iterations_for(iters)
