"""Object detection over mmdet (object_type 2)."""
from executor.registry import TaskKind, register_kind

from .params import SCHEMAS

KIND = register_kind(TaskKind(
    name="det", object_type=2, description="object detection (mmdet)",
    schemas=SCHEMAS, entry=None, export_format="ark:raw"))
