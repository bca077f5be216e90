"""Segmentation training: YMIR index + seg-coco / seg-mask → mmseg Runner → result.yaml stages.

After every evaluation two self-sufficient stages are written: ``last`` and, when
mIoU improved, ``best``; each holds the weights as a plain state dict, the
dumped config and ``ymir-model.yaml`` (classes, blank-area choice, image size),
so a crash at any moment leaves a valid result.yaml with the stages so far.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from executor.errors import model_error
from executor.results import write_model_stage

from ..common import runtime
from .data import LabelSpace, prepare

log = logging.getLogger(__name__)

MODEL_META = "ymir-model.yaml"
WEIGHTS = "model.pth"
CONFIG = "seg_config.py"


def _pretrained(ctx, model_cfg, work_dir: str, explicit: Optional[str]) -> Optional[str]:
    """A filtered state dict of the pretrained weights that fit the model, or None.

    Weights come from ``--load-from`` or the platform's ``pretrained_model_params``;
    tensors whose shape differs (e.g. a head for other classes) are left out.
    """
    candidates = [explicit] if explicit else [ctx.env.map(p) for p in ctx.cfg.pretrained_model_params]
    weights = [p for p in candidates if p and p.endswith((".pth", ".pt")) and os.path.isfile(p)]
    if not weights:
        if ctx.cfg.pretrained_model_params:
            log.warning("pretrained_model_params lists no .pth/.pt file that exists: training from scratch")
        return None
    import torch
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    src = weights[0]
    state = runtime.load_state_dict_file(src)
    model = MODELS.build(model_cfg)
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not fit:
        raise model_error(f"none of its {len(state)} tensors fits the model '{ctx.cfg['config_file']}' "
                          "(another architecture?); choose a matching pretrained model or none",
                          file=src, field="pretrained_model_params")
    log.info("pretrained weights %s: %d of %d model tensors loaded (%d skipped: other shapes or names)",
             src, len(fit), len(own), len(state) - len(fit))
    out = os.path.join(work_dir, "pretrained-fit.pth")
    torch.save(fit, out)
    return out


class StageWriter:
    """Writes the ``best`` and ``last`` stages after every evaluation (rank 0)."""

    def __init__(self, ctx, work_dir: str, cfg, labels: LabelSpace, img_size) -> None:
        self.ctx = ctx
        self.work_dir = work_dir
        self.stage_dir = os.path.join(work_dir, "stage-files")
        os.makedirs(self.stage_dir, exist_ok=True)
        cfg.dump(os.path.join(self.stage_dir, CONFIG))
        meta = {"kind": "seg", "class_names": labels.class_names, "model_classes": labels.model_classes,
                "with_background": labels.with_background, "img_size": list(img_size),
                "preset": ctx.cfg["config_file"], "weights": WEIGHTS, "config": CONFIG}
        with open(os.path.join(self.stage_dir, MODEL_META), "w", encoding="utf-8") as f:
            yaml.safe_dump(meta, f, sort_keys=False)
        self.best = self._best_so_far()

    def _best_so_far(self) -> float:
        try:
            with open(self.ctx.env.output.training_result_file, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
            return float(doc["model_stages"]["best"]["mIoU"])
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            return -1.0

    def __call__(self, runner, metrics: Dict[str, float]) -> None:
        import torch

        miou, macc = float(metrics.get("mIoU", 0.0)), float(metrics.get("mAcc", 0.0))
        weights = os.path.join(self.stage_dir, WEIGHTS)
        torch.save(runtime.plain_state_dict(runner.model), weights + ".tmp")
        os.replace(weights + ".tmp", weights)
        per_class = {k[len("IoU."):]: float(v) for k, v in metrics.items() if k.startswith("IoU.")}
        table = os.path.join(self.stage_dir, "iou-per-class.json")
        with open(table, "w", encoding="utf-8") as f:
            json.dump({"iteration": runner.iter, "mIoU": miou, "mAcc": macc,
                       "aAcc": float(metrics.get("aAcc", 0.0)), "IoU": per_class}, f, indent=1)
        files = [weights, os.path.join(self.stage_dir, CONFIG), os.path.join(self.stage_dir, MODEL_META)]
        env = self.ctx.env
        scores = {"mIoU": miou, "mAcc": macc}
        if miou > self.best:
            self.best = miou
            write_model_stage(env, "best", files, scores, best_stage_name="best",
                              attachments={"best": [table]})
        last_files = list(files)
        if not self.ctx.cfg["save_least_file"]:
            last_files += sorted(glob.glob(os.path.join(self.work_dir, "iter_*.pth")))
        write_model_stage(env, "last", last_files, scores, best_stage_name="best",
                          attachments={"last": [table]})
        log.info("evaluation at iteration %d: mIoU %.4f, mAcc %.4f (best %.4f); stages written",
                 runner.iter, miou, macc, self.best)


def train(ctx) -> None:
    if runtime.wants_distributed(ctx):
        runtime.launch_workers(ctx, ctx.cfg.gpu_count)
        return
    launcher = runtime.init_distributed_if_worker()
    from mmengine.runner import Runner

    from . import mm  # noqa: F401  (registers the dataset and metric)
    from ..common import hooks  # noqa: F401  (registers the hooks)

    out = ctx.env.output
    work_dir = os.path.join(out.root_dir, "work_dirs", "seg")
    cache = os.path.join(out.root_dir, "seg-cache")
    os.makedirs(work_dir, exist_ok=True)
    os.makedirs(out.tensorboard_dir, exist_ok=True)
    os.makedirs(out.models_dir, exist_ok=True)
    if runtime.is_main_process():
        data = prepare(ctx.env, ctx.class_names, ctx.cfg["ignore_blank_area"], cache)
        with open(os.path.join(cache, "labels.json"), "w", encoding="utf-8") as f:
            json.dump({"with_background": data["labels"].with_background}, f)
    if launcher:
        import torch.distributed as dist
        dist.barrier()  # rank 0 wrote the label cache
    if not runtime.is_main_process():
        with open(os.path.join(cache, "labels.json"), encoding="utf-8") as f:
            wb = json.load(f)["with_background"]
        data = {"labels": LabelSpace(ctx.class_names, wb), "train_list": os.path.join(cache, "train.json"),
                "val_list": os.path.join(cache, "val.json")}
    from .config import build_train_config

    use_cuda = runtime.cuda_available()
    cfg, args, img_size = build_train_config(ctx, data, work_dir, bool(launcher), use_cuda)
    resume_wanted = ctx.cfg["resume"] if args.resume is None else args.resume
    last = os.path.join(work_dir, "last_checkpoint")
    if resume_wanted and os.path.isfile(last):
        cfg.resume = True
        cfg.load_from = None
        log.info("resuming from %s", open(last, encoding="utf-8").read().strip())
    else:
        cfg.resume = False
        cfg.load_from = _pretrained(ctx, cfg.model, work_dir, args.load_from) if runtime.is_main_process() \
            or not launcher else (os.path.join(work_dir, "pretrained-fit.pth")
                                  if os.path.isfile(os.path.join(work_dir, "pretrained-fit.pth")) else None)
    writer = StageWriter(ctx, work_dir, cfg, data["labels"], img_size) if runtime.is_main_process() else None
    runtime.set_task_context(ctx, stage_writer=writer)
    with runtime.trusted_checkpoints():
        runner = Runner.from_cfg(cfg)
        if cfg.resume:
            log.info("resuming at iteration %d", _resume_iter(last))
        runner.train()
    if runtime.is_main_process() and ctx.cfg["save_least_file"]:
        # Only what the stages list is needed once training has finished.
        for ckpt in glob.glob(os.path.join(work_dir, "*.pth")):
            os.remove(ckpt)
        for marker in ("last_checkpoint",):
            if os.path.exists(os.path.join(work_dir, marker)):
                os.remove(os.path.join(work_dir, marker))


def _resume_iter(last_file: str) -> int:
    try:
        name = Path(open(last_file, encoding="utf-8").read().strip()).stem
        return int(name.split("_")[-1])
    except (OSError, ValueError):
        return 0
