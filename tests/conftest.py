"""Shared helpers: tiny platform-layout folders built in tmp_path."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def write_env(in_dir: Path, **overrides: Any) -> Path:
    env: Dict[str, Any] = {
        "protocol_version": "1.1.0", "task_id": "t-test", "run_training": True, "run_mining": False,
        "run_infer": False,
        "input": {"root_dir": "/in", "assets_dir": "/in/assets", "annotations_dir": "/in/annotations",
                  "models_dir": "/in/models", "training_index_file": "/in/train-index.tsv",
                  "val_index_file": "/in/val-index.tsv", "candidate_index_file": "",
                  "config_file": "/in/config.yaml"},
        "output": {"root_dir": "/out", "models_dir": "/out/models", "tensorboard_dir": "/out/tensorboard",
                   "training_result_file": "/out/models/result.yaml", "mining_result_file": "/out/result.tsv",
                   "infer_result_file": "/out/infer-result.json", "monitor_file": "/out/monitor.txt",
                   "executor_log_file": "/out/ymir-executor-out.log"},
    }
    env.update(overrides)
    in_dir.mkdir(parents=True, exist_ok=True)
    path = in_dir / "env.yaml"
    path.write_text(yaml.safe_dump(env, sort_keys=False))
    return path


def write_config(in_dir: Path, config: Optional[Dict[str, Any]] = None, text: Optional[str] = None) -> Path:
    in_dir.mkdir(parents=True, exist_ok=True)
    path = in_dir / "config.yaml"
    if text is not None:
        path.write_text(text)
    else:
        path.write_text(yaml.safe_dump(config or {"class_names": ["a", "b"]}, sort_keys=False))
    return path


@pytest.fixture
def io_dirs(tmp_path: Path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir()
    out_dir.mkdir()
    return in_dir, out_dir
