"""``ymir-executor make-workspace``: a deterministic synthetic workspace in the real platform
layout (sha1 file names in two-character sub-folders, index files with absolute ``/in/...``
paths, env.yaml and config.yaml from the schema's defaults).

The scenes are the kind's (its ``workspace`` module's ``make_workspace``); here are the
layout and the env.yaml / config.yaml every kind shares. Ground truth of the candidates is kept
beside ``in/`` (in ``ground-truth/``), never inside it.
"""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import yaml

from .env import Env, InputPaths, OutputPaths, env_to_dict
from .registry import TaskKind, get_kind

TASKS = {"train": "training", "infer": "infer", "mine": "mining"}


def make_workspace(directory: str, kind_name: str, task: str, *, seed: int = 0, num_train: int = 48,
                   num_val: int = 16, num_candidates: int = 24, protocol: str = "1.1.0",
                   overrides: Optional[Dict[str, Any]] = None, profile: str = "default") -> Dict[str, Any]:
    """Build ``<directory>/in`` (and an empty ``out``); return the counts generated. ``profile``:
    ``default`` (learnable scenes) or a benchmark profile (a rare class, near-duplicates, hard and
    empty images: a pool where selection matters)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}")
    kind = get_kind(kind_name)
    if kind.workspace is None:
        raise NotImplementedError(f"make-workspace --kind {kind.name} is not implemented yet")
    make = importlib.import_module(kind.workspace).make_workspace
    return make(directory, kind, task, seed=seed, num_train=num_train, num_val=num_val,
                num_candidates=num_candidates, protocol=protocol, overrides=overrides, profile=profile)


def fresh_layout(root: Path) -> Tuple[Path, Path, Path]:
    """Empty ``in/`` (with ``models/`` and ``annotations/``) and ``out/``; no ``ground-truth/``."""
    in_dir, out_dir, gt_dir = root / "in", root / "out", root / "ground-truth"
    for d in (in_dir, out_dir, gt_dir):
        if d.exists():
            shutil.rmtree(d)
    for d in (in_dir / "models", in_dir / "annotations", out_dir):
        d.mkdir(parents=True)
    return in_dir, out_dir, gt_dir


def write_env_config(in_dir: Path, kind: TaskKind, task: str, class_names: Sequence[str], protocol: str,
                     overrides: Optional[Dict[str, Any]], extra: Optional[Dict[str, Any]] = None) -> None:
    """env.yaml and config.yaml (the schema's defaults plus the platform's keys)."""
    task_name = TASKS[task]
    env = Env(protocol_version=protocol, task_id=f"t-demo-{kind.name}-{task}",
              run_training=task == "train", run_mining=task == "mine", run_infer=task in ("mine", "infer"),
              input=InputPaths(training_index_file="/in/train-index.tsv" if task == "train" else "",
                               val_index_file="/in/val-index.tsv" if task == "train" else "",
                               candidate_index_file="/in/candidate-index.tsv" if task != "train" else ""),
              output=OutputPaths())
    (in_dir / "env.yaml").write_text(yaml.safe_dump(env_to_dict(env), sort_keys=False))
    config: Dict[str, Any] = dict(kind.schemas[task_name].defaults())
    if task == "mine":
        config.update({k: v for k, v in kind.schemas["infer"].defaults().items() if k not in config})
    config.update({"task_id": env.task_id, "class_names": list(class_names), "gpu_id": "", "gpu_count": 0,
                   "object_type": kind.object_type})
    if task == "train":
        config["pretrained_model_params"] = []
    else:
        config.update({"model_params_path": [], "run_mining": env.run_mining, "run_infer": env.run_infer})
    config.update(extra or {})
    config.update(overrides or {})
    (in_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
