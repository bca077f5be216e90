"""Detection training: YMIR index + ark / voc / coco → mmdet Runner → result.yaml stages
(``best`` / ``last``; ``mAP`` = AP@0.5 as a fraction, with ``mAR`` and tp / fp / fn)."""
from __future__ import annotations

import logging
import os

from ..common import runtime
from ..common.stages import StageWriter
from ..common.training import barrier, remove_checkpoints, run_dirs, set_start_weights
from .config import CONFIG
from .data import prepare

log = logging.getLogger(__name__)


@runtime.distributed_entry
def train(ctx, launcher) -> None:
    from mmengine.runner import Runner

    from . import mm  # noqa: F401  (registers the metric)
    from ..common import hooks  # noqa: F401

    work_dir, cache = run_dirs(ctx, "det")
    if runtime.is_main_process():
        data = prepare(ctx.env, ctx.class_names, cache, ctx.cfg["workers_per_gpu"])
    barrier(launcher)
    if not runtime.is_main_process():
        data = {"train_json": os.path.join(cache, "train.json"), "val_json": os.path.join(cache, "val.json")}
    from .config import build_train_config

    cfg, args, size = build_train_config(ctx, data, work_dir, bool(launcher), runtime.cuda_available())
    set_start_weights(ctx, cfg, args, work_dir, launcher, "mmdet")
    writer = None
    if runtime.is_main_process():
        meta = {"kind": "det", "class_names": list(ctx.class_names), "img_size": size,
                "preset": ctx.cfg["config_file"], "conf_threshold": ctx.cfg["conf_threshold"]}

        def attachment(m):
            return {"mAP@0.5": m.get("mAP"), "mAP@[.5:.95]": m.get("mAP_50_95"), "AP75": m.get("AP75"),
                    "mAR": m.get("mAR"), "AP_by_IoU": {k[3:]: v for k, v in m.items() if k.startswith("AP_")},
                    "AP50_by_class": {k[5:]: v for k, v in m.items() if k.startswith("AP50.")},
                    "tp": m.get("tp"), "fp": m.get("fp"), "fn": m.get("fn"),
                    "conf_threshold": ctx.cfg["conf_threshold"], "certain_threshold": m.get("certain_threshold")}
        writer = StageWriter(ctx, work_dir, cfg, CONFIG, meta, ["mAP", "mAR"], counts=["tp", "fp", "fn"],
                             attachment=attachment, meta_from_metrics=["certain_threshold"])
    runtime.set_task_context(ctx, stage_writer=writer)
    with runtime.trusted_checkpoints():
        runner = Runner.from_cfg(cfg)
        runner.train()
    if runtime.is_main_process():
        remove_checkpoints(work_dir)
