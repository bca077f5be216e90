"""Shared helpers: tiny platform-layout folders built in tmp_path."""
from __future__ import annotations

import os

# pytest-xdist workers share the cores: each worker, and every process it starts, gets its share
# of threads. With torch's default (all cores per process) two concurrent CPU trainings
# oversubscribe the machine and OpenMP's spinning threads slow both by far more than 2x.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _share = max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(_share))

import shutil
import tempfile
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


@pytest.fixture
def public_tmp():
    """A temporary folder other users may enter (pytest's tmp_path is private to its owner)."""
    d = Path(tempfile.mkdtemp(prefix="ymir-public-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def stage_of(tmp_path_factory):
    """``stage_of(kind)``: the workspace of a tiny training of ``kind`` at the lower bounds of its
    schema (see ``stages.LOWER_BOUNDS``), trained once per session on first use."""
    from stages import train_stage

    cache: Dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = train_stage(kind, tmp_path_factory.mktemp(f"stage-{kind}") / "train")
        return cache[kind]
    return get
