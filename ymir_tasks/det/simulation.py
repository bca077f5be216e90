"""Detection in ``ymir-executor simulate``: AP@0.5 and AP50 per class, classes from ark / voc / coco."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from executor.records import IndexEntry

from ..common.simulation import epochs_for

METRIC = "mAP"
STRATEGIES = ("random", "aldd", "entropy", "cald")


def image_classes(entries: Sequence[IndexEntry], class_names: Sequence[str]) -> List[List[int]]:
    from .data import DetAnnotationSource

    source = DetAnnotationSource(class_names)
    return [sorted({o.class_id for o in source.objects(e)}) for e in entries]


def class_metrics(evaluation: Dict[str, Any], class_names: Sequence[str]) -> Dict[str, float]:
    per = evaluation.get("AP50_by_class") or {}
    return {n: float(per.get(n, 0.0) or 0.0) for n in class_names}


def equal_compute(iters: int, n_labelled: int, train: Dict[str, Any]) -> Dict[str, Any]:
    return epochs_for(iters, n_labelled, int(train.get("samples_per_gpu", 16)))
