"""Builds the mmengine config of a 3D run from a PointPillars preset (``configs/det3d``) and the
hyper-parameters: point-cloud range and pillar size (kept consistent across the voxel layer,
the pillar encoder and the scatter grid), one anchor per class from the training labels' mean
size and bottom height, per-class IoU assigners, CPU metric, hooks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from executor.errors import config_error

from ..common.mmconfig import apply_runtime
from ..common.options import apply_overrides, find_preset, load_preset, parse_args_options

PRESETS = ("pointpillars", "tiny")
CONFIG = "det3d_config.yaml"  # the stage's config file, beside its checkpoint
# Fallback anchor (dx, dy, dz) for a class without training boxes: a KITTI car.
DEFAULT_ANCHOR = (3.9, 1.6, 1.56)


def preset_file(name: str, file: str = "config.yaml") -> Path:
    """A preset name or the path of a config file."""
    return find_preset("det3d", PRESETS, name, file)


def _floats(text: str, n: Tuple[int, ...], key: str, file: str) -> Optional[List[float]]:
    if not str(text).strip():
        return None
    try:
        vals = [float(v) for v in str(text).replace(" ", ",").split(",") if v]
    except ValueError:
        vals = []
    if len(vals) not in n:
        raise config_error(f"invalid value {text!r}, expected {' or '.join(map(str, n))} comma-separated numbers",
                           file=file, field=key)
    return vals


def grid(pcr: Sequence[float], voxel: Sequence[float], file: str = "config.yaml") -> Tuple[int, int]:
    """(nx, ny) pillars; SECOND's three stride-2 stages need both to be multiples of 8."""
    if pcr[3] <= pcr[0] or pcr[4] <= pcr[1] or pcr[5] <= pcr[2]:
        raise config_error(f"point_cloud_range {list(pcr)} is empty along an axis", file=file,
                           field="point_cloud_range")
    if min(voxel[:2]) <= 0:
        raise config_error(f"voxel_size {list(voxel)} must be > 0", file=file, field="voxel_size")
    nx, ny = (pcr[3] - pcr[0]) / voxel[0], (pcr[4] - pcr[1]) / voxel[1]
    if abs(nx - round(nx)) > 1e-4 or abs(ny - round(ny)) > 1e-4 or round(nx) % 8 or round(ny) % 8:
        raise config_error(f"range {list(pcr)} / voxel {list(voxel[:2])} gives a {nx:g} x {ny:g} grid; both must be "
                           "whole multiples of 8", file=file, field="point_cloud_range")
    return int(round(nx)), int(round(ny))


def train_pipeline(pcr: Sequence[float]) -> List[Dict[str, Any]]:
    return [dict(type="YmirLoadPoints", coord_type="LIDAR", load_dim=4, use_dim=4),
            dict(type="LoadAnnotations3D", with_bbox_3d=True, with_label_3d=True),
            dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5),
            dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.95, 1.05]),
            dict(type="PointsRangeFilter", point_cloud_range=list(pcr)),
            dict(type="ObjectRangeFilter", point_cloud_range=list(pcr)),
            dict(type="PointShuffle"),
            dict(type="Pack3DDetInputs", keys=["points", "gt_labels_3d", "gt_bboxes_3d"])]


def test_pipeline(pcr: Sequence[float]) -> List[Dict[str, Any]]:
    return [dict(type="YmirLoadPoints", coord_type="LIDAR", load_dim=4, use_dim=4),
            dict(type="PointsRangeFilter", point_cloud_range=list(pcr)),
            dict(type="Pack3DDetInputs", keys=["points"])]


def anchors(class_stats: Sequence[Dict[str, Any]], pcr: Sequence[float]) -> Tuple[List, List, List]:
    """Per class: anchor range at the class's mean bottom height, its mean size, and an assigner
    (positive IoU 0.6 for car-sized footprints, 0.5 for small ones, as mmdet3d's KITTI config)."""
    zs = [s["z"] for s in class_stats if s.get("z") is not None]
    z_default = sum(zs) / len(zs) if zs else pcr[2] + 1.27
    ranges, sizes, assigners = [], [], []
    for s in class_stats:
        size = list(s["size"]) if s.get("size") else list(DEFAULT_ANCHOR)
        z = s["z"] if s.get("z") is not None else z_default
        ranges.append([pcr[0], pcr[1], z, pcr[3], pcr[4], z])
        sizes.append(size)
        big = size[0] * size[1] >= 4.0
        assigners.append(dict(type="Max3DIoUAssigner", iou_calculator=dict(type="BboxOverlapsNearest3D"),
                              pos_iou_thr=0.6 if big else 0.5, neg_iou_thr=0.45 if big else 0.35,
                              min_pos_iou=0.45 if big else 0.35, ignore_iof_thr=-1))
    return ranges, sizes, assigners


def configure_model(model, pcr: Sequence[float], voxel: Sequence[float], class_stats: Sequence[Dict[str, Any]],
                    max_detections: int, file: str = "config.yaml") -> None:
    nx, ny = grid(pcr, voxel, file)
    vs = [float(voxel[0]), float(voxel[1]), float(pcr[5] - pcr[2])]
    model.data_preprocessor.voxel_layer.point_cloud_range = list(pcr)
    model.data_preprocessor.voxel_layer.voxel_size = vs
    model.voxel_encoder.voxel_size = vs
    model.voxel_encoder.point_cloud_range = list(pcr)
    model.middle_encoder.output_shape = [ny, nx]
    ranges, sizes, assigners = anchors(class_stats, pcr)
    model.bbox_head.num_classes = len(class_stats)
    model.bbox_head.anchor_generator.ranges = ranges
    model.bbox_head.anchor_generator.sizes = sizes
    model.train_cfg.assigner = assigners
    model.test_cfg.max_num = max_detections
    model.test_cfg.nms_pre = max(int(model.test_cfg.get("nms_pre", 100)), 2 * max_detections)


def inference_dataset(class_names: Sequence[str], pcr: Sequence[float]) -> Dict[str, Any]:
    """The dataset entry mmdet3d's inference API reads its pipeline and box type from."""
    return dict(type="YmirLidarDataset", ann_file="", metainfo=dict(classes=tuple(class_names)), test_mode=True,
                lazy_init=True, box_type_3d="LiDAR", pipeline=test_pipeline(pcr))


def build_train_config(ctx, data: Dict[str, Any], work_dir: str, distributed: bool, use_cuda: bool):
    from .metrics import class_thresholds

    p = ctx.cfg.params
    file = ctx.cfg.source_file
    cfg = load_preset(ctx, "det3d", PRESETS, "mmdet3d")
    meta = dict(cfg.get("ymir_preset", {}))
    pcr = _floats(p["point_cloud_range"], (6,), "point_cloud_range", file) or list(meta["point_cloud_range"])
    voxel = _floats(p["voxel_size"], (1, 2, 3), "voxel_size", file) or list(meta["voxel_size"])
    if len(voxel) == 1:
        voxel = voxel * 2
    classes = list(ctx.class_names)
    stats = data["train"]["classes"]
    configure_model(cfg.model, pcr, voxel, stats, 500, file)
    footprints = [s["size"][0] * s["size"][1] if s.get("size") else None for s in stats]
    strict = class_thresholds(p["eval_iou"], classes, footprints, file)
    lr = p["learning_rate"] or float(meta.get("lr", 0.001))
    args = parse_args_options(p["args_options"], file)
    epochs, val_interval = p["max_epochs"], min(p["val_interval"], p["max_epochs"])
    workers = p["workers_per_gpu"]
    loader = dict(num_workers=workers, persistent_workers=workers > 0)
    metainfo = dict(classes=tuple(classes))
    cfg.train_dataloader = dict(
        batch_size=p["samples_per_gpu"], sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(type="YmirLidarDataset", ann_file=data["train"]["pkl"], metainfo=metainfo,
                     filter_empty_gt=False, pipeline=train_pipeline(pcr)), **loader)
    cfg.val_dataloader = dict(
        batch_size=1, sampler=dict(type="DefaultSampler", shuffle=False),
        dataset=dict(type="YmirLidarDataset", ann_file=data["val"]["pkl"], metainfo=metainfo, test_mode=True,
                     pipeline=test_pipeline(pcr)), **loader)
    cfg.val_evaluator = dict(type="YmirDet3DMetric", ann_file=data["val"]["pkl"], class_names=classes,
                             iou_thresholds=strict, conf_threshold=p["conf_threshold"])
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=val_interval)
    cfg.val_cfg = dict(type="ValLoop")
    for key in ("test_dataloader", "test_evaluator", "test_cfg"):
        cfg.pop(key, None)
    cfg.optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, betas=(0.95, 0.99),
                                                                  weight_decay=0.01),
                             clip_grad=dict(max_norm=35, norm_type=2))
    iters_per_epoch = -(-int(data["train"]["frames"]) // p["samples_per_gpu"])
    warmup = max(1, min(200, epochs * iters_per_epoch // 10))
    cfg.param_scheduler = [
        dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=warmup),
        dict(type="CosineAnnealingLR", eta_min=lr * 0.01, by_epoch=True, begin=0, end=epochs, T_max=epochs,
             convert_to_iter_based=True)]
    keep = p["max_keep_checkpoints"]
    apply_runtime(cfg, ctx, args, work_dir=work_dir, distributed=distributed, use_cuda=use_cuda, scope="mmdet3d",
                  visualizer="Visualizer", metric="mAP", patience=p["early_stop_patience"],
                  checkpoint=dict(interval=val_interval, max_keep_ckpts=keep if keep > 0 else -1),
                  log_interval=10, by_epoch=True)
    apply_overrides(cfg, p["cfg_options"], args, file)
    return cfg, args, {"point_cloud_range": pcr, "voxel_size": voxel[:2], "eval_iou": strict}
