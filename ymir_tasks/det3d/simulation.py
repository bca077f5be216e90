"""3D detection in ``ymir-executor simulate``: the loose 3D AP per class (IoU 0.5 cars, 0.25 the
rest), classes from the box files. The stage's strict mAP (KITTI's 0.7 / 0.5) stays near 0 for a
tiny model after a few hundred iterations on a few dozen frames, so it cannot rank strategies."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from executor.pointcloud import read_boxes3d
from executor.records import IndexEntry

from ..common.simulation import epochs_for

METRIC = "mAP_loose"  # in the evaluation attachment
STRATEGIES = ("random", "active", "qa")  # the frame scores of instance-bank mining (mining_score)
STRATEGY_OVERRIDES = {"active": {"mining_score": "active"}, "qa": {"mining_score": "qa"}}


def image_classes(entries: Sequence[IndexEntry], class_names: Sequence[str]) -> List[List[int]]:
    return [sorted({int(c) for c in read_boxes3d(e.annotation, class_names).labels}) for e in entries]


def class_metrics(evaluation: Dict[str, Any], class_names: Sequence[str]) -> Dict[str, float]:
    per = evaluation.get("per_class") or {}
    return {n: float((per.get(n) or {}).get("AP3D_loose") or 0.0) for n in class_names}


def equal_compute(iters: int, n_labelled: int, train: Dict[str, Any]) -> Dict[str, Any]:
    return epochs_for(iters, n_labelled, int(train.get("samples_per_gpu", 4)))
