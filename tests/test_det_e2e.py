"""Detection end to end on CPU: a real tiny training, inference, each miner, several processes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ymir_tasks.common.safe_config import read_config_data
import torch

from executor.demo import _handoff_model
from executor.monitor import parse_monitor
from executor.runner import run
from executor.verify import verify_output
from executor.workspace import make_workspace

from seg_helpers import assert_boxes_drawn, assert_previews, assert_training_pictures, pretrained_ws, assert_two_processes_match, infer_ws_from, result, run_and_kill_after_checkpoint, run_cli

TINY = {"config_file": "tiny", "samples_per_gpu": 8, "workers_per_gpu": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws = tmp_path_factory.mktemp("det") / "train"
    make_workspace(str(ws), "det", "train", overrides=dict(TINY, max_epochs=40, val_interval=20))
    t0 = time.time()
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    print(f"tiny det training: {time.time() - t0:.0f} s")
    return ws


def test_training_reaches_map50_and_passes_verify(trained):
    ws = trained
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    doc = result(ws)
    best = doc["model_stages"]["best"]
    assert doc["best_stage_name"] == "best" and best["mAP"] >= 0.8, best
    assert 0 <= best["mAR"] <= 1 and all(isinstance(best[k], int) and best[k] >= 0 for k in ("tp", "fp", "fn"))
    assert best["files"] == ["model.pth", "det_config.yaml", "ymir-model.yaml"]
    state = torch.load(ws / "out" / "models" / "best" / "model.pth", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    table = json.loads((ws / "out" / "models" / "attachments" / "best" / "evaluation.json").read_text())
    assert list(table["AP_by_IoU"]) == [f"{0.5 + 0.05 * i:.2f}" for i in range(10)]
    assert table["AP_by_IoU"]["0.50"] == pytest.approx(best["mAP"])
    assert set(table["AP50_by_class"]) == {"box", "disc"} and table["mAP@[.5:.95]"] <= best["mAP"]
    assert_training_pictures(ws, ["pr-curves", "ap-by-iou", "val-predictions"])


def test_tensorboard_has_loss_lr_and_the_ap_table(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for f in (trained / "out" / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    for tag in ("loss", "lr", "mAP", "mAP_50_95", "AP75", "mAR", "AP_0.50", "AP_0.95", "AP50.box", "tp"):
        assert any(t == tag or t.endswith("/" + tag) for t in tags), (tag, sorted(tags))


def test_inference_on_val_passes_verify(trained, tmp_path):
    inf = infer_ws_from(trained, tmp_path / "inf", ["/in/models/result.yaml"], samples_per_gpu=4,
                        workers_per_gpu=1, conf_threshold=0.3)
    assert run(str(inf / "in"), str(inf / "out")) == 0
    assert verify_output(str(inf / "in"), str(inf / "out")) == []
    doc = json.loads((inf / "out" / "infer-result.json").read_text())["detection"]
    assert len(doc) == 16 and sum(len(v["boxes"]) for v in doc.values()) > 10
    assert all(b["score"] >= 0.3 for v in doc.values() for b in v["boxes"])
    # one forward pass per batch of 4 gives each image's own objects (as one image at a time)
    one = infer_ws_from(trained, tmp_path / "one", ["/in/models/result.yaml"], samples_per_gpu=1,
                        workers_per_gpu=0, conf_threshold=0.3)
    assert run(str(one / "in"), str(one / "out")) == 0
    single = json.loads((one / "out" / "infer-result.json").read_text())["detection"]
    assert single.keys() == doc.keys()
    for name, v in doc.items():
        a, b = v["boxes"], single[name]["boxes"]
        assert [x["class_name"] for x in a] == [x["class_name"] for x in b], name
        for x, y in zip(a, b):
            assert x["score"] == pytest.approx(y["score"], abs=1e-4)
            assert [x["box"][k] for k in "xywh"] == pytest.approx([y["box"][k] for k in "xywh"], abs=1)  # whole pixels


def _mine_ws(trained: Path, dest: Path, **cfg) -> Path:
    make_workspace(str(dest), "det", "mine", num_candidates=10, seed=3,
                   overrides=dict({"samples_per_gpu": 4, "workers_per_gpu": 1}, **cfg))
    _handoff_model(trained / "out", dest)
    return dest


@pytest.mark.parametrize("algorithm", ["aldd", "cald", "entropy", "random"])
def test_each_miner_passes_verify(trained, tmp_path, algorithm):
    ws = _mine_ws(trained, tmp_path / "m", mining_algorithm=algorithm)
    assert run(str(ws / "in"), str(ws / "out")) == 0
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    rows = [l.split("\t") for l in (ws / "out" / "result.tsv").read_text().splitlines()]
    assert len(rows) == 10 and len({r[0] for r in rows}) == 10
    pictures = assert_previews(ws, 10)  # every candidate: there are fewer than preview_images
    if algorithm != "random":  # random loads no model: its previews are the images
        assert_boxes_drawn(ws, pictures, 0.2)


@pytest.mark.parametrize("task,algorithm", [("infer", None), ("mine", "cald"), ("mine", "aldd"), ("mine", "entropy"),
                                            ("mine", "asm"), ("mine", "random")])
def test_two_processes_give_the_single_process_files(trained, tmp_path, task, algorithm):
    cfg = {"samples_per_gpu": 1, "workers_per_gpu": 0}
    if algorithm:
        cfg["mining_algorithm"] = algorithm
    one = _mine_ws(trained, tmp_path / "one", **cfg)
    two = _mine_ws(trained, tmp_path / "two", gpu_count=2, **cfg)
    assert_two_processes_match(one, two, task)


def test_two_process_training_and_ui_strings(tmp_path):
    ws = tmp_path / "ddp"
    make_workspace(str(ws), "det", "train", num_train=8, num_val=4,
                   overrides=dict(TINY, max_epochs="2", val_interval="1", samples_per_gpu="2", gpu_count=2,
                                  max_keep_checkpoints="2", img_size="128", learning_rate="0.002",
                                  args_options="--seed 3", cfg_options="model.test_cfg.score_thr=0.01"))
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    out = r.stdout + r.stderr
    assert "--nproc_per_node=2" in out and "Distributed training: True" in out
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    from mmengine.config import Config
    cfg = Config(read_config_data(str(ws / "out" / "models" / "last" / "det_config.yaml")))
    assert cfg.train_cfg.max_epochs == 2 and cfg.train_dataloader.batch_size == 2
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.002) and cfg.randomness.seed == 3
    assert cfg.model.test_cfg.score_thr == pytest.approx(0.01)
    assert cfg.train_dataloader.dataset.pipeline[2]["scale"] == (128, 128)


def test_unknown_preset_is_refused(tmp_path):
    ws = tmp_path / "bad"
    make_workspace(str(ws), "det", "train", num_train=2, num_val=1, overrides=dict(TINY, config_file="yolo-huge"))
    r = run_cli(ws)
    assert r.returncode == 1
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["return_code"] == 300001 and "'config_file'" in rec["message"]


def test_pretrained_early_stopping_kill_resume_and_kept_checkpoints(trained, tmp_path):

    # pretrained weights from the trained model (same classes: every tensor fits), a learning rate
    # too small to improve anything, patience 1: stops at the second evaluation.
    ws = pretrained_ws(trained, tmp_path / "es", "det", **TINY, max_epochs=6, val_interval=1, learning_rate=1e-12,
                       early_stop_patience=1)
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    line = next(l for l in r.stdout.splitlines() if "pretrained weights" in l)
    import re
    loaded, total = (int(x) for x in re.search(r"(\d+) of (\d+) model tensors loaded", line).groups())
    assert loaded == total
    assert r.stdout.count("evaluation at iteration") == 2
    assert result(ws)["model_stages"]["best"]["mAP"] > 0.5  # the pretrained model, not a fresh one

    # killed after its first evaluation, a run keeps a valid result.yaml and at most
    # max_keep_checkpoints checkpoints, then resumes from where it stopped
    ws = tmp_path / "resume"
    make_workspace(str(ws), "det", "train", num_train=8, num_val=4,
                   overrides=dict(TINY, samples_per_gpu=4, max_epochs=8, val_interval=1, max_keep_checkpoints=1))
    run_and_kill_after_checkpoint(ws, "det", "epoch_2.pth")
    assert verify_output(str(ws / "in"), str(ws / "out"), tasks=["training"]) == []
    # the kept checkpoint, plus the next one when the kill came while it was written
    assert len(list((ws / "out" / "work_dirs" / "det").glob("epoch_*.pth"))) <= 2
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "resuming from" in r.stdout and "Epoch(train) [1]" not in r.stdout
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
