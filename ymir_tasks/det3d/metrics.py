"""3D detection metrics on the CPU (mmdet3d's KittiMetric needs ``numba.cuda`` and KITTI calib).

Per class, AP with 40-point interpolation (KITTI's R40) at 3D IoU and at BEV IoU, greedy
matching of predictions by descending score to the unmatched true box of highest IoU. A class's
threshold is the "strict" one (``eval_iou``; default 0.7 for car-sized footprints ≥ 4 m², else
0.5, KITTI's official values) and a "loose" one (0.5 / 0.25, the values CoIn reports). ``mAP`` is
the mean strict 3D AP over the classes present in the val labels.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from executor.errors import config_error
from executor.pointcloud import Boxes3D

from .geometry import bev_iou, iou_3d


def class_thresholds(spec: str, class_names: Sequence[str], footprints: Sequence[Optional[float]],
                     file: str = "config.yaml") -> List[float]:
    """Strict IoU per class from ``eval_iou`` ('' | '0.6' | 'Car:0.7,Pedestrian:0.5')."""
    out = [0.7 if (f or 0.0) >= 4.0 else 0.5 for f in footprints]
    spec = (spec or "").strip()
    if not spec:
        return out
    try:
        if ":" not in spec:
            return [float(spec)] * len(class_names)
        for item in spec.replace(";", ",").split(","):
            if not item.strip():
                continue
            name, value = item.split(":")
            if name.strip() not in class_names:
                raise config_error(f"unknown class {name.strip()!r} in {spec!r}", file=file, field="eval_iou")
            out[list(class_names).index(name.strip())] = float(value)
    except ValueError:
        raise config_error(f"expected 'class:iou,...' or one number, got {spec!r}", file=file,
                           field="eval_iou") from None
    return out


def pr_points(gts: Sequence[Boxes3D], preds: Sequence[Boxes3D], cls: int, thr: float,
              iou_fn=iou_3d, ious: Optional[Dict[int, np.ndarray]] = None) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(recall, precision) after each prediction of class ``cls``, best score first, greedy
    matching at IoU ``thr``; None when the class has no ground truth. ``ious``: a per-frame cache
    of this class's IoUs, shared by calls at several thresholds."""
    n_gt = sum(int((g.labels == cls).sum()) for g in gts)
    if n_gt == 0:
        return None
    records = []  # (score, frame, index)
    for f, p in enumerate(preds):
        for i in np.nonzero(p.labels == cls)[0]:
            records.append((-float(p.scores[i]), f, int(i)))
    records.sort()
    ious = {} if ious is None else ious
    used = {f: np.zeros(int((g.labels == cls).sum()), dtype=bool) for f, g in enumerate(gts)}
    tp = np.zeros(len(records))
    for k, (_, f, i) in enumerate(records):
        g = gts[f].select(gts[f].labels == cls)
        if not len(g):
            continue
        if f not in ious:
            ious[f] = iou_fn(preds[f].boxes, g.boxes)
        row = np.where(used[f], -1.0, ious[f][i])
        j = int(row.argmax())
        if row[j] >= thr:
            used[f][j] = True
            tp[k] = 1
    ctp = np.cumsum(tp)
    return ctp / n_gt, ctp / np.arange(1, len(records) + 1)


def interpolated_precision(points: Optional[Tuple[np.ndarray, np.ndarray]], recalls: np.ndarray) -> np.ndarray:
    """The best precision at recall >= r for each r (0 where never reached)."""
    recall, precision = points if points is not None else (np.zeros(0), np.zeros(0))
    return np.asarray([precision[recall >= r - 1e-9].max() if (recall >= r - 1e-9).any() else 0.0 for r in recalls])


def average_precision(gts: Sequence[Boxes3D], preds: Sequence[Boxes3D], cls: int, thr: float,
                      iou_fn=iou_3d, ious: Optional[Dict[int, np.ndarray]] = None) -> float:
    """KITTI's 40-point interpolated AP."""
    points = pr_points(gts, preds, cls, thr, iou_fn, ious)
    if points is None:
        return 0.0
    return float(interpolated_precision(points, np.linspace(1 / 40, 1.0, 40)).mean())


def tp_fp_fn(gts: Sequence[Boxes3D], preds: Sequence[Boxes3D], thresholds: Sequence[float],
             conf: float) -> Dict[str, int]:
    tp = fp = fn = 0
    for g, p in zip(gts, preds):
        p = p.select(p.scores >= conf)
        order = np.argsort(-p.scores, kind="mergesort")
        iou = iou_3d(p.boxes, g.boxes)
        used = np.zeros(len(g), dtype=bool)
        for i in order:
            row = np.where(used | (g.labels != p.labels[i]), -1.0, iou[i]) if len(g) else np.zeros(0)
            j = int(row.argmax()) if len(row) else -1
            if j >= 0 and row[j] >= thresholds[int(p.labels[i])]:
                used[j] = True
                tp += 1
            else:
                fp += 1
        fn += int((~used).sum())
    return {"tp": tp, "fp": fp, "fn": fn}


def det3d_metrics(gts: Sequence[Boxes3D], preds: Sequence[Boxes3D], class_names: Sequence[str],
                  strict: Sequence[float], conf: float) -> Dict[str, float]:
    out: Dict[str, float] = {}
    present = []
    for c, name in enumerate(class_names):
        if not any((g.labels == c).any() for g in gts):
            continue
        present.append(c)
        loose = 0.5 if strict[c] >= 0.7 else 0.25
        out[f"AP3D.{name}"] = average_precision(gts, preds, c, strict[c])
        out[f"APBEV.{name}"] = average_precision(gts, preds, c, strict[c], bev_iou)
        out[f"AP3D_loose.{name}"] = average_precision(gts, preds, c, loose)
    for key in ("AP3D", "APBEV", "AP3D_loose"):
        vals = [out[f"{key}.{class_names[c]}"] for c in present]
        out[{"AP3D": "mAP", "APBEV": "mAP_bev", "AP3D_loose": "mAP_loose"}[key]] = float(np.mean(vals)) if vals else 0.0
    out.update(tp_fp_fn(gts, preds, strict, conf))
    return out


PICTURE_IOUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def det3d_pictures(gts: Sequence[Boxes3D], preds: Sequence[Boxes3D], class_names: Sequence[str]):
    """Precision-recall per class at the loose 3D IoU (0.5 cars, 0.25 the rest) and 3D / BEV mAP
    against the IoU threshold, as pictures."""
    from ..common import training_pictures

    recalls = np.linspace(0, 1, 101)
    present = [c for c in range(len(class_names)) if any((g.labels == c).any() for g in gts)]
    curves = {}
    for c in present:
        car_sized = any((g.boxes[g.labels == c, 3] * g.boxes[g.labels == c, 4] >= 4.0).any() for g in gts)
        curves[class_names[c]] = interpolated_precision(pr_points(gts, preds, c, 0.5 if car_sized else 0.25),
                                                        recalls).tolist()
    series = {}
    for name, fn in (("3D", iou_3d), ("BEV", bev_iou)):
        caches: Dict[int, Dict[int, np.ndarray]] = {c: {} for c in present}  # IoUs once per class, not per threshold
        series[name] = {t: float(np.mean([average_precision(gts, preds, c, t, fn, caches[c]) for c in present]))
                        if present else 0.0 for t in PICTURE_IOUS}
    return {"pr-curves": training_pictures.pr_curves(curves, "3D precision-recall (IoU 0.5 cars, 0.25 the rest)"),
            "ap-by-iou": training_pictures.ap_by_iou(series, "mAP against the IoU threshold")}
