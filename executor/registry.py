"""Task kinds (det, seg, det3d) register here; the dispatcher only looks them up.

A kind declares its object type, its hyper-parameter schemas and the module
that holds ``train(ctx)``, ``infer(ctx)`` and ``mine(ctx)``. That module is
imported only when a task runs, so the CLI starts without torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .errors import ErrorCode, YmirError
from .hyperparams import Schema

# object_type of the 3D image: YMIR defines none for point clouds, so a value it does not use.
DET3D_OBJECT_TYPE = 100
OBJECT_TYPE_NAMES = {2: "detection", 3: "semantic segmentation", 4: "instance segmentation",
                     50: "multi-modal", DET3D_OBJECT_TYPE: "LiDAR 3D detection (ymir-executor extension)"}


@dataclass
class TaskKind:
    name: str  # 'det' | 'seg' | 'det3d'
    object_type: int
    description: str
    schemas: Dict[str, Schema]  # 'training' | 'mining' | 'infer' -> Schema
    entry: Optional[str] = None  # module with train/infer/mine; None: not implemented in this build
    export_format: str = ""
    # config.yaml overrides per task for the demo and CPU tests (a tiny preset, few iterations).
    demo_overrides: Dict[str, Dict[str, object]] = field(default_factory=dict)
    # module with what `ymir-executor simulate` needs of the kind (metric, classes per image,
    # equal-compute training knobs, its strategies); None: the kind cannot be simulated
    simulation: Optional[str] = None

    @property
    def implemented(self) -> bool:
        return self.entry is not None

    def supports(self, task: str) -> bool:
        if self.entry is None:
            return False
        fn_name = {"training": "train", "mining": "mine", "infer": "infer"}[task]
        return hasattr(importlib.import_module(self.entry), fn_name)

    def entrypoint(self, task: str) -> Callable:
        if self.entry is None:
            raise YmirError(ErrorCode.OBJECT_TYPE,
                            f"task kind '{self.name}' ({self.description}) has no {task} implementation "
                            f"installed in this build")
        module = importlib.import_module(self.entry)
        fn_name = {"training": "train", "mining": "mine", "infer": "infer"}[task]
        fn = getattr(module, fn_name, None)
        if fn is None:
            raise YmirError(ErrorCode.OBJECT_TYPE, f"task kind '{self.name}' does not support {task}")
        return fn


_KINDS: Dict[str, TaskKind] = {}
_loaded = False


def register_kind(kind: TaskKind) -> TaskKind:
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    _KINDS.pop(name, None)


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("ymir_tasks")  # each sub-package registers its kind


def all_kinds() -> List[TaskKind]:
    _load()
    return sorted(_KINDS.values(), key=lambda k: k.object_type)


def get_kind(name: str) -> TaskKind:
    _load()
    if name not in _KINDS:
        raise YmirError(ErrorCode.OBJECT_TYPE, f"unknown task kind {name!r}; known: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


def kind_for_object_type(object_type: int) -> TaskKind:
    _load()
    for kind in _KINDS.values():
        if kind.object_type == object_type:
            return kind
    label = OBJECT_TYPE_NAMES.get(object_type, "unknown")
    raise YmirError(ErrorCode.OBJECT_TYPE, f"object_type {object_type} ({label}) is not supported by this image",
                    field="object_type")
