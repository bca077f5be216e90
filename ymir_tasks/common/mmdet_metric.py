"""The val metrics the kinds over mmdet register in mmdet's registry: YMIR's detection figures
(:mod:`.coco_eval`) and, for instance segmentation, the same over masks, from the val COCO
json they were given. Stage configs name them, so the names stay."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmdet.registry import METRICS

from . import training_pictures
from .coco_eval import IOU_THRESHOLDS, certain_threshold, coco_metrics, tp_fp_fn

from . import loading  # noqa: F401  (YmirLoadImage, the pipelines' loading step)

log = logging.getLogger(__name__)


def _ground_truth(ann_file: str, with_masks: bool) -> Dict[int, Dict]:
    """image id -> {'boxes' xyxy, 'labels', 'crowd'(, 'masks' RLE)} from a COCO json."""
    with open(ann_file, encoding="utf-8") as f:
        doc = json.load(f)
    per: Dict[int, List] = defaultdict(list)
    for a in doc["annotations"]:
        per[a["image_id"]].append(a)
    out = {}
    for img in doc["images"]:
        anns = per.get(img["id"], [])
        boxes = np.asarray([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                           np.float64).reshape(-1, 4)
        g = {"boxes": boxes, "labels": np.asarray([a["category_id"] for a in anns], int),
             "crowd": np.asarray([bool(a.get("iscrowd", 0)) for a in anns], bool)}
        if with_masks:
            g["masks"] = [dict(a["segmentation"], counts=a["segmentation"]["counts"].encode("ascii")) for a in anns]
        out[img["id"]] = g
    return out


@METRICS.register_module()
class YmirDetMetric(BaseMetric):
    """``mAP`` (AP@0.5), mAP@[.5:.95], AP75, mAR, per-class AP50, tp / fp / fn, certain threshold."""
    default_prefix: Optional[str] = None
    with_masks = False

    def __init__(self, ann_file: str, class_names: Sequence[str], conf_threshold: float = 0.2,
                 max_dets: int = 1000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ann_file = ann_file
        self.class_names = list(class_names)
        self.conf_threshold = conf_threshold
        self.max_dets = max_dets

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            p = s["pred_instances"]
            pred = {"boxes": p["bboxes"].cpu().numpy(), "scores": p["scores"].cpu().numpy(),
                    "labels": p["labels"].cpu().numpy()}
            if self.with_masks:  # as RLE: a val set's full-size masks do not fit in memory
                from pycocotools import mask as mask_utils

                masks = p["masks"].cpu().numpy().astype(np.uint8)
                pred["masks"] = [mask_utils.encode(np.asfortranarray(m)) for m in masks]
            self.results.append((int(s["img_id"]), pred, str(s.get("img_path", ""))))

    def _pairs(self, results: list):
        truth = _ground_truth(self.ann_file, self.with_masks)
        gts, preds = [], []
        for img_id, pred, _ in sorted(results, key=lambda r: r[0]):
            gts.append(truth[img_id])
            preds.append(pred)
        return gts, preds

    def _shown(self, results: list, gts: List[Dict]):
        """(image path, prediction with decoded masks, ground-truth boxes) of the fixed handful of
        val images: the first by id among those with objects (then the others)."""
        ordered = sorted(results, key=lambda r: r[0])
        ids = [r[0] for r in ordered]
        with_objects = [i for i, g in zip(ids, gts) if len(g["labels"])]
        shown = set(training_pictures.shown_ids(with_objects) if with_objects else training_pictures.shown_ids(ids))
        items = []
        for (img_id, pred, path), g in zip(ordered, gts):
            if img_id in shown and path:
                item = dict(pred, truth=g["boxes"])
                if self.with_masks:
                    from pycocotools import mask as mask_utils

                    item["masks"] = np.stack([mask_utils.decode(m) for m in pred["masks"]]).astype(bool) \
                        if pred["masks"] else None
                items.append((path, item))
        return items

    def _offer_pictures(self, results: list, gts: List[Dict], curves: Dict, ap: Dict[str, Dict[float, float]],
                        what: str) -> None:
        try:
            self._draw(results, gts, curves, ap, what)
        except Exception as err:  # noqa: BLE001 - the figures stand without their pictures
            log.warning("evaluation pictures not drawn: %s: %s", type(err).__name__, err)

    def _draw(self, results: list, gts: List[Dict], curves: Dict, ap: Dict[str, Dict[float, float]],
              what: str) -> None:
        pictures = {"pr-curves": training_pictures.pr_curves(curves["pr50"], f"{what} precision-recall at IoU 0.5"),
                    "ap-by-iou": training_pictures.ap_by_iou(ap, "AP against the IoU threshold")}
        row = training_pictures.predictions_row(self._shown(results, gts), self.class_names, self.conf_threshold)
        if row is not None:
            pictures["val-predictions"] = row
        training_pictures.offer(pictures)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        gts, preds = self._pairs(results)
        curves: Dict = {}
        out = coco_metrics(gts, preds, self.class_names, self.max_dets, curves=curves)
        out.update(tp_fp_fn(gts, preds, self.conf_threshold))
        out["certain_threshold"] = certain_threshold(gts, preds)
        self._offer_pictures(results, gts, curves, {"box": _by_iou(out)}, "box")
        return out


@METRICS.register_module()
class YmirInstanceMetric(YmirDetMetric):
    """``maskAP`` and ``boxAP`` (AP@0.5 of masks and of boxes, the older image's stage values), the
    same at [.5:.95] and 0.75, mask AR, per-class mask and box AP50, box tp / fp / fn."""
    with_masks = True

    def compute_metrics(self, results: list) -> Dict[str, float]:
        gts, preds = self._pairs(results)
        out: Dict[str, float] = {}
        curves: Dict = {}
        by_iou: Dict[str, Dict[float, float]] = {}
        for prefix, iou_type in (("mask", "segm"), ("box", "bbox")):
            m = coco_metrics(gts, preds, self.class_names, self.max_dets, iou_type=iou_type,
                             curves=curves if prefix == "mask" else None)
            by_iou[prefix] = _by_iou(m)
            out.update({f"{prefix}AP": m["mAP"], f"{prefix}AP_50_95": m["mAP_50_95"], f"{prefix}AP75": m["AP75"],
                        f"{prefix}AR": m["mAR"]})
            out.update({f"{prefix}AP50.{n}": m[f"AP50.{n}"] for n in self.class_names})
        out.update(tp_fp_fn(gts, preds, self.conf_threshold))
        self._offer_pictures(results, gts, curves, by_iou, "mask")
        return out


def _by_iou(m: Dict[str, float]) -> Dict[float, float]:
    return {t: m[f"AP_{t:.2f}"] for t in IOU_THRESHOLDS}
