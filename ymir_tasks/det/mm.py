"""What the detection image registers in mmdet's registries: a metric reporting YMIR's
detection figures (see :mod:`.metrics`) from the val COCO json it was given."""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmdet.registry import METRICS

from .metrics import certain_threshold, coco_metrics, tp_fp_fn

from ..common import loading  # noqa: F401  (YmirLoadImage, the pipelines' loading step)


@METRICS.register_module()
class YmirDetMetric(BaseMetric):
    default_prefix: Optional[str] = None

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
            self.results.append((int(s["img_id"]), p["bboxes"].cpu().numpy(), p["scores"].cpu().numpy(),
                                 p["labels"].cpu().numpy()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        with open(self.ann_file, encoding="utf-8") as f:
            doc = json.load(f)
        boxes: Dict[int, List] = defaultdict(list)
        for a in doc["annotations"]:
            x, y, w, h = a["bbox"]
            boxes[a["image_id"]].append((x, y, x + w, y + h, a["category_id"]))
        gts, preds = [], []
        for img_id, b, s, l in sorted(results, key=lambda r: r[0]):
            g = np.asarray(boxes.get(img_id, []), dtype=np.float64).reshape(-1, 5)
            gts.append({"boxes": g[:, :4], "labels": g[:, 4].astype(int)})
            preds.append({"boxes": b, "scores": s, "labels": l})
        out = coco_metrics(gts, preds, self.class_names, self.max_dets)
        out.update(tp_fp_fn(gts, preds, self.conf_threshold))
        out["certain_threshold"] = certain_threshold(gts, preds)
        return out
