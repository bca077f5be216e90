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
from pathlib import Path
from typing import Optional

import yaml

from executor.errors import model_error

from ..common import runtime
from ..common.stages import MODEL_META, WEIGHTS, StageWriter
from .data import LabelSpace, prepare

log = logging.getLogger(__name__)

CONFIG = "seg_config.py"


def _pretrained(ctx, model_cfg, work_dir: str, explicit: Optional[str], scope: str = "mmseg") -> Optional[str]:
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
    import importlib

    import torch
    from mmengine.registry import MODELS, init_default_scope

    importlib.import_module(scope + ".utils").register_all_modules(init_default_scope=False)
    init_default_scope(scope)
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


@runtime.distributed_entry
def train(ctx, launcher) -> None:
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
    ckpt = runtime.resume_checkpoint(work_dir) if resume_wanted else None
    if ckpt is not None:
        cfg.resume = True
        cfg.load_from = ckpt
        log.info("resuming from %s", ckpt)
    else:
        cfg.resume = False
        cfg.load_from = _pretrained(ctx, cfg.model, work_dir, args.load_from) if runtime.is_main_process() \
            or not launcher else (os.path.join(work_dir, "pretrained-fit.pth")
                                  if os.path.isfile(os.path.join(work_dir, "pretrained-fit.pth")) else None)
    writer = None
    if runtime.is_main_process():
        labels = data["labels"]
        meta = {"kind": "seg", "class_names": labels.class_names, "model_classes": labels.model_classes,
                "with_background": labels.with_background, "img_size": list(img_size),
                "preset": ctx.cfg["config_file"]}
        writer = StageWriter(ctx, work_dir, cfg, CONFIG, meta, "mIoU", ["mIoU", "mAcc"],
                             attachment=lambda m: {"mIoU": m.get("mIoU"), "mAcc": m.get("mAcc"), "aAcc": m.get("aAcc"),
                                                   "IoU": {k[4:]: v for k, v in m.items() if k.startswith("IoU.")}})
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
