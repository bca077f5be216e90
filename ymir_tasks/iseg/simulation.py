"""Instance segmentation in ``ymir-executor simulate``: mask AP@0.5 and mask AP50 per class,
classes from seg-coco."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from ..common.simulation import coco_image_classes, epochs_for

METRIC = "maskAP"
STRATEGIES = ("random", "mask_entropy", "aldd", "entropy", "cald")

image_classes = coco_image_classes


def class_metrics(evaluation: Dict[str, Any], class_names: Sequence[str]) -> Dict[str, float]:
    per = (evaluation.get("mask") or {}).get("AP50_by_class") or {}
    return {n: float(per.get(n, 0.0) or 0.0) for n in class_names}


def equal_compute(iters: int, n_labelled: int, train: Dict[str, Any]) -> Dict[str, Any]:
    return epochs_for(iters, n_labelled, int(train.get("samples_per_gpu", 16)))
