"""A training run over an mmdet model (detection, instance segmentation): YMIR index → the
kind's COCO json (rank 0) → mmengine Runner → result.yaml stages written after every evaluation."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Sequence

from . import runtime
from .stages import StageWriter
from .training import barrier, remove_checkpoints, run_dirs, set_start_weights


def train_mmdet(ctx, launcher, *, kind: str, config_name: str, prepare: Callable[..., Dict[str, Any]],
                build_config: Callable, stage_metrics: Sequence[str], counts: Sequence[str] = (),
                attachment: Callable[[Mapping[str, Any]], Dict[str, Any]],
                meta_from_metrics: Sequence[str] = ()) -> None:
    """``prepare(env, class_names, cache, workers)`` writes train.json / val.json;
    ``build_config(ctx, data, work_dir, distributed, use_cuda)`` -> (cfg, args, input side)."""

    from . import hooks  # noqa: F401
    from . import mmdet_metric  # noqa: F401  (the val metrics the configs name)

    work_dir, cache = run_dirs(ctx, kind)
    if runtime.is_main_process():
        data = prepare(ctx.env, ctx.class_names, cache, ctx.cfg["workers_per_gpu"])
    barrier(launcher)
    if not runtime.is_main_process():
        data = {"train_json": os.path.join(cache, "train.json"), "val_json": os.path.join(cache, "val.json")}
    cfg, args, size = build_config(ctx, data, work_dir, bool(launcher), runtime.cuda_available())
    set_start_weights(ctx, cfg, args, work_dir, launcher, "mmdet")
    writer = None
    if runtime.is_main_process():
        stage_meta = {"kind": kind, "class_names": list(ctx.class_names), "img_size": size,
                      "preset": ctx.cfg["config_file"], "conf_threshold": ctx.cfg["conf_threshold"]}
        writer = StageWriter(ctx, work_dir, cfg, config_name, stage_meta, list(stage_metrics), counts=list(counts),
                             attachment=attachment, meta_from_metrics=list(meta_from_metrics))
    runtime.set_task_context(ctx, stage_writer=writer)
    with runtime.trusted_checkpoints():
        runner = runtime.build_runner(cfg)
        runner.train()
    if runtime.is_main_process():
        remove_checkpoints(work_dir)
