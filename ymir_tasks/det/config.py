"""Builds the mmengine config of a detection run from a preset (``configs/det``) and the
YMIR hyper-parameters."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional


from ..common.mmconfig import apply_runtime, set_num_classes
from ..common.options import apply_overrides, find_preset, load_preset, parse_args_options, parse_img_size

PRESETS = ("rtmdet_tiny", "tiny")
CONFIG = "det_config.yaml"  # the stage's config file, beside its checkpoint


# The detectors' coarsest feature map has stride 32: a side that is not a multiple of it gives
# pyramid levels that do not line up.
SIZE_STEP = 32


def square_size(value, default: int, file: str = "config.yaml") -> int:
    """The network's square input side from ``img_size`` (its width), rounded up to a multiple of 32."""
    size = parse_img_size(value, (default, default), file)[0]
    return -(-size // SIZE_STEP) * SIZE_STEP


def preset_file(name: str, file: str = "config.yaml") -> Path:
    """A preset name or the path of a config file."""
    return find_preset("det", PRESETS, name, file)


def train_pipeline(size: int, augment: str) -> List[Dict[str, Any]]:
    steps: List[Dict[str, Any]] = [dict(type="YmirLoadImage"), dict(type="LoadAnnotations", with_bbox=True)]
    if augment == "light":
        steps += [dict(type="Resize", scale=(size, size), keep_ratio=True)]
    else:
        steps += [dict(type="RandomResize", scale=(size, size), ratio_range=(0.5, 2.0), keep_ratio=True),
                  dict(type="RandomCrop", crop_size=(size, size), allow_negative_crop=True),
                  dict(type="YOLOXHSVRandomAug")]
    return steps + [dict(type="RandomFlip", prob=0.5), dict(type="Pad", size=(size, size),
                                                           pad_val=dict(img=(114, 114, 114))),
                    dict(type="PackDetInputs")]


def test_pipeline(size: int, with_annotations: bool) -> List[Dict[str, Any]]:
    steps: List[Dict[str, Any]] = [dict(type="YmirLoadImage"), dict(type="Resize", scale=(size, size),
                                                                        keep_ratio=True),
                                   dict(type="Pad", size=(size, size), pad_val=dict(img=(114, 114, 114)))]
    if with_annotations:
        steps.append(dict(type="LoadAnnotations", with_bbox=True))
    return steps + [dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape",
                                                          "scale_factor"))]


def build_train_config(ctx, data: Dict[str, Any], work_dir: str, distributed: bool, use_cuda: bool):
    p = ctx.cfg.params
    file = ctx.cfg.source_file
    cfg = load_preset(ctx, "det", PRESETS, "mmdet")
    meta = dict(cfg.get("ymir_preset", {}))
    size = square_size(p["img_size"], int(meta.get("img_size", 640)), file)
    lr = p["learning_rate"] or float(meta.get("lr", 0.004))
    args = parse_args_options(p["args_options"], file)
    classes = list(ctx.class_names)
    set_num_classes(cfg.model, len(classes))
    apply_detection_cap(cfg, p["max_detections"])
    epochs, val_interval = p["max_epochs"], min(p["val_interval"], p["max_epochs"])
    workers = p["workers_per_gpu"]
    loader = dict(num_workers=workers, persistent_workers=workers > 0)
    metainfo = dict(classes=tuple(classes))
    cfg.train_dataloader = dict(
        batch_size=p["samples_per_gpu"], sampler=dict(type="DefaultSampler", shuffle=True),
        batch_sampler=None,
        dataset=dict(type="CocoDataset", ann_file=data["train_json"], data_prefix=dict(img=""), metainfo=metainfo,
                     filter_cfg=dict(filter_empty_gt=False, min_size=0),
                     pipeline=train_pipeline(size, meta.get("augment", "full"))), **loader)
    cfg.val_dataloader = dict(
        batch_size=1, sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dict(type="CocoDataset", ann_file=data["val_json"], data_prefix=dict(img=""), metainfo=metainfo,
                     test_mode=True, pipeline=test_pipeline(size, True)), **loader)
    cfg.val_evaluator = dict(type="YmirDetMetric", ann_file=data["val_json"], class_names=classes,
                             conf_threshold=p["conf_threshold"], max_dets=p["max_detections"])
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=val_interval)
    cfg.val_cfg = dict(type="ValLoop")
    for key in ("test_dataloader", "test_evaluator", "test_cfg"):
        cfg.pop(key, None)
    amp = bool(p["fp16"]) and use_cuda
    cfg.optim_wrapper = dict(type="AmpOptimWrapper" if amp else "OptimWrapper",
                             optimizer=dict(type="AdamW", lr=lr, weight_decay=0.05),
                             paramwise_cfg=dict(norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True))
    iters_per_epoch = -(-int(data.get("num_train", 1)) // p["samples_per_gpu"])
    warmup = max(1, min(300, epochs * iters_per_epoch // 5))  # never longer than a fifth of the run
    cfg.param_scheduler = [dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=warmup)]
    if epochs >= 2:  # the cosine tail over the second half; a 1-epoch run has only the warm-up
        cfg.param_scheduler.append(
            dict(type="CosineAnnealingLR", eta_min=lr * 0.05, by_epoch=True, begin=max(1, epochs // 2), end=epochs,
                 T_max=max(1, epochs - epochs // 2), convert_to_iter_based=True))
    keep = p["max_keep_checkpoints"]
    apply_runtime(cfg, ctx, args, work_dir=work_dir, distributed=distributed, use_cuda=use_cuda, scope="mmdet",
                  visualizer="DetLocalVisualizer", metric="mAP", patience=p["early_stop_patience"],
                  checkpoint=dict(interval=val_interval, max_keep_ckpts=keep if keep > 0 else -1),
                  log_interval=10, by_epoch=True)
    if distributed and not use_cuda:
        cfg.model.use_syncbn = False  # RTMDet's SyncBN needs GPUs
    apply_overrides(cfg, p["cfg_options"], args, file)
    return cfg, args, size


def apply_detection_cap(cfg, max_detections: int, score_thr: Optional[float] = None) -> None:
    """Keep up to ``max_detections`` boxes per image after NMS and enough candidates before it
    (mmdet's defaults of 100-300 silently drop objects in dense scenes). Boxes under the
    threshold the caller applies anyway are dropped before NMS: a lower-scored box never
    suppresses a higher one, so the output is the same and NMS is much cheaper."""
    cfg.model.test_cfg.max_per_img = max_detections
    if score_thr is not None:
        cfg.model.test_cfg.score_thr = max(float(cfg.model.test_cfg.get("score_thr", 0.0)), score_thr)
    cfg.model.test_cfg.nms_pre = max(cfg.model.test_cfg.get("nms_pre", 1000), 4 * max_detections)
