"""The mmengine config of a training run over an mmdet model (detection, instance segmentation):
preset + YMIR hyper-parameters → data, pipelines, schedule, optimizer, hooks.

A kind passes its presets, its evaluator and whether the model learns masks; everything else
(square input, augmentation, the warm-up and cosine tail, the detection cap) is one rule here.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from .mmconfig import apply_runtime, set_num_classes
from .options import apply_overrides, load_preset, parse_args_options, parse_img_size

# The detectors' coarsest feature map has stride 32: a side that is not a multiple of it gives
# pyramid levels that do not line up.
SIZE_STEP = 32
PAD = dict(img=(114, 114, 114), masks=0)


def square_size(value, default: int, file: str = "config.yaml") -> int:
    """The network's square input side from ``img_size`` (its width), rounded up to a multiple of 32."""
    size = parse_img_size(value, (default, default), file)[0]
    return -(-size // SIZE_STEP) * SIZE_STEP


def _annotations(with_mask: bool) -> Dict[str, Any]:
    return dict(type="LoadAnnotations", with_bbox=True, with_mask=with_mask, poly2mask=with_mask)


def train_pipeline(size: int, augment: str, with_mask: bool = False) -> List[Dict[str, Any]]:
    steps: List[Dict[str, Any]] = [dict(type="YmirLoadImage"), _annotations(with_mask)]
    if augment == "light":
        steps += [dict(type="Resize", scale=(size, size), keep_ratio=True)]
    else:
        steps += [dict(type="RandomResize", scale=(size, size), ratio_range=(0.5, 2.0), keep_ratio=True),
                  dict(type="RandomCrop", crop_size=(size, size), allow_negative_crop=True,
                       recompute_bbox=with_mask),
                  dict(type="YOLOXHSVRandomAug")]
    steps += [dict(type="RandomFlip", prob=0.5), dict(type="Pad", size=(size, size), pad_val=PAD)]
    if with_mask:  # a crop can leave slivers of an instance: no box, an empty mask
        steps.append(dict(type="FilterAnnotations", min_gt_bbox_wh=(1, 1), by_mask=True))
    return steps + [dict(type="PackDetInputs")]


def model_pads(model_cfg) -> bool:
    """True when the model's data preprocessor pads the batch itself (two-stage models): a Pad
    step would then make ``img_shape`` the padded square, and mmdet would clip boxes to it and
    paste masks outside the image."""
    return int(model_cfg.get("data_preprocessor", {}).get("pad_size_divisor", 1)) > 1


def test_pipeline(size: int, with_annotations: bool, with_mask: bool = False, pad: bool = True
                  ) -> List[Dict[str, Any]]:
    steps: List[Dict[str, Any]] = [dict(type="YmirLoadImage"), dict(type="Resize", scale=(size, size),
                                                                        keep_ratio=True)]
    if pad:
        steps.append(dict(type="Pad", size=(size, size), pad_val=PAD))
    if with_annotations:
        steps.append(_annotations(with_mask))
    return steps + [dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape",
                                                          "scale_factor"))]


def head_test_cfg(cfg):
    """The test_cfg that filters the final detections: a two-stage model's ``rcnn`` part."""
    tc = cfg.model.test_cfg
    return tc.rcnn if "rcnn" in tc else tc


def apply_detection_cap(cfg, max_detections: int, score_thr: Optional[float] = None) -> None:
    """Keep up to ``max_detections`` objects per image after NMS and enough candidates before it
    (mmdet's defaults of 100-300 silently drop objects in dense scenes). Objects under the
    threshold the caller applies anyway are dropped before NMS: a lower-scored one never
    suppresses a higher one, so the output is the same and NMS is much cheaper."""
    tc = head_test_cfg(cfg)
    tc.max_per_img = max_detections
    if score_thr is not None:
        tc.score_thr = max(float(tc.get("score_thr", 0.0)), score_thr)
    if "nms_pre" in tc or tc is cfg.model.test_cfg:  # a one-stage head ranks its candidates itself
        tc.nms_pre = max(tc.get("nms_pre", 1000), 4 * max_detections)
    if "rpn" in cfg.model.test_cfg:  # enough proposals for the cap
        rpn = cfg.model.test_cfg.rpn
        rpn.max_per_img = max(rpn.get("max_per_img", 1000), max_detections)


def build_train_config(ctx, data: Dict[str, Any], work_dir: str, distributed: bool, use_cuda: bool, *,
                       kind: str, presets: Sequence[str], evaluator: Dict[str, Any], metric: str,
                       with_mask: bool = False):
    """(mmengine config, args_options, input side) of a training run; ``evaluator`` is the val
    metric (without its ``ann_file``), ``metric`` the figure that picks the best checkpoint."""
    p = ctx.cfg.params
    file = ctx.cfg.source_file
    cfg = load_preset(ctx, kind, presets, "mmdet")
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
                     pipeline=train_pipeline(size, meta.get("augment", "full"), with_mask)), **loader)
    cfg.val_dataloader = dict(
        batch_size=1, sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dict(type="CocoDataset", ann_file=data["val_json"], data_prefix=dict(img=""), metainfo=metainfo,
                     test_mode=True, pipeline=test_pipeline(size, True, with_mask, not model_pads(cfg.model))),
        **loader)
    cfg.val_evaluator = dict(evaluator, ann_file=data["val_json"])
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=val_interval)
    cfg.val_cfg = dict(type="ValLoop")
    for key in ("test_dataloader", "test_evaluator", "test_cfg"):
        cfg.pop(key, None)
    amp = bool(p["fp16"]) and use_cuda
    optimizer = dict(type="AdamW", lr=lr, weight_decay=0.05)
    if meta.get("optimizer") == "SGD":  # what the two-stage models are tuned with
        optimizer = dict(type="SGD", lr=lr, momentum=0.9, weight_decay=1e-4)
    cfg.optim_wrapper = dict(type="AmpOptimWrapper" if amp else "OptimWrapper", optimizer=optimizer,
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
                  visualizer="DetLocalVisualizer", metric=metric, patience=p["early_stop_patience"],
                  checkpoint=dict(interval=val_interval, max_keep_ckpts=keep if keep > 0 else -1),
                  log_interval=10, by_epoch=True)
    if distributed and not use_cuda and cfg.model.get("type") == "RTMDet":
        cfg.model.use_syncbn = False  # RTMDet's SyncBN needs GPUs
    apply_overrides(cfg, p["cfg_options"], args, file)
    return cfg, args, size
