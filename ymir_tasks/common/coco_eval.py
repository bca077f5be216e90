"""Box and mask metrics as YMIR users read them, from pycocotools' COCOeval (no torch here);
the detection and instance-segmentation kinds report them.

The stage's figure is COCO-style AP at IoU 0.5 (what the platform's own evaluation uses by
default); also AP@[.5:.95], AP75, AR, per-class AP@0.5, AP at each IoU 0.50 … 0.95, and
tp / fp / fn at a confidence threshold (greedy box matching at IoU 0.5, best score first).
Ground truth may carry ``crowd`` flags (COCO's ``iscrowd``: matched detections are not false
positives, missed ones are not misses) and both sides ``masks`` (compressed RLE dicts) for
``iou_type='segm'``.
"""
from __future__ import annotations

import contextlib
import io
from typing import Dict, Optional, Sequence

import numpy as np

IOU_THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between xyxy boxes a [N,4] and b [M,4]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def tp_fp_fn(gts: Sequence[Dict], preds: Sequence[Dict], conf: float, iou_thr: float = 0.5) -> Dict[str, int]:
    """Counts over images; each item: {'boxes': xyxy [N,4], 'labels': [N], 'scores': [N] (preds)}."""
    tp = fp = fn = 0
    for g, p in zip(gts, preds):
        _, flags = match_flags(g, p, iou_thr, conf)
        hits = int(flags.sum())  # each true positive matched one ground-truth box
        tp, fp, fn = tp + hits, fp + len(flags) - hits, fn + len(g["labels"]) - hits
    return {"tp": tp, "fp": fp, "fn": fn}


def match_flags(g: Dict, p: Dict, iou_thr: float = 0.5, min_score: float = 0.0):
    """(scores, true-positive flags) of one image's predictions, matched greedily by score to
    unmatched ground truth of their class at ``iou_thr``."""
    keep = np.asarray(p["scores"]) >= min_score
    pb, pl, ps = np.asarray(p["boxes"])[keep], np.asarray(p["labels"])[keep], np.asarray(p["scores"])[keep]
    gb, gl = np.asarray(g["boxes"]), np.asarray(g["labels"])
    matched = np.zeros(len(gb), bool)
    flags = np.zeros(len(ps), bool)
    for i in np.argsort(-ps, kind="stable"):
        cand = np.where((gl == pl[i]) & ~matched)[0]
        if len(cand):
            ious = box_iou(pb[i:i + 1], gb[cand])[0]
            j = int(np.argmax(ious))
            if ious[j] >= iou_thr:
                matched[cand[j]] = True
                flags[i] = True
    return ps, flags


def certain_threshold(gts: Sequence[Dict], preds: Sequence[Dict], precision: float = 0.9) -> float:
    """The lowest score above which the predictions are right at least ``precision`` of the time
    (on the val set): boxes above it are "certain" (seed 003's box-level split); 1.0 if none is."""
    scores, flags = [], []
    for g, p in zip(gts, preds):
        s, f = match_flags(g, p)
        scores.append(s)
        flags.append(f)
    s, f = np.concatenate(scores) if scores else np.zeros(0), np.concatenate(flags) if flags else np.zeros(0, bool)
    if not len(s):
        return 1.0
    order = np.argsort(-s, kind="stable")
    prec = np.cumsum(f[order]) / np.arange(1, len(s) + 1)
    ok = np.nonzero(prec >= precision)[0]
    # the longest prefix whose precision holds; at least 5 boxes so that one lucky box does not count
    ok = ok[ok >= 4]
    return float(s[order][ok[-1]]) if len(ok) else 1.0


def coco_metrics(gts: Sequence[Dict], preds: Sequence[Dict], class_names: Sequence[str],
                 max_dets: int = 1000, iou_type: str = "bbox", curves: Optional[Dict] = None) -> Dict[str, float]:
    """COCO AP/AR as fractions; keys: mAP (AP50), mAP_50_95, AP75, mAR, AP_<iou>, AP50.<class>.
    ``iou_type`` 'segm' matches the ``masks`` of each side instead of the boxes. ``curves``, when
    given, receives each class's precision at COCO's 101 recall points at IoU 0.5 (``{class: [101]}``,
    -1 where the class has no ground truth) under ``'pr50'``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def shape(item: Dict, j: int, b) -> Dict:
        box = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
        if iou_type == "segm":
            from pycocotools import mask as mask_utils

            rle = item["masks"][j]
            return {"bbox": box, "segmentation": rle, "area": float(mask_utils.area(rle))}
        return {"bbox": box, "area": box[2] * box[3]}

    images, anns, dets = [], [], []
    for i, (g, p) in enumerate(zip(gts, preds), start=1):
        image = {"id": i}
        sizes = [m["size"] for m in list(g.get("masks", [])) + list(p.get("masks", []))]
        if sizes:  # pycocotools reads an image's size for its masks
            image.update(height=int(sizes[0][0]), width=int(sizes[0][1]))
        images.append(image)
        crowd = np.asarray(g.get("crowd", np.zeros(len(g["labels"]), bool)), bool)
        for j, (b, l) in enumerate(zip(np.asarray(g["boxes"]).reshape(-1, 4), np.asarray(g["labels"]))):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(l), "iscrowd": int(crowd[j]),
                         **shape(g, j, b)})
        for j, (b, l, s) in enumerate(zip(np.asarray(p["boxes"]).reshape(-1, 4), np.asarray(p["labels"]),
                                          np.asarray(p["scores"]))):
            dets.append({"image_id": i, "category_id": int(l), "score": float(s), **shape(p, j, b)})
    out: Dict[str, float] = {"mAP": 0.0, "mAP_50_95": 0.0, "AP75": 0.0, "mAR": 0.0}
    out.update({f"AP_{t:.2f}": 0.0 for t in IOU_THRESHOLDS})
    out.update({f"AP50.{n}": 0.0 for n in class_names})
    if not anns:
        return out
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns,
                  "categories": [{"id": i, "name": n} for i, n in enumerate(class_names)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not dets:
            return out
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # [T, R, K] at area 'all', maxDets max_dets

    def mean_valid(x: np.ndarray) -> float:
        v = x[x > -1]
        return float(v.mean()) if v.size else 0.0

    for t, thr in enumerate(IOU_THRESHOLDS):
        out[f"AP_{thr:.2f}"] = mean_valid(prec[t])
    out["mAP"] = out["AP_0.50"]
    out["AP75"] = out["AP_0.75"]
    out["mAP_50_95"] = mean_valid(prec)
    rec = ev.eval["recall"][:, :, 0, -1]  # [T, K]
    out["mAR"] = mean_valid(rec)
    for k, name in enumerate(class_names):
        out[f"AP50.{name}"] = mean_valid(prec[0, :, k])
    if curves is not None:
        curves["pr50"] = {name: prec[0, :, k].astype(float).tolist() for k, name in enumerate(class_names)}
    return out
