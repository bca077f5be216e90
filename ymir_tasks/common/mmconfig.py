"""The runtime sections every kind's mmengine training config shares: default and YMIR hooks
(progress, stages, early stopping on the kind's main metric), TensorBoard, environment,
randomness, launcher and the DDP wrapper that CPU processes need."""
from __future__ import annotations

import os
import uuid
from typing import Any, Dict


def apply_runtime(cfg, ctx, args, *, work_dir: str, distributed: bool, use_cuda: bool, scope: str,
                  visualizer: str, metric: str, patience: int, checkpoint: Dict[str, Any],
                  log_interval: int, by_epoch: bool, cudnn_benchmark: bool = False) -> None:
    logger: Dict[str, Any] = dict(type="LoggerHook", interval=log_interval)
    if not by_epoch:
        logger["log_metric_by_epoch"] = False
    checkpoint = dict(checkpoint)
    keep = checkpoint.get("max_keep_ckpts", -1)
    hooks = [dict(type="YmirProgressHook"), dict(type="YmirStageHook")]
    if keep > 0:  # one spare, trimmed once the new file is complete (see YmirKeepCheckpoints)
        checkpoint["max_keep_ckpts"] = keep + 1
        hooks.append(dict(type="YmirKeepCheckpoints", keep=keep))
    cfg.default_hooks = dict(
        timer=dict(type="IterTimerHook"), logger=logger, param_scheduler=dict(type="ParamSchedulerHook"),
        checkpoint=dict(type="CheckpointHook", **checkpoint), sampler_seed=dict(type="DistSamplerSeedHook"))
    if patience > 0:
        hooks.append(dict(type="EarlyStoppingHook", monitor=metric, rule="greater", patience=patience))
    cfg.custom_hooks = hooks
    cfg.log_processor = dict(by_epoch=by_epoch)
    cfg.log_level = "INFO"
    # mmengine keeps visualizers by name for the whole process: a unique name per run, or a second
    # training in the same process (the demo) writes into the first one's TensorBoard folder.
    cfg.visualizer = dict(type=visualizer, name=f"ymir-{scope}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                          vis_backends=[dict(type="TensorboardVisBackend", save_dir=ctx.env.output.tensorboard_dir)])
    cfg.env_cfg = dict(cudnn_benchmark=cudnn_benchmark, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                       dist_cfg=dict(backend="nccl" if use_cuda else "gloo"))
    cfg.default_scope = scope
    cfg.randomness = dict(seed=args.seed if args.seed is not None else 0, deterministic=args.deterministic)
    cfg.work_dir = work_dir
    cfg.launcher = "pytorch" if distributed else "none"
    if distributed and not use_cuda:
        # mmengine passes the local rank as device_ids, which DDP refuses for CPU modules.
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                                     find_unused_parameters=False)


def set_num_classes(node: Any, n: int) -> None:
    """Patch every ``num_classes`` of the model (every head: decode and auxiliary, box and mask)."""
    if isinstance(node, dict):
        if "num_classes" in node:
            node["num_classes"] = n
        for v in node.values():
            set_num_classes(v, n)
    elif isinstance(node, list):
        for v in node:
            set_num_classes(v, n)
