"""Segmentation in ``ymir-executor simulate``: mIoU and IoU per class, classes from seg-coco."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from ..common.simulation import coco_image_classes, iterations_for

METRIC = "mIoU"
STRATEGIES = ("random", "RSAL", "RIPU")

image_classes = coco_image_classes


def class_metrics(evaluation: Dict[str, Any], class_names: Sequence[str]) -> Dict[str, float]:
    per = evaluation.get("IoU") or {}
    return {n: float(per.get(n, 0.0) or 0.0) for n in class_names}


def equal_compute(iters: int, n_labelled: int, train: Dict[str, Any]) -> Dict[str, Any]:
    return iterations_for(iters)
