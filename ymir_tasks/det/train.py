"""Detection training: YMIR index + ark / voc / coco → mmdet Runner → result.yaml stages
(``best`` / ``last``; ``mAP`` = AP@0.5 as a fraction, with ``mAR`` and tp / fp / fn)."""
from __future__ import annotations

from ..common import runtime
from ..common.mmdet_train import train_mmdet
from .config import CONFIG, build_train_config
from .data import prepare


@runtime.distributed_entry
def train(ctx, launcher) -> None:
    def attachment(m):
        return {"mAP@0.5": m.get("mAP"), "mAP@[.5:.95]": m.get("mAP_50_95"), "AP75": m.get("AP75"),
                "mAR": m.get("mAR"), "AP_by_IoU": {k[3:]: v for k, v in m.items() if k.startswith("AP_")},
                "AP50_by_class": {k[5:]: v for k, v in m.items() if k.startswith("AP50.")},
                "tp": m.get("tp"), "fp": m.get("fp"), "fn": m.get("fn"),
                "conf_threshold": ctx.cfg["conf_threshold"], "certain_threshold": m.get("certain_threshold")}

    train_mmdet(ctx, launcher, kind="det", config_name=CONFIG, prepare=prepare, build_config=build_train_config,
                stage_metrics=["mAP", "mAR"], counts=["tp", "fp", "fn"], attachment=attachment,
                meta_from_metrics=["certain_threshold"])
