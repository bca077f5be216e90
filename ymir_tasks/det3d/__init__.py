"""LiDAR 3D object detection over mmdet3d with SS3D-style instance-bank mining.

YMIR has no 3D object type: this kind uses ``object_type: 100`` (a value the platform does not
define, so a 3D image is never confused with a 2D one) and the same /in, /out contract with
point-cloud assets (see :mod:`executor.pointcloud`)."""
from executor.registry import TaskKind, register_kind

from .params import OBJECT_TYPE, SCHEMAS

KIND = register_kind(TaskKind(
    name="det3d", object_type=OBJECT_TYPE, description="LiDAR 3D detection (mmdet3d)",
    schemas=SCHEMAS, entry="ymir_tasks.det3d.entry", simulation="ymir_tasks.det3d.simulation", export_format="det3d:raw",
    main_metric="mAP", workspace="ymir_tasks.det3d.workspace", infer_check="ymir_tasks.det3d.verify:check_infer",
    demo_overrides={"training": {"config_file": "tiny", "max_epochs": 40, "val_interval": 10,
                                 "samples_per_gpu": 4, "workers_per_gpu": 0},
                    "infer": {"samples_per_gpu": 4, "workers_per_gpu": 0},
                    "mining": {"samples_per_gpu": 4, "workers_per_gpu": 0}}))
