"""Builds the mmengine config of a segmentation run from a preset (``configs/seg``)
and the YMIR hyper-parameters."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple


from ..common.mmconfig import apply_runtime, set_num_classes
from ..common.options import apply_overrides, find_preset, load_preset, parse_args_options, parse_img_size

PRESETS = ("fastscnn", "deeplabv3plus", "tiny")
CONFIG = "seg_config.yaml"  # the stage's config file, beside its checkpoint
log = logging.getLogger(__name__)


def preset_file(name: str, file: str = "config.yaml") -> Path:
    """A preset name or the path of a config file."""
    return find_preset("seg", PRESETS, name, file)


def set_class_weight(node: Any, weights: List[float]) -> int:
    """Give every softmax cross-entropy loss of the model (decode and auxiliary heads) ``weights``
    (as :class:`~ymir_tasks.seg.mm.YmirCrossEntropyLoss`, which ignores 255); the number set."""
    count = 0
    if isinstance(node, dict):
        if node.get("type") in ("CrossEntropyLoss", "YmirCrossEntropyLoss") and not node.get("use_sigmoid", False):
            node["type"] = "YmirCrossEntropyLoss"
            node["class_weight"] = list(weights)
            return 1
        for v in node.values():
            count += set_class_weight(v, weights)
    elif isinstance(node, list):
        for v in node:
            count += set_class_weight(v, weights)
    return count


def class_weights(text: str, pixels: List[int], classes: List[str], file: str) -> Optional[List[float]]:
    """The ``class_weight`` hyper-parameter: auto (from the training pixels), none, or a list."""
    from executor.errors import config_error

    from .data import balanced_class_weight

    text = str(text).strip().lower()
    if text in ("", "none", "off", "false"):
        return None
    if text == "auto":
        if len(pixels) != len(classes):  # prepare(count_pixels=True) counts them
            raise RuntimeError(f"class_weight auto: {len(pixels)} pixel counts for {len(classes)} classes")
        return balanced_class_weight(pixels)
    try:
        weights = [float(x) for x in text.replace(",", " ").split()]
    except ValueError:
        weights = []
    if len(weights) != len(classes) or any(w < 0 for w in weights):
        raise config_error(f"class_weight {text!r}: auto, none, or {len(classes)} non-negative numbers, one per "
                           f"model class ({', '.join(classes)})", file=file, field="class_weight")
    return weights


def palette(n: int) -> List[List[int]]:
    """Deterministic, well separated colours (background black)."""
    out = [[0, 0, 0]]
    for i in range(1, n):
        h = (i * 0.618033988749895) % 1.0
        r, g, b = _hsv(h, 0.8, 0.95)
        out.append([int(r * 255), int(g * 255), int(b * 255)])
    return out[:n]


def _hsv(h: float, s: float, v: float) -> Tuple[float, float, float]:
    import colorsys
    return colorsys.hsv_to_rgb(h, s, v)


def train_pipeline(img_size: Tuple[int, int], augment: str) -> List[Dict[str, Any]]:
    w, h = img_size
    steps: List[Dict[str, Any]] = [dict(type="YmirLoadImage"), dict(type="LoadAnnotations")]
    if augment == "light":
        steps += [dict(type="Resize", scale=(w, h), keep_ratio=True), dict(type="RandomFlip", prob=0.5)]
    else:
        steps += [dict(type="RandomResize", scale=(w, h), ratio_range=(0.5, 2.0), keep_ratio=True),
                  dict(type="RandomCrop", crop_size=(h, w), cat_max_ratio=0.75),
                  dict(type="RandomFlip", prob=0.5), dict(type="PhotoMetricDistortion")]
    return steps + [dict(type="PackSegInputs")]


def test_pipeline(img_size: Tuple[int, int], with_annotations: bool) -> List[Dict[str, Any]]:
    # Resize before loading the ground truth: the metric compares at the original size.
    steps: List[Dict[str, Any]] = [dict(type="YmirLoadImage"), dict(type="Resize", scale=img_size,
                                                                         keep_ratio=True)]
    if with_annotations:
        steps.append(dict(type="LoadAnnotations"))
    return steps + [dict(type="PackSegInputs")]


def build_train_config(ctx, data: Dict[str, Any], work_dir: str, distributed: bool, use_cuda: bool):
    """The full mmengine Config of a training run."""
    p = ctx.cfg.params
    file = ctx.cfg.source_file
    cfg = load_preset(ctx, "seg", PRESETS, "mmseg")
    meta = dict(cfg.get("ymir_preset", {}))
    img_size = parse_img_size(p["img_size"], tuple(meta.get("img_size", (512, 512))), file)
    lr = p["learning_rate"] or float(meta.get("lr", 0.01))
    args = parse_args_options(p["args_options"], file)
    labels = data["labels"]
    classes = labels.model_classes
    set_num_classes(cfg.model, len(classes))
    weights = class_weights(p["class_weight"], data["train_pixels"], classes, file)
    if weights is not None and set_class_weight(cfg.model, weights):
        log.info("class weights (%s): %s", p["class_weight"],
                                         ", ".join(f"{c} {w:g}" for c, w in zip(classes, weights)))
    max_iters = p["max_iters"]
    interval = min(p["interval"], max_iters)
    samples, workers = p["samples_per_gpu"], p["workers_per_gpu"]
    metainfo = dict(classes=classes, palette=palette(len(classes)))
    cfg.model.data_preprocessor.update(size_divisor=32)
    cfg.model.pop("pretrained", None)
    loader = dict(num_workers=workers, persistent_workers=workers > 0)
    cfg.train_dataloader = dict(
        batch_size=samples, sampler=dict(type="InfiniteSampler", shuffle=True),
        dataset=dict(type="YmirSegDataset", ann_file=data["train_list"], metainfo=metainfo,
                     pipeline=train_pipeline(img_size, meta.get("augment", "full"))), **loader)
    cfg.val_dataloader = dict(
        batch_size=1, sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dict(type="YmirSegDataset", ann_file=data["val_list"], metainfo=metainfo,
                     pipeline=test_pipeline(img_size, True)), **loader)
    cfg.val_evaluator = dict(type="YmirIoUMetric", iou_metrics=["mIoU"])
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=interval)
    cfg.val_cfg = dict(type="ValLoop")
    for key in ("test_dataloader", "test_evaluator", "test_cfg"):
        cfg.pop(key, None)
    optimizer = dict(type="SGD", lr=lr, momentum=0.9, weight_decay=4e-5)
    amp = bool(p["fp16"]) and use_cuda
    cfg.optim_wrapper = dict(type="AmpOptimWrapper" if amp else "OptimWrapper", optimizer=optimizer,
                             clip_grad=None)
    warmup = min(100, max(1, max_iters // 10))
    cfg.param_scheduler = [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=warmup)]
    if max_iters > warmup:  # the poly decay after the warm-up; a run shorter than it has only the warm-up
        cfg.param_scheduler.append(
            dict(type="PolyLR", eta_min=lr * 1e-3, power=0.9, by_epoch=False, begin=warmup, end=max_iters))
    keep = p["max_keep_ckpts"]
    apply_runtime(cfg, ctx, args, work_dir=work_dir, distributed=distributed, use_cuda=use_cuda, scope="mmseg",
                  visualizer="SegLocalVisualizer", metric="mIoU", patience=p["early_stop_patience"],
                  checkpoint=dict(by_epoch=False, interval=interval, max_keep_ckpts=keep if keep > 0 else -1,
                                  save_last=True),
                  log_interval=max(1, min(50, interval // 2)), by_epoch=False, cudnn_benchmark=use_cuda)
    apply_overrides(cfg, p["cfg_options"], args, file)
    cfg.ymir = dict(kind="seg", img_size=list(img_size), preset=p["config_file"], lr=lr)
    return cfg, args, img_size
