"""Task kinds register here; the contract layer only looks them up and names none.

A kind is one folder under ``ymir_tasks/``. It declares what the contract layer needs to know:
its object type, hyper-parameter schemas, main metric, the module that holds ``train(ctx)``,
``infer(ctx)`` and ``mine(ctx)`` (imported only when a task runs, so the CLI starts without
torch), its sample workspace, and, for an object type YMIR does not define, how its
infer-result is checked.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .errors import ErrorCode, YmirError
from .hyperparams import Schema

# The object types YMIR defines (its ``ObjectType``); a kind may bring one of its own.
YMIR_OBJECT_TYPES = {2: "detection", 3: "semantic segmentation", 4: "instance segmentation", 50: "multi-modal"}
# Where YMIR >= 2.4 reads each type's templates when a manifest lists several types
# (controller/config/common_task.py IMAGE_CONFIG_DIR_NAMES): /img-man/<dir>/<task>-template.yaml.
IMAGE_CONFIG_DIR_NAMES = {2: "det", 3: "semantic-seg", 4: "instance-seg", 50: "multi-modal"}
# Values of YMIR's ObjectType that are no task type: a kind using one must not be registered there.
YMIR_NON_TASK_TYPES = {0: "unknown", 1: "classification (not implemented)", 100: "no annotations"}
# docker/<MULTI_IMAGE>/img-man: the one image serving every kind of a YMIR object type.
MULTI_IMAGE = "multi"


@dataclass
class TaskKind:
    name: str  # the folder under ymir_tasks/ and under docker/
    object_type: int
    description: str
    schemas: Dict[str, Schema]  # 'training' | 'mining' | 'infer' -> Schema
    entry: Optional[str] = None  # module with train/infer/mine; None: not implemented in this build
    export_format: str = ""
    main_metric: str = "mAP"  # the stage metric that makes a stage "best" (result.yaml, verify)
    # module of the sample workspace: make_workspace(directory, kind, task, **counts), and optional
    # read_back(env, path_map, class_names) -> counts, demo_summary(train_ws, mine_ws) -> table cells
    workspace: Optional[str] = None
    # "module:function(env, class_names, report)" checking infer-result for an object type YMIR does
    # not define; None: YMIR's rules for the type (detection for 2, COCO masks for 3 and 4)
    infer_check: Optional[str] = None
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

    def hook(self, name: str) -> Optional[Callable]:
        """A function of the kind's workspace module, or None when it has none."""
        if self.workspace is None:
            return None
        return getattr(importlib.import_module(self.workspace), name, None)


def resolve(ref: str) -> Callable:
    """``module:function`` -> the function."""
    module, _, fn = ref.partition(":")
    return getattr(importlib.import_module(module), fn)


_KINDS: Dict[str, TaskKind] = {}
_loaded = False


def register_kind(kind: TaskKind) -> TaskKind:
    if kind.name == MULTI_IMAGE:  # docker/<name>/ would be both a kind's image and the multi-type one
        raise ValueError(f"a task kind cannot be named {MULTI_IMAGE!r}")
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


def multi_type_kinds() -> List[TaskKind]:
    """The kinds of the multi-type image: every kind of a YMIR object type, by type. Two kinds of
    one type would share its template folder, so that is refused."""
    kinds = [k for k in all_kinds() if k.object_type in YMIR_OBJECT_TYPES]
    types = [k.object_type for k in kinds]
    dup = sorted({t for t in types if types.count(t) > 1})
    if dup:
        raise ValueError(f"object type(s) {dup} have more than one kind: the multi-type image needs one per type")
    return kinds


def kind_for_object_type(object_type: int) -> TaskKind:
    _load()
    for kind in _KINDS.values():
        if kind.object_type == object_type:
            return kind
    label = YMIR_OBJECT_TYPES.get(object_type, "unknown")
    raise YmirError(ErrorCode.OBJECT_TYPE, f"object_type {object_type} ({label}) is not supported by this image",
                    field="object_type")
