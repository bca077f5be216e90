"""3D training: YMIR index + point-cloud labels → mmdet3d Runner (PointPillars) → result.yaml
stages ``best`` / ``last`` with ``mAP`` = mean strict 3D AP (a fraction) and tp / fp / fn; the
per-class table (3D AP, BEV AP, loose 3D AP) is the stage's ``evaluation.json`` attachment."""
from __future__ import annotations

import glob
import logging
import os
import shutil

from ..common import runtime
from ..common.stages import StageWriter
from ..common.training import barrier, remove_checkpoints, run_dirs, set_start_weights
from .config import CONFIG

log = logging.getLogger(__name__)


@runtime.distributed_entry
def train(ctx, launcher) -> None:
    import json


    from . import mm  # noqa: F401  (registers the dataset and metric)
    from ..common import hooks  # noqa: F401
    from .data import prepare

    work_dir, cache = run_dirs(ctx, "det3d")
    if runtime.is_main_process():
        data = prepare(ctx.env, ctx.class_names, cache)
        with open(os.path.join(cache, "data.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)
    barrier(launcher)
    if not runtime.is_main_process():
        with open(os.path.join(cache, "data.json"), encoding="utf-8") as f:
            data = json.load(f)
    log.info("3D data: %d train frames (%d boxes), %d val frames (%d boxes); per class %s",
             data["train"]["frames"], data["train"]["objects"], data["val"]["frames"], data["val"]["objects"],
             {n: s["count"] for n, s in zip(ctx.class_names, data["train"]["classes"])})
    from .config import build_train_config

    cfg, args, geo = build_train_config(ctx, data, work_dir, bool(launcher), runtime.cuda_available())
    set_start_weights(ctx, cfg, args, work_dir, launcher, "mmdet3d")
    writer = None
    if runtime.is_main_process():
        meta = {"kind": "det3d", "class_names": list(ctx.class_names), "preset": ctx.cfg["config_file"],
                "point_cloud_range": [float(v) for v in geo["point_cloud_range"]],
                "voxel_size": [float(v) for v in geo["voxel_size"]],
                "eval_iou": [float(v) for v in geo["eval_iou"]], "conf_threshold": ctx.cfg["conf_threshold"]}
        names = list(ctx.class_names)

        def attachment(m):
            return {"mAP (3D, strict IoU)": m.get("mAP"), "mAP_bev": m.get("mAP_bev"), "mAP_loose": m.get("mAP_loose"),
                    "per_class": {n: {"iou": geo["eval_iou"][i], "AP3D": m.get(f"AP3D.{n}"),
                                      "APBEV": m.get(f"APBEV.{n}"), "AP3D_loose": m.get(f"AP3D_loose.{n}")}
                                  for i, n in enumerate(names) if f"AP3D.{n}" in m},
                    "tp": m.get("tp"), "fp": m.get("fp"), "fn": m.get("fn"),
                    "conf_threshold": ctx.cfg["conf_threshold"]}
        writer = StageWriter(ctx, work_dir, cfg, CONFIG, meta, ["mAP"], counts=["tp", "fp", "fn"],
                             attachment=attachment)
    rounds = ctx.cfg["ss3d_iterations"]
    if rounds and launcher:
        log.warning("SS3D rounds run in one process: ss3d_iterations ignored with gpu_count %d", ctx.cfg.gpu_count)
        rounds = 0
    runtime.set_task_context(ctx, stage_writer=writer, progress_span=(0.0, 1.0 / (rounds + 1)))
    with runtime.trusted_checkpoints():
        runner = runtime.build_runner(cfg)
        runner.train()
        if rounds:
            from .ss3d import run_rounds

            run_rounds(ctx, cfg, data, work_dir, runner, geo["point_cloud_range"])
    if runtime.is_main_process():
        remove_checkpoints(work_dir)
        for d in glob.glob(os.path.join(work_dir, "ss3d-round*")):
            shutil.rmtree(d, ignore_errors=True) if os.path.isdir(d) else os.remove(d)
