"""Helpers of the end-to-end tests (segmentation first, shared by the other kinds)."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import yaml

from executor.workspace import make_workspace

TINY = {"config_file": "tiny", "samples_per_gpu": 8, "workers_per_gpu": 0}


def train_ws(path: Path, n_train: int = 48, n_val: int = 16, **overrides: Any) -> Path:
    make_workspace(str(path), "seg", "train", num_train=n_train, num_val=n_val, overrides=dict(TINY, **overrides))
    return path


def run_cli(ws: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "executor", "run", "--in", str(ws / "in"), "--out",
                           str(ws / "out"), *extra], capture_output=True, text=True, timeout=timeout)


def result(ws: Path) -> Dict[str, Any]:
    return yaml.safe_load((ws / "out" / "models" / "result.yaml").read_text())


def infer_ws_from(train: Path, dest: Path, model_params: List[str], **cfg: Any) -> Path:
    """An infer workspace over the training workspace's val images, with its model in /in/models."""
    shutil.copytree(train / "in", dest / "in", ignore=shutil.ignore_patterns("models"))
    (dest / "out").mkdir()
    shutil.copytree(train / "out" / "models", dest / "in" / "models")
    val = (dest / "in" / "val-index.tsv").read_text().splitlines()
    (dest / "in" / "candidate-index.tsv").write_text("".join(l.split("\t")[0] + "\n" for l in val if l))
    env = yaml.safe_load((dest / "in" / "env.yaml").read_text())
    env.update(run_training=False, run_infer=True, run_mining=False, task_id="t-infer")
    env["input"].update(training_index_file="", val_index_file="", candidate_index_file="/in/candidate-index.tsv")
    (dest / "in" / "env.yaml").write_text(yaml.safe_dump(env))
    config = yaml.safe_load((dest / "in" / "config.yaml").read_text())
    config = {k: v for k, v in config.items() if k in ("class_names", "task_id", "gpu_id", "gpu_count",
                                                        "object_type")}
    config.update(model_params_path=model_params, run_infer=True, run_mining=False, **cfg)
    (dest / "in" / "config.yaml").write_text(yaml.safe_dump(config))
    return dest


def run_and_kill_after_checkpoint(ws: Path, work_dir: str, checkpoint: str, timeout: float = 300) -> None:
    """Start training, SIGKILL it once result.yaml has a 'last' stage and ``checkpoint`` exists."""
    proc = subprocess.Popen([sys.executable, "-m", "executor", "run", "--in", str(ws / "in"), "--out",
                             str(ws / "out")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        res = ws / "out" / "models" / "result.yaml"
        if res.exists() and "last" in (yaml.safe_load(res.read_text()) or {}).get("model_stages", {}):
            if (ws / "out" / "work_dirs" / work_dir / checkpoint).exists():
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def assert_two_processes_match(one: Path, two: Path, task: str) -> None:
    """``task`` ('infer' | 'mine') in one process in ``one`` and with gpu_count 2 through the CLI in
    ``two``: the same result file, byte for byte."""
    from executor.runner import run

    assert run(str(one / "in"), str(one / "out"), only={"infer": "infer", "mine": "mining"}[task]) == 0
    r = subprocess.run([sys.executable, "-m", "executor", task, "--in", str(two / "in"), "--out", str(two / "out")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "--nproc_per_node=2" in r.stdout + r.stderr
    name = "infer-result.json" if task == "infer" else "result.tsv"
    assert (one / "out" / name).read_text() == (two / "out" / name).read_text()


def pretrained_ws(trained: Path, ws: Path, kind: str, **overrides: Any) -> Path:
    """A small training workspace whose pretrained_model_params is the trained run's best weights."""
    make_workspace(str(ws), kind, "train", num_train=8, num_val=4,
                   overrides=dict(overrides, pretrained_model_params=["/in/models/best/model.pth"]))
    (ws / "in" / "models" / "best").mkdir(parents=True)
    (ws / "in" / "models" / "best" / "model.pth").write_bytes(
        (trained / "out" / "models" / "best" / "model.pth").read_bytes())
    return ws
