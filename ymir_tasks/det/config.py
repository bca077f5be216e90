"""The detection presets (``configs/det``) and the mmengine config of a detection run (the shared
mmdet rules of :mod:`..common.mmdet_config` with YMIR's detection metric)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..common import mmdet_config
from ..common.options import find_preset

PRESETS = ("rtmdet_tiny", "tiny")
CONFIG = "det_config.yaml"  # the stage's config file, beside its checkpoint


def preset_file(name: str, file: str = "config.yaml") -> Path:
    """A preset name or the path of a config file."""
    return find_preset("det", PRESETS, name, file)


def build_train_config(ctx, data: Dict[str, Any], work_dir: str, distributed: bool, use_cuda: bool):
    p = ctx.cfg.params
    evaluator = dict(type="YmirDetMetric", class_names=list(ctx.class_names), conf_threshold=p["conf_threshold"],
                     max_dets=p["max_detections"])
    return mmdet_config.build_train_config(ctx, data, work_dir, distributed, use_cuda, kind="det", presets=PRESETS,
                                           evaluator=evaluator, metric="mAP")
