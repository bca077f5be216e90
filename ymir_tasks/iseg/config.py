"""The instance-segmentation presets (``configs/iseg``) and the mmengine config of a run (the
shared mmdet rules of :mod:`..common.mmdet_config`, learning masks, with the mask metric)."""
from __future__ import annotations

from typing import Any, Dict

from ..common import mmdet_config
from .params import PRESETS

CONFIG = "iseg_config.yaml"  # the stage's config file, beside its checkpoint


def build_train_config(ctx, data: Dict[str, Any], work_dir: str, distributed: bool, use_cuda: bool):
    p = ctx.cfg.params
    evaluator = dict(type="YmirInstanceMetric", class_names=list(ctx.class_names),
                     conf_threshold=p["conf_threshold"], max_dets=p["max_detections"])
    return mmdet_config.build_train_config(ctx, data, work_dir, distributed, use_cuda, kind="iseg", presets=PRESETS,
                                           evaluator=evaluator, metric="maskAP", with_mask=True)
