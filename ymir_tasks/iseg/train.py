"""Instance-segmentation training: YMIR index + coco json → mmdet Runner → result.yaml stages
(``maskAP`` and ``boxAP`` = AP@0.5 as fractions, as the platform reads them; AP@[.5:.95], AP75
and per-class AP in the stage's evaluation.json, the log and TensorBoard)."""
from __future__ import annotations

from ..common import runtime
from ..common.mmdet_train import train_mmdet
from .config import CONFIG, build_train_config
from .data import prepare


@runtime.distributed_entry
def train(ctx, launcher) -> None:
    def attachment(m):
        out = {}
        for prefix in ("mask", "box"):
            out[prefix] = {"AP@0.5": m.get(f"{prefix}AP"), "AP@[.5:.95]": m.get(f"{prefix}AP_50_95"),
                           "AP75": m.get(f"{prefix}AP75"), "AR": m.get(f"{prefix}AR"),
                           "AP50_by_class": {k.split(".", 1)[1]: v for k, v in m.items()
                                             if k.startswith(f"{prefix}AP50.")}}
        return dict(out, tp=m.get("tp"), fp=m.get("fp"), fn=m.get("fn"), conf_threshold=ctx.cfg["conf_threshold"])

    train_mmdet(ctx, launcher, kind="iseg", config_name=CONFIG, prepare=prepare, build_config=build_train_config,
                stage_metrics=["maskAP", "boxAP"], counts=["tp", "fp", "fn"], attachment=attachment)
