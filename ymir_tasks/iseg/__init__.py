"""Instance segmentation over mmdet (object_type 4)."""
from executor.registry import TaskKind, register_kind

from .params import SCHEMAS

KIND = register_kind(TaskKind(
    name="iseg", object_type=4, description="instance segmentation (mmdet)",
    schemas=SCHEMAS, entry="ymir_tasks.iseg.entry", simulation="ymir_tasks.iseg.simulation",
    export_format="seg-coco:raw",
    main_metric="maskAP", workspace="ymir_tasks.iseg.workspace",
    demo_overrides={"training": {"config_file": "tiny", "max_epochs": 60, "val_interval": 20,
                                 "samples_per_gpu": 8, "workers_per_gpu": 0},
                    "infer": {"samples_per_gpu": 8, "workers_per_gpu": 0},
                    "mining": {"samples_per_gpu": 8, "workers_per_gpu": 0}}))
