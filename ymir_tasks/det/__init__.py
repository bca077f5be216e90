"""Object detection over mmdet (object_type 2)."""
from executor.registry import TaskKind, register_kind

from .params import SCHEMAS

KIND = register_kind(TaskKind(
    name="det", object_type=2, description="object detection (mmdet)",
    schemas=SCHEMAS, entry="ymir_tasks.det.entry", simulation="ymir_tasks.det.simulation", export_format="ark:raw",
    main_metric="mAP", workspace="ymir_tasks.det.workspace",
    demo_overrides={"training": {"config_file": "tiny", "max_epochs": 40, "val_interval": 20,
                                 "samples_per_gpu": 8, "workers_per_gpu": 0},
                    "infer": {"samples_per_gpu": 8, "workers_per_gpu": 0},
                    "mining": {"samples_per_gpu": 8, "workers_per_gpu": 0}}))
