"""Semantic segmentation over mmsegmentation (object_type 3)."""
from executor.registry import TaskKind, register_kind

from .params import SCHEMAS

KIND = register_kind(TaskKind(
    name="seg", object_type=3, description="semantic segmentation (mmsegmentation)",
    schemas=SCHEMAS, entry=None, export_format="seg-coco:raw"))
