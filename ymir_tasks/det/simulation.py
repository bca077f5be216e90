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


def pre_annotations(infer_result: Dict[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    """basename -> its boxes, from an infer-result.json of mining with prediction."""
    return {k: v.get("boxes", []) for k, v in infer_result["detection"].items()}


def labelling_cost(entries: Sequence[IndexEntry], class_names: Sequence[str],
                   predictions: Dict[str, List[Dict[str, Any]]] = None) -> int:
    """Boxes a human draws or fixes for ``entries``: all of them without pre-annotations; with
    them (the certain boxes of mining with prediction), the ground truth the pre-annotations miss
    plus the pre-annotations that are wrong (seed 003's "AL ann_ratio", in boxes)."""
    import numpy as np

    from .data import DetAnnotationSource
    from ..common.coco_eval import match_flags

    source = DetAnnotationSource(class_names)
    cost = 0
    for e in entries:
        gt = source.objects(e)
        pre = (predictions or {}).get(e.image.rsplit("/", 1)[-1], [])
        if not pre:
            cost += len(gt)
            continue
        g = {"boxes": np.asarray([[o.x1, o.y1, o.x2, o.y2] for o in gt]).reshape(-1, 4),
             "labels": np.asarray([o.class_id for o in gt], int)}
        p = {"boxes": np.asarray([[b["box"]["x"], b["box"]["y"], b["box"]["x"] + b["box"]["w"], b["box"]["y"] + b["box"]["h"]]
                                  for b in pre]).reshape(-1, 4),
             "labels": np.asarray([class_names.index(b["class_name"]) for b in pre], int),
             "scores": np.asarray([b["score"] for b in pre])}
        _, right = match_flags(g, p)
        cost += (len(gt) - int(right.sum())) + int((~right).sum())
    return cost
