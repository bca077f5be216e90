"""Model configs as data: how a stage's config is written, and how a config from ``/in`` is read
without running anything it holds.

A model imported into the platform comes from someone else, so nothing in it may run code:

* mmengine's ``Config.fromfile`` executes a ``.py`` config, and its ``.yaml`` loader is PyYAML's
  full loader (``!!python/object/apply:os.system [...]`` runs a command);
* mmengine's registries import and call any dotted ``type`` they do not know
  (``type='subprocess.getoutput'`` runs a command when the model is built);
* ``_base_`` and ``custom_imports`` make a config read or import further files.

So a stage's config is written as plain YAML (tuples tagged, nothing else), and read back with a
safe loader into a plain dict that is then checked: every ``type`` must name a class registered
in the OpenMMLab registries, no ``_base_`` / ``custom_imports``, no ``init_cfg`` / ``pretrained``
in the model (the stage's weights replace them; they would make the model load another file).
A ``.py`` config from ``/in`` is refused with 300004 unless the task's ``trust_model_code``
hyper-parameter is true; the presets shipped in the image are the image's own code.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import yaml

from executor.errors import ErrorCode, YmirError, model_error

DATA_SUFFIXES = (".yaml", ".yml", ".json")
CODE_SUFFIXES = (".py",)
FORBIDDEN_KEYS = ("_base_", "custom_imports", "_delete_")
TRUST_KEY = "trust_model_code"
# Strings OpenMMLab passes to eval(): mmcv's batched_nms evaluates ``nms.type`` and mmdet's camera
# motion compensation its ``warp_mode``. Only these exact values are allowed there.
NMS_TYPES = frozenset({"nms", "soft_nms", "nms_rotated", "nms_quadri"})
_WARP_MODE = re.compile(r"^cv2\.MOTION_[A-Z]+$")
# mmdet's RoI extractors take ``roi_layer.type`` by name from mmcv.ops (getattr, no registry, no
# import): the RoI layers mmcv has are the allowed values.
ROI_LAYER_TYPES = frozenset({"RoIAlign", "RoIPool", "RoIAlignRotated", "SimpleRoIAlign", "PrRoIPool",
                             "DeformRoIPoolPack", "ModulatedDeformRoIPoolPack"})


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader plus the one Python tag stage configs need: tuples (mmcv's transforms
    tell ``scale=(w, h)`` from a list). Every other ``!!python`` tag stays an error."""


_Loader.add_constructor("tag:yaml.org,2002:python/tuple",
                        lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(tuple, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:python/tuple",
                                                                              data))


def _plain(node: Any, where: str) -> Any:
    """A copy of ``node`` made of dicts, lists, tuples, str, numbers, bools and None only."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: key {k!r} is not a string")
            out[k] = _plain(v, f"{where}.{k}" if where else k)
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_plain(v, f"{where}[{i}]") for i, v in enumerate(node))
    if node is None or isinstance(node, (str, bool, int, float)):
        return node
    raise ValueError(f"{where}: {type(node).__name__} values cannot be written as data")


def dump_config(cfg, path: str) -> None:
    """Write an mmengine Config (or a dict) as data; fails loudly on a value that is not data."""
    body = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    text = yaml.dump(_plain(body, ""), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _walk(node: Any, where: str = "") -> Iterator[Tuple[str, Any, Any]]:
    """(path, key, value) of every mapping entry, depth first."""
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{where}.{k}" if where else str(k)
            yield path, k, v
            yield from _walk(v, path)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}[{i}]")


def registered_types() -> Set[str]:
    """Every name the OpenMMLab registries can build, bare and scope-qualified (``mmdet.RTMDet``)."""
    from mmengine.registry import Registry, root

    names: Set[str] = set()
    todo: List[Registry] = [r for r in vars(root).values() if isinstance(r, Registry)]
    seen: Set[int] = set()
    while todo:
        reg = todo.pop()
        if id(reg) in seen:
            continue
        seen.add(id(reg))
        try:
            reg.import_from_location()
        except Exception:  # a registry with a stale location (mmdet3d 1.4's INFERENCERS): nothing of it is named
            pass
        for name in reg.module_dict:
            names.add(name)
            names.add(f"{reg.scope}.{name}")
        todo.extend(reg.children.values())
    return names


def check_config_data(doc: Any, file: str, known_types: Optional[Set[str]] = None) -> Dict[str, Any]:
    """``doc`` as a plain config dict, or 300004 naming the file and the key that is not data."""
    if not isinstance(doc, dict):
        raise model_error(f"expected a mapping at top level, got {type(doc).__name__}", file=file)
    try:
        doc = _plain(doc, "")
    except ValueError as e:
        raise model_error(str(e), file=file) from None
    known = registered_types() if known_types is None else known_types
    for path, key, value in _walk(doc):
        if key in FORBIDDEN_KEYS:
            raise model_error(f"'{key}' would make the config read or import other files; a stage config must "
                              "be self-contained data", file=file, field=path)
        if key == "type":
            allowed = NMS_TYPES | (ROI_LAYER_TYPES if path.endswith("roi_layer.type") else frozenset())
            if not isinstance(value, str) or (value not in known and value not in allowed):
                raise model_error(f"type {value!r} is not a class of the OpenMMLab registries (a dotted name would "
                                  "be imported and called)", file=file, field=path)
        if key == "warp_mode" and not (isinstance(value, str) and _WARP_MODE.match(value)):
            raise model_error(f"warp_mode {value!r} is not an OpenCV motion model (it would be evaluated as code)",
                              file=file, field=path)
    for path, key, _ in list(_walk(doc.get("model", {}), "model")):
        if key in ("init_cfg", "pretrained"):
            _drop(doc, path)
    return doc


def _drop(doc: Dict[str, Any], path: str) -> None:
    parts = path.replace("]", "").replace("[", ".").split(".")
    node: Any = doc
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, (list, tuple)) else node.get(p)
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def read_config_data(path: str) -> Dict[str, Any]:
    """Parse a ``.yaml`` / ``.json`` config with a safe loader (no check of its content)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            if path.endswith(".json"):
                return json.load(f)
            return yaml.load(f, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except FileNotFoundError:
        raise model_error("config file not found", file=path) from None
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as e:
        text = str(e).replace("\n", " ")
        raise model_error(f"not a data config (yaml / json): {text[:300]}", file=path) from None


def load_config(path: str, *, trust_code: bool, scope: Optional[str] = None):
    """An mmengine Config from ``path``: data configs are read safely and checked; a Python
    config runs only when ``trust_code`` is set (``trust_model_code: true``)."""
    from mmengine.config import Config

    if scope:
        import importlib
        importlib.import_module(scope + ".utils").register_all_modules(init_default_scope=False)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in DATA_SUFFIXES:
        return Config(check_config_data(read_config_data(path), path))
    if suffix in CODE_SUFFIXES:
        if not trust_code:
            raise model_error(f"is a Python config, which runs as code when loaded; models from outside must "
                              f"carry a data config (.yaml / .json). Set {TRUST_KEY}: true to run it (only for a "
                              "model you trust, e.g. a stage an older version of this image wrote)", file=path,
                              field=TRUST_KEY)
        try:
            return Config.fromfile(path)
        except YmirError:
            raise
        except Exception as e:
            raise model_error(f"cannot load the Python config: {type(e).__name__}: {str(e)[:200]}",
                              file=path) from None
    raise YmirError(ErrorCode.MODEL, f"unknown config type '{suffix}'; expected one of "
                    f"{', '.join(DATA_SUFFIXES + CODE_SUFFIXES)}", file=path)


def inside(path: str, root: str) -> bool:
    """Whether ``path`` lies in ``root`` once symlinks and ``..`` are resolved."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
