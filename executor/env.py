"""``/in/env.yaml``: the typed environment of one container run.

Supports protocol 0.0.1 (field absent), 1.0.0 and 1.1.0 with the SDK's defaults
for absent fields. For local runs a :class:`PathMap` maps the env's ``/in`` and
``/out`` prefixes onto real directories, so one workspace runs both inside a
container and on a laptop.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

import yaml

from .errors import config_error

KNOWN_PROTOCOLS = ("0.0.1", "1.0.0", "1.1.0")


@dataclass(frozen=True)
class PathMap:
    """Maps container paths (``/in/...``, ``/out/...``) to local directories."""

    in_dir: str = "/in"
    out_dir: str = "/out"

    def __call__(self, path: str) -> str:
        if not path:
            return path
        for prefix, local in (("/in", self.in_dir), ("/out", self.out_dir)):
            if path == prefix:
                return local
            if path.startswith(prefix + "/"):
                return local.rstrip("/") + path[len(prefix):]
        return path

    def to_container(self, path: str) -> str:
        """The inverse mapping, for paths written into outputs (e.g. result.tsv keeps index paths)."""
        for prefix, local in (("/in", self.in_dir), ("/out", self.out_dir)):
            local = local.rstrip("/")
            if path == local:
                return prefix
            if path.startswith(local + "/"):
                return prefix + path[len(local):]
        return path

    @property
    def identity(self) -> bool:
        return self.in_dir == "/in" and self.out_dir == "/out"


@dataclass
class InputPaths:
    root_dir: str = "/in"
    assets_dir: str = "/in/assets"
    annotations_dir: str = "/in/annotations"
    models_dir: str = "/in/models"
    training_index_file: str = ""
    val_index_file: str = ""
    candidate_index_file: str = ""
    config_file: str = "/in/config.yaml"


@dataclass
class OutputPaths:
    root_dir: str = "/out"
    models_dir: str = "/out/models"
    tensorboard_dir: str = "/out/tensorboard"
    training_result_file: str = "/out/models/result.yaml"
    mining_result_file: str = "/out/result.tsv"
    infer_result_file: str = "/out/infer-result.json"
    monitor_file: str = "/out/monitor.txt"
    executor_log_file: str = "/out/ymir-executor-out.log"


@dataclass
class Env:
    """The environment of one run; paths are already mapped to local ones."""

    protocol_version: str = "0.0.1"
    task_id: str = "default-task"
    run_training: bool = False
    run_mining: bool = False
    run_infer: bool = False
    manifest_file: str = "/img-man/manifest.yaml"
    input: InputPaths = field(default_factory=InputPaths)
    output: OutputPaths = field(default_factory=OutputPaths)
    path_map: PathMap = field(default_factory=PathMap)
    source_file: str = ""

    @property
    def protocol(self) -> tuple:
        return tuple(int(p) for p in self.protocol_version.split("."))

    def map(self, path: str) -> str:
        return self.path_map(path)


def _as_bool(value: Any, key: str, file: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", ""):
        return value.strip().lower() in ("true", "1", "yes")
    raise config_error(f"expected a boolean, got {value!r}", file=file, field=key)


def _as_str(value: Any, key: str, file: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise config_error(f"expected a string, got {type(value).__name__} {value!r}", file=file, field=key)


def _paths(cls, raw: Any, section: str, file: str, root_key_default: str, path_map: PathMap):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise config_error(f"expected a mapping, got {type(raw).__name__}", file=file, field=section)
    obj = cls()
    root = _as_str(raw.get("root_dir", getattr(obj, "root_dir")), f"{section}.root_dir", file) or root_key_default
    for f in fields(cls):
        if f.name not in raw:
            continue
        value = _as_str(raw[f.name], f"{section}.{f.name}", file)
        # Old (0.x) env files held paths relative to root_dir.
        if value and not value.startswith("/") and f.name != "root_dir":
            value = root.rstrip("/") + "/" + value
        setattr(obj, f.name, value)
    for f in fields(cls):
        setattr(obj, f.name, path_map(getattr(obj, f.name)))
    return obj


def load_env(path: str, path_map: Optional[PathMap] = None) -> Env:
    """Read env.yaml at ``path`` (a local path) and map its paths with ``path_map``."""
    path_map = path_map or PathMap()
    file = str(path)
    if not os.path.isfile(file):
        raise config_error("env file not found", file=file)
    try:
        with open(file, "r", encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise config_error(f"malformed yaml: {getattr(e, 'problem', e)}", file=file,
                           line=(mark.line + 1) if mark else None) from None
    except UnicodeDecodeError:
        raise config_error("not a UTF-8 text file", file=file) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise config_error(f"expected a mapping at top level, got {type(raw).__name__}", file=file)

    env = Env(path_map=path_map, source_file=file)
    proto = raw.get("protocol_version")
    if proto is not None:
        proto = _as_str(proto, "protocol_version", file).strip()
        if proto not in KNOWN_PROTOCOLS:
            raise config_error(f"unknown protocol {proto!r}, expected one of {', '.join(KNOWN_PROTOCOLS)}",
                               file=file, field="protocol_version")
        env.protocol_version = proto
    if raw.get("task_id") not in (None, ""):
        env.task_id = _as_str(raw["task_id"], "task_id", file)
    for key in ("run_training", "run_mining", "run_infer"):
        if key in raw and raw[key] is not None:
            setattr(env, key, _as_bool(raw[key], key, file))
    if raw.get("manifest_file"):
        env.manifest_file = _as_str(raw["manifest_file"], "manifest_file", file)
    env.input = _paths(InputPaths, raw.get("input"), "input", file, "/in", path_map)
    env.output = _paths(OutputPaths, raw.get("output"), "output", file, "/out", path_map)
    if env.run_training and (env.run_mining or env.run_infer):
        raise config_error("run_training cannot be combined with run_mining / run_infer",
                           file=file, field="run_training")
    return env


def env_to_dict(env: Env) -> Dict[str, Any]:
    """The container-side env.yaml mapping (used by the workspace generator)."""
    pm = env.path_map
    return {
        "protocol_version": env.protocol_version,
        "task_id": env.task_id,
        "run_training": env.run_training,
        "run_mining": env.run_mining,
        "run_infer": env.run_infer,
        "manifest_file": env.manifest_file,
        "input": {f.name: pm.to_container(getattr(env.input, f.name)) for f in fields(InputPaths)},
        "output": {f.name: pm.to_container(getattr(env.output, f.name)) for f in fields(OutputPaths)},
    }


