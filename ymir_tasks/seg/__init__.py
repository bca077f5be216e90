"""Semantic segmentation over mmsegmentation (object_type 3)."""
from executor.registry import TaskKind, register_kind

from .params import SCHEMAS

KIND = register_kind(TaskKind(
    name="seg", object_type=3, description="semantic segmentation (mmsegmentation)",
    schemas=SCHEMAS, entry="ymir_tasks.seg.entry", simulation="ymir_tasks.seg.simulation", export_format="seg-coco:raw",
    main_metric="mIoU", workspace="ymir_tasks.seg.workspace",
    demo_overrides={"training": {"config_file": "tiny", "max_iters": 300, "interval": 100,
                                 "samples_per_gpu": 8, "workers_per_gpu": 0},
                    "infer": {"samples_per_gpu": 8, "workers_per_gpu": 0},
                    "mining": {"samples_per_gpu": 8, "workers_per_gpu": 0, "max_superpixel_per_image": 64,
                               "max_kept_mining_image": 8}}))
