"""Segmentation end to end on CPU: real tiny trainings on the synthetic workspace."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from executor.monitor import parse_monitor
from ymir_tasks.seg.evaluation import mask_iou
from executor.verify import verify_output
from ymir_tasks.common.safe_config import read_config_data

from seg_helpers import assert_training_pictures, infer_ws_from, result, run_cli, train_ws


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws = train_ws(tmp_path_factory.mktemp("seg") / "train", max_iters=300, interval=100)
    t0 = time.time()
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"tiny seg training: {time.time() - t0:.0f} s")
    return ws, r.stdout + r.stderr


def test_training_reaches_miou_and_passes_verify(trained):
    ws, log = trained
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    doc = result(ws)
    assert set(doc["model_stages"]) == {"best", "last"} and doc["best_stage_name"] == "best"
    best = doc["model_stages"]["best"]
    assert best["mIoU"] >= 0.8, best
    assert 0.0 <= best["mAcc"] <= 1.0 and isinstance(best["mIoU"], float)
    assert best["files"] == ["model.pth", "seg_config.yaml", "ymir-model.yaml"]
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["percent"] == 1.0 and rec["state"] == 2
    assert log.count("evaluation at iteration") == 3
    assert "class weights (auto): ymir_background 0.5, disc " in log  # the rare-class default, median-frequency
    assert_training_pictures(ws, ["confusion", "val-predictions"])


def test_stages_are_self_sufficient(trained):
    ws, _ = trained
    stage = ws / "out" / "models" / "best"
    state = torch.load(stage / "model.pth", map_location="cpu", weights_only=True)  # a plain state dict
    assert all(isinstance(v, torch.Tensor) for v in state.values()) and len(state) > 20
    meta = yaml.safe_load((stage / "ymir-model.yaml").read_text())
    assert meta["class_names"] == ["disc", "square"]
    assert meta["with_background"] is True and meta["model_classes"][0] == "ymir_background"
    assert meta["img_size"] == [128, 96]
    assert "YmirSegDataset" in (stage / "seg_config.yaml").read_text()
    saved = read_config_data(str(stage / "seg_config.yaml"))
    loss = saved["model"]["decode_head"]["loss_decode"]
    assert loss["type"] == "YmirCrossEntropyLoss" and len(loss["class_weight"]) == 3
    table = json.loads((ws / "out" / "models" / "attachments" / "best" / "evaluation.json").read_text())
    assert set(table["IoU"]) == {"ymir_background", "disc", "square"}
    assert table["mIoU"] == pytest.approx(result(ws)["model_stages"]["best"]["mIoU"])


def test_tensorboard_has_loss_lr_miou_and_per_class_iou(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws, _ = trained
    tags = set()
    for f in (ws / "out" / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    for tag in ("loss", "lr", "mIoU", "mAcc", "IoU.disc", "IoU.square"):
        assert any(t == tag or t.endswith("/" + tag) for t in tags), (tag, sorted(tags))


@pytest.mark.parametrize("listing", ["stage", "top-level"])
def test_inference_on_val_passes_verify_and_masks_match_ground_truth(trained, tmp_path, listing):
    ws, _ = trained
    if listing == "stage":
        params = [f"/in/models/best/{f}" for f in result(ws)["model_stages"]["best"]["files"]]
    else:  # the public verifier lists only the top-level files of the previous /out/models
        params = ["/in/models/result.yaml"]
    inf = infer_ws_from(ws, tmp_path / "infer", params, samples_per_gpu=4, workers_per_gpu=1,
                        save_color_mask=True)
    r = run_cli(inf)
    assert r.returncode == 0, r.stdout[-3000:]
    assert verify_output(str(inf / "in"), str(inf / "out")) == []
    miou, per_class = mask_iou(str(inf / "out" / "infer-result.json"),
                               str(inf / "in" / "annotations" / "coco-annotations.json"), ["disc", "square"])
    assert miou >= 0.7, per_class
    assert len(list((inf / "out" / "masks").glob("*.png"))) == 16


def test_two_processes_give_the_single_process_inference(trained, tmp_path):
    ws, _ = trained
    cfg = dict(samples_per_gpu=1, workers_per_gpu=0, save_color_mask=True)
    one = infer_ws_from(ws, tmp_path / "one", ["/in/models/result.yaml"], **cfg)
    two = infer_ws_from(ws, tmp_path / "two", ["/in/models/result.yaml"], gpu_count=2, **cfg)
    for w in (one, two):
        r = run_cli(w)
        assert r.returncode == 0, r.stdout[-3000:]
    assert "--nproc_per_node=2" in r.stdout + r.stderr
    assert verify_output(str(two / "in"), str(two / "out")) == []
    assert (one / "out" / "infer-result.json").read_bytes() == (two / "out" / "infer-result.json").read_bytes()
    masks = {m.name: m.read_bytes() for m in (one / "out" / "masks").glob("*.png")}
    assert len(masks) == 16 and masks == {m.name: m.read_bytes() for m in (two / "out" / "masks").glob("*.png")}
    assert not (two / "out" / "infer-tmp").exists()


def test_inference_without_a_model_fails_with_300004(tmp_path, trained):
    ws, _ = trained
    inf = infer_ws_from(ws, tmp_path / "infer", ["/in/models/nothing.pth"])
    for p in sorted((inf / "in" / "models").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    r = run_cli(inf)
    assert r.returncode == 1
    rec = parse_monitor((inf / "out" / "monitor.txt").read_text())
    assert rec["state"] == 4 and rec["return_code"] == 300004
    assert not (inf / "out" / "infer-result.json").exists()


def test_kill_after_first_evaluation_then_resume(tmp_path):
    ws = train_ws(tmp_path / "ws", n_train=16, n_val=4, max_iters=60, interval=10, samples_per_gpu=4)
    proc = subprocess.Popen([sys.executable, "-m", "executor", "run", "--in", str(ws / "in"), "--out",
                             str(ws / "out")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result_file = ws / "out" / "models" / "result.yaml"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if result_file.exists() and "last" in (result(ws).get("model_stages") or {}):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stages = result(ws)["model_stages"]
    assert 1 <= len(stages) <= 2 and "last" in stages  # best and last of the first evaluation
    assert verify_output(str(ws / "in"), str(ws / "out"), tasks=["training"]) == []
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    line = next(l for l in r.stdout.splitlines() if "resuming at iteration" in l)
    assert int(line.rsplit(" ", 1)[1]) >= 10
    assert "Iter(train) [ 5/60]" not in r.stdout  # did not start from zero
    assert verify_output(str(ws / "in"), str(ws / "out")) == []


def test_two_ddp_processes_on_cpu(tmp_path):
    ws = train_ws(tmp_path / "ws", n_train=16, n_val=4, max_iters=6, interval=3, samples_per_gpu=2,
                  gpu_count=2)
    r = run_cli(ws)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "--nproc_per_node=2" in out and "Distributed training: True" in out
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    assert set(result(ws)["model_stages"]) == {"best", "last"}
    assert list((ws / "out" / "tensorboard").rglob("events.out.tfevents.*"))
