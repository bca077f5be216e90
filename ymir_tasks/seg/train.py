"""Segmentation training: YMIR index + seg-coco / seg-mask → mmseg Runner → result.yaml stages.

After every evaluation two self-sufficient stages are written: ``last`` and, when
mIoU improved, ``best``; each holds the weights as a plain state dict, the
dumped config and ``ymir-model.yaml`` (classes, blank-area choice, image size),
so a crash at any moment leaves a valid result.yaml with the stages so far.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path



from ..common import runtime
from ..common.stages import StageWriter
from ..common.training import barrier, remove_checkpoints, run_dirs, set_start_weights
from .config import CONFIG
from .data import LabelSpace, prepare

log = logging.getLogger(__name__)


@runtime.distributed_entry
def train(ctx, launcher) -> None:

    from . import mm  # noqa: F401  (registers the dataset and metric)
    from ..common import hooks  # noqa: F401  (registers the hooks)

    work_dir, cache = run_dirs(ctx, "seg")
    if runtime.is_main_process():
        data = prepare(ctx.env, ctx.class_names, ctx.cfg["ignore_blank_area"], cache, ctx.cfg["workers_per_gpu"],
                       count_pixels=str(ctx.cfg["class_weight"]).strip().lower() == "auto")
        with open(os.path.join(cache, "labels.json"), "w", encoding="utf-8") as f:
            # every rank builds the same model: the same label space and class weights
            json.dump({"with_background": data["labels"].with_background, "train_pixels": data["train_pixels"]}, f)
    barrier(launcher)  # rank 0 wrote the label cache
    if not runtime.is_main_process():
        with open(os.path.join(cache, "labels.json"), encoding="utf-8") as f:
            shared = json.load(f)
        data = {"labels": LabelSpace(ctx.class_names, shared["with_background"]),
                "train_list": os.path.join(cache, "train.json"), "val_list": os.path.join(cache, "val.json"),
                "train_pixels": shared["train_pixels"]}
    from .config import build_train_config

    use_cuda = runtime.cuda_available()
    cfg, args, img_size = build_train_config(ctx, data, work_dir, bool(launcher), use_cuda)
    set_start_weights(ctx, cfg, args, work_dir, launcher, "mmseg")
    last = os.path.join(work_dir, "last_checkpoint")
    writer = None
    if runtime.is_main_process():
        labels = data["labels"]
        meta = {"kind": "seg", "class_names": labels.class_names, "model_classes": labels.model_classes,
                "with_background": labels.with_background, "img_size": list(img_size),
                "preset": ctx.cfg["config_file"]}
        writer = StageWriter(ctx, work_dir, cfg, CONFIG, meta, ["mIoU", "mAcc"],
                             attachment=lambda m: {"mIoU": m.get("mIoU"), "mAcc": m.get("mAcc"), "aAcc": m.get("aAcc"),
                                                   "IoU": {k[4:]: v for k, v in m.items() if k.startswith("IoU.")}},
                             checkpoints_in_last=not ctx.cfg["save_least_file"])
    runtime.set_task_context(ctx, stage_writer=writer)
    with runtime.trusted_checkpoints():
        runner = runtime.build_runner(cfg)
        if cfg.resume:
            log.info("resuming at iteration %d", _resume_iter(last))
        runner.train()
    if runtime.is_main_process() and ctx.cfg["save_least_file"]:
        remove_checkpoints(work_dir)  # only what the stages list is needed once training has finished


def _resume_iter(last_file: str) -> int:
    try:
        name = Path(open(last_file, encoding="utf-8").read().strip()).stem
        return int(name.split("_")[-1])
    except (OSError, ValueError):
        return 0
