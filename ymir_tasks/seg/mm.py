"""What the segmentation image registers in mmsegmentation's registries: the
YMIR dataset (a json data list written by :mod:`ymir_tasks.seg.data`), an
IoU metric that also reports per-class IoU as fractions, and a class-weighted
cross-entropy that survives ignored pixels."""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmseg.datasets import BaseSegDataset
from mmseg.evaluation import IoUMetric
from mmseg.models.losses import CrossEntropyLoss
from mmseg.registry import DATASETS, METRICS, MODELS

from ..common import loading  # noqa: F401  (YmirLoadImage, the pipelines' loading step)
from ..common import training_pictures

log = logging.getLogger(__name__)


@DATASETS.register_module()
class YmirSegDataset(BaseSegDataset):
    """Images and cached PNG label maps listed in a json file (``ann_file``)."""

    METAINFO: dict = dict()

    def load_data_list(self) -> List[dict]:
        with open(self.ann_file, "r", encoding="utf-8") as f:
            items = json.load(f)
        return [dict(img_path=it["img_path"], seg_map_path=it["seg_map_path"], label_map=self.label_map,
                     reduce_zero_label=False, seg_fields=[]) for it in items]


@MODELS.register_module()
class YmirCrossEntropyLoss(CrossEntropyLoss):
    """mmseg's softmax cross-entropy with ``class_weight``, averaged over the labelled pixels.

    mmseg's own weighted mean looks each pixel's weight up by its label, ignored ones too, and
    fails on 255 (padding, ``ignore_blank_area``); here ignored pixels weigh 0, which is
    PyTorch's weighted mean."""

    def forward(self, cls_score, label, weight=None, avg_factor=None, reduction_override=None,
                ignore_index=-100, **kwargs):
        reduction = reduction_override or self.reduction
        if self.class_weight is not None and avg_factor is None and reduction == "mean" \
                and not self.use_sigmoid and not self.use_mask:
            cw = cls_score.new_tensor(self.class_weight)
            valid = label != ignore_index
            pixel_w = cw[label.clamp(0, len(cw) - 1)] * valid
            if weight is not None:
                pixel_w = pixel_w * weight.float()
            # the mean of an all-ignored batch is 0, not 0 / 0
            avg_factor = pixel_w.sum().clamp(min=torch.finfo(pixel_w.dtype).eps)
        return super().forward(cls_score, label, weight, avg_factor=avg_factor,
                               reduction_override=reduction_override, ignore_index=ignore_index, **kwargs)


@METRICS.register_module()
class YmirIoUMetric(IoUMetric):
    """mmseg's IoU metric plus ``IoU.<class>`` entries; all values are fractions in [0, 1]
    (mmseg reports percentages, which result.yaml must not hold).

    ``mIoU`` / ``mAcc`` average the YMIR classes present in the ground truth; the
    learnt background class (``ymir_background``) is reported per class only, so
    the stage metric is not inflated by the easy background.
    """

    def __init__(self, *args, exclude_from_mean: Sequence[str] = ("ymir_background",), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exclude_from_mean = tuple(exclude_from_mean)
        self._shown: List[str] = []  # the first val images by path seen here (drawn at every evaluation)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """mmseg's four areas per image, plus its confusion counts and, for the fixed handful of
        val images, a small copy of the prediction to draw."""
        n = len(self.dataset_meta["classes"])
        for s in data_samples:
            pred = s["pred_sem_seg"]["data"].squeeze()
            label = s["gt_sem_seg"]["data"].squeeze().to(pred)
            areas = self.intersect_and_union(pred, label, n, self.ignore_index)
            valid = (label != self.ignore_index) & (label < n)
            confusion = torch.bincount(label[valid].long() * n + pred[valid].long(), minlength=n * n)
            path = str(s.get("img_path", ""))
            small = None
            # the metric lives through every evaluation: the images kept once are kept again
            if path and (path in self._shown or len(self._shown) < training_pictures.SHOWN_VAL_IMAGES
                         or path < max(self._shown)):
                self._shown = sorted(set(self._shown) | {path})[:training_pictures.SHOWN_VAL_IMAGES]
                small = pred.cpu().numpy().astype(np.uint8)
            self.results.append((*areas, confusion.reshape(n, n).cpu().numpy(), path, small))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        try:
            self._draw(results)
        except Exception as err:  # noqa: BLE001 - the figures stand without their pictures
            log.warning("evaluation pictures not drawn: %s: %s", type(err).__name__, err)
        results = tuple(zip(*results))
        total_area_intersect = sum(results[0])
        total_area_union = sum(results[1])
        total_area_label = sum(results[3])
        inter = np.asarray(total_area_intersect, dtype=np.float64)
        union = np.asarray(total_area_union, dtype=np.float64)
        label = np.asarray(total_area_label, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / union
            acc = inter / label
        names = list(self.dataset_meta["classes"])
        present = (label > 0) & np.array([n not in self.exclude_from_mean for n in names])
        out: Dict[str, float] = OrderedDict()
        out["aAcc"] = float(inter.sum() / max(label.sum(), 1.0))
        out["mIoU"] = float(np.nanmean(np.where(present, iou, np.nan))) if present.any() else 0.0
        out["mAcc"] = float(np.nanmean(np.where(present, acc, np.nan))) if present.any() else 0.0
        for name, v, n in zip(names, iou, label):
            out[f"IoU.{name}"] = float(v) if n > 0 and np.isfinite(v) else 0.0
        return out

    def _draw(self, results: list) -> None:
        names = list(self.dataset_meta["classes"])
        confusion = sum(r[4] for r in results)
        pictures = {"confusion": training_pictures.confusion(confusion, names, "pixels, each row sums to 1")}
        shown = sorted((r[5], r[6]) for r in results if r[6] is not None)[:training_pictures.SHOWN_VAL_IMAGES]
        row = training_pictures.label_maps_row(shown, names)
        if row is not None:
            pictures["val-predictions"] = row
        training_pictures.offer(pictures)
