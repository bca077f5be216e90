"""Scores a segmentation infer-result.json (COCO RLE) against seg-coco ground
truth: per-class IoU over all images. Used by the demo, tests and benches."""
from __future__ import annotations

import json
from typing import Dict, Sequence, Tuple

import numpy as np

from executor.annotations import CocoSegReader


def predicted_masks(infer_json: str, class_names: Sequence[str]) -> Dict[str, np.ndarray]:
    """basename → HxW class ids (255 where nothing was predicted)."""
    from pycocotools import mask as mask_utils

    with open(infer_json, encoding="utf-8") as f:
        doc = json.load(f)
    cat = {c["id"]: class_names.index(c["name"]) for c in doc["categories"]}
    out = {}
    by_id = {}
    for im in doc["images"]:
        out[im["file_name"]] = np.full((im["height"], im["width"]), 255, np.uint8)
        by_id[im["id"]] = im["file_name"]
    for ann in doc["annotations"]:
        m = mask_utils.decode(ann["segmentation"]).astype(bool)
        out[by_id[ann["image_id"]]][m] = cat[ann["category_id"]]
    return out


def mask_iou(infer_json: str, gt_coco_json: str, class_names: Sequence[str]) -> Tuple[float, Dict[str, float]]:
    """(mean IoU over classes present in the ground truth, per-class IoU)."""
    pred = predicted_masks(infer_json, class_names)
    gt = CocoSegReader(gt_coco_json, class_names)
    inter = np.zeros(len(class_names))
    union = np.zeros(len(class_names))
    present = np.zeros(len(class_names), bool)
    for name, p in pred.items():
        g = gt.mask(name, height=p.shape[0], width=p.shape[1])
        for c in range(len(class_names)):
            pc, gc = p == c, g == c
            inter[c] += np.logical_and(pc, gc).sum()
            union[c] += np.logical_or(pc, gc).sum()
            present[c] |= bool(gc.any())
    iou = {n: float(inter[c] / union[c]) if union[c] else 0.0 for c, n in enumerate(class_names)}
    mean = float(np.mean([iou[n] for c, n in enumerate(class_names) if present[c]])) if present.any() else 0.0
    return mean, iou
