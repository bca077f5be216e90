"""Helpers of the end-to-end tests (segmentation first, shared by the other kinds)."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
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
    if task == "mine":  # rank 0 draws the previews of the merged result
        assert [p.read_bytes() for p in sorted((one / "out" / "mining-previews").iterdir())] == \
            [p.read_bytes() for p in sorted((two / "out" / "mining-previews").iterdir())]


def pretrained_ws(trained: Path, ws: Path, kind: str, **overrides: Any) -> Path:
    """A small training workspace whose pretrained_model_params is the trained run's best weights."""
    make_workspace(str(ws), kind, "train", num_train=8, num_val=4,
                   overrides=dict(overrides, pretrained_model_params=["/in/models/best/model.pth"]))
    (ws / "in" / "models" / "best").mkdir(parents=True)
    (ws / "in" / "models" / "best" / "model.pth").write_bytes(
        (trained / "out" / "models" / "best" / "model.pth").read_bytes())
    return ws


def assert_previews(ws: Path, count: int) -> List[np.ndarray]:
    """``count`` mining previews in result.tsv's order plus the contact sheet, each a picture that
    is not blank, and the same pictures in TensorBoard; returns the previews (BGR)."""
    import cv2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ymir_tasks.common.previews import CONTACT_SHEET, PREVIEW_DIR

    folder = ws / "out" / PREVIEW_DIR
    rows = [ln.split("\t")[0] for ln in (ws / "out" / "result.tsv").read_text().splitlines()]
    names = sorted(p.name for p in folder.glob("[0-9][0-9]-*.png"))
    assert names == [f"{k + 1:02d}-{Path(r).stem}.png" for k, r in enumerate(rows[:count])], names
    pictures = []
    for name in names + [CONTACT_SHEET]:
        img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 64 and img.shape[1] > 64 and float(img.std()) > 10, name
        pictures.append(img)
    acc = EventAccumulator(str(ws / "out" / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()["images"]
    assert "mining/contact sheet" in tags and sum(t.startswith("mining/") for t in tags) == count + 1, tags
    return pictures[:-1]


def assert_boxes_drawn(ws: Path, pictures: List[np.ndarray], shown_from: float) -> None:
    """The boxes of infer-result.json (same model, same images) from ``shown_from`` are drawn
    where they are: the middle of each box's left edge has a box colour in the preview."""
    import json

    import cv2

    from ymir_tasks.common.previews import CERTAIN, DOUBT, UNSURE

    doc = json.loads((ws / "out" / "infer-result.json").read_text())["detection"]
    rows = [ln.split("\t")[0] for ln in (ws / "out" / "result.tsv").read_text().splitlines()]
    checked = hits = 0
    for row, pic in zip(rows, pictures):
        h, w = cv2.imread(str(ws / "in" / row[len("/in/"):])).shape[:2]
        scale = pic.shape[1] / w
        band = pic.shape[0] - round(h * scale)  # the caption above the picture
        for b in doc[Path(row).name]["boxes"]:
            if b["score"] < shown_from:
                continue
            x, y = round(b["box"]["x"] * scale), band + round((b["box"]["y"] + b["box"]["h"] / 2) * scale)
            patch = pic[y - 1:y + 2, max(0, x - 1):x + 2].reshape(-1, 3)
            checked += 1
            hits += any(tuple(int(v) for v in px) in (CERTAIN, UNSURE, DOUBT) for px in patch)
    assert checked >= 5 and hits >= 0.9 * checked, (hits, checked)


def assert_training_pictures(ws: Path, names: List[str]) -> None:
    """The best stage's attachments hold each evaluation picture (decodes, not blank), and
    TensorBoard holds it at every evaluation."""
    import cv2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    doc = yaml.safe_load((ws / "out" / "models" / "result.yaml").read_text())
    attached = doc["attachments"]["best"]
    for name in names:
        assert f"{name}.png" in attached, attached
        img = cv2.imread(str(ws / "out" / "models" / "attachments" / "best" / f"{name}.png"), cv2.IMREAD_COLOR)
        assert img is not None and min(img.shape[:2]) > 100 and float(img.std()) > 10, name
    steps = {}
    for f in (ws / "out" / "tensorboard").rglob("*.evaluation"):
        acc = EventAccumulator(str(f), size_guidance={"images": 0})
        acc.Reload()
        for tag in acc.Tags()["images"]:
            steps.setdefault(tag, set()).update(e.step for e in acc.Images(tag))
    for name in names:
        assert len(steps.get(f"evaluation/{name}", ())) >= 2, steps  # one per evaluation: how the model improved
