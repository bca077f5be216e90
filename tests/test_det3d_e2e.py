"""3D detection end to end on CPU: a real tiny PointPillars training, inference and instance-bank
mining through ``ymir-executor run``, each output checked by ``verify`` (a smoke test of the real
path: a few CPU epochs learn little, the mining logic itself is tested with the simulated
detector in test_det3d_mining.py)."""
from __future__ import annotations

import json
import pickle
import re
import time
from pathlib import Path

import pytest

from ymir_tasks.common.safe_config import read_config_data
import torch
import yaml

from executor.demo import _handoff_model
from executor.monitor import parse_monitor
from executor.runner import run
from executor.verify import verify_output
from executor.workspace import make_workspace

from seg_helpers import assert_previews, assert_training_pictures, result, run_and_kill_after_checkpoint, run_cli

TINY = {"config_file": "tiny", "samples_per_gpu": 4, "workers_per_gpu": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws = tmp_path_factory.mktemp("det3d") / "train"
    make_workspace(str(ws), "det3d", "train", num_train=16, num_val=6,
                   overrides=dict(TINY, max_epochs=4, val_interval=2))
    t0 = time.time()
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-4000:]
    print(f"tiny PointPillars training: {time.time() - t0:.0f} s")
    return ws


def test_training_writes_verified_stages_with_the_3d_table(trained):
    ws = trained
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    doc = result(ws)
    assert doc["best_stage_name"] == "best" and set(doc["model_stages"]) == {"best", "last"}
    best = doc["model_stages"]["best"]
    assert 0 <= best["mAP"] <= 1 and all(isinstance(best[k], int) for k in ("tp", "fp", "fn"))
    assert best["files"] == ["model.pth", "det3d_config.yaml", "ymir-model.yaml"]
    state = torch.load(ws / "out" / "models" / "best" / "model.pth", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    meta = yaml.safe_load((ws / "out" / "models" / "best" / "ymir-model.yaml").read_text())
    assert meta["point_cloud_range"] == [0, -20.48, -3, 40.96, 20.48, 1] and meta["voxel_size"] == [0.32, 0.32]
    assert meta["eval_iou"] == [0.7, 0.5, 0.5]  # car-sized footprint gets KITTI's 0.7
    table = json.loads((ws / "out" / "models" / "attachments" / "best" / "evaluation.json").read_text())
    assert set(table["per_class"]) == {"Car", "Pedestrian", "Cyclist"}
    assert table["per_class"]["Car"]["iou"] == 0.7 and "APBEV" in table["per_class"]["Car"]
    from mmengine.config import Config
    cfg = Config(read_config_data(str(ws / "out" / "models" / "best" / "det3d_config.yaml")))
    head = cfg.model.bbox_head
    assert head.num_classes == 3 and len(head.anchor_generator.sizes) == 3
    assert head.anchor_generator.sizes[0][0] == pytest.approx(3.9, abs=0.3)  # mean Car length of the labels
    assert cfg.model.middle_encoder.output_shape == [128, 128]
    assert_training_pictures(ws, ["pr-curves", "ap-by-iou"])


def _mine_ws(trained: Path, dest: Path, task: str = "mine", n: int = 6, **cfg) -> Path:
    make_workspace(str(dest), "det3d", task, num_candidates=n, seed=5,
                   overrides=dict({"samples_per_gpu": 4, "workers_per_gpu": 1}, **cfg))
    _handoff_model(trained / "out", dest)
    return dest


def test_mining_and_inference_in_one_container(trained, tmp_path):
    ws = _mine_ws(trained, tmp_path / "mine", score_low=0.05, aug_views=2)
    assert run(str(ws / "in"), str(ws / "out")) == 0
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    rows = [l.split("\t") for l in (ws / "out" / "result.tsv").read_text().splitlines()]
    cands = [l.split("\t")[0] for l in (ws / "in" / "candidate-index.tsv").read_text().splitlines()]
    assert sorted(r[0] for r in rows) == sorted(cands)
    bank = ws / "out" / "bank"
    infos = pickle.loads((bank / "bank_dbinfos.pkl").read_bytes())
    assert sum(e["score"] == -1 for v in infos.values() for e in v) == 6  # one annotated instance per frame
    assert len(list((bank / "pseudo_labels").glob("*.txt"))) == 6
    report = json.loads((bank / "mining-report.json").read_text())
    assert [t["class"] for t in report["thresholds"]] == ["Car", "Pedestrian", "Cyclist"]
    assert report["mining_score"] == "qa"  # auto: the candidates carry sparse labels
    assert report["bank"][-1]["class"] == "all" and report["bank"][-1]["anno"] == 6
    assert "recall" in (bank / "bank-table.txt").read_text()
    assert not (ws / "out" / "mining-tmp").exists()
    doc = json.loads((ws / "out" / "infer-result.json").read_text())
    assert len(doc["detection3d"]) == 6
    assert_previews(ws, 6)  # bird's-eye views of every scan


@pytest.mark.parametrize("mining_score", ["qa", "active"])
def test_two_processes_give_the_single_process_files(trained, tmp_path, mining_score):
    cfg = dict(score_low=0.05, aug_views=1, samples_per_gpu=1, workers_per_gpu=0, diversity=0.3,
               mining_score=mining_score)
    one = _mine_ws(trained, tmp_path / "one", **cfg)
    two = _mine_ws(trained, tmp_path / "two", gpu_count=2, **cfg)
    assert run(str(one / "in"), str(one / "out")) == 0
    r = run_cli(two)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (r.stdout + r.stderr).count("--nproc_per_node=2") >= 2  # mining, then inference
    assert verify_output(str(two / "in"), str(two / "out")) == []
    for name in ("result.tsv", "infer-result.json", "bank/mining-report.json", "bank/bank_dbinfos.pkl"):
        assert (one / "out" / name).read_bytes() == (two / "out" / name).read_bytes(), name
    assert not (two / "out" / "mining-tmp").exists() and not (two / "out" / "infer-tmp").exists()


def test_inference_finds_the_model_through_result_yaml(trained, tmp_path):
    ws = _mine_ws(trained, tmp_path / "inf", task="infer", conf_threshold=0.0)
    cfg = yaml.safe_load((ws / "in" / "config.yaml").read_text())
    cfg["model_params_path"] = ["/in/models/ymir-info.yaml"]  # top-level files only, as the verifier passes
    (ws / "in" / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    doc = json.loads((ws / "out" / "infer-result.json").read_text())["detection3d"]
    boxes = [b for v in doc.values() for b in v["boxes"]]
    assert len(doc) == 6 and boxes and all(b["score"] >= 0 for b in boxes)


def test_a_broken_scan_fails_mining_with_300003_and_writes_no_result(trained, tmp_path):
    ws = _mine_ws(trained, tmp_path / "broken")
    first = (ws / "in" / "candidate-index.tsv").read_text().splitlines()[2].split("\t")[0]
    bad = ws / "in" / first[len("/in/"):]
    bad.write_bytes(bad.read_bytes()[:-6])
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["state"] == 4 and rec["return_code"] == 300003 and bad.name in rec["message"]
    assert not (ws / "out" / "result.tsv").exists() and not (ws / "out" / "infer-result.json").exists()


def test_bad_grid_and_unknown_class_are_refused(tmp_path):
    ws = tmp_path / "grid"
    make_workspace(str(ws), "det3d", "train", num_train=2, num_val=1,
                   overrides=dict(TINY, point_cloud_range="0,-20,-3,40,20,1"))
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["return_code"] == 300001 and "'point_cloud_range'" in rec["message"] and "multiples of 8" in rec["message"]
    ws = tmp_path / "cls"
    make_workspace(str(ws), "det3d", "train", num_train=2, num_val=1, overrides=dict(TINY, class_names=["Car"]))
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["return_code"] == 300002 and "unknown class" in rec["message"] and ".txt:" in rec["message"]


def _sparse_ws(trained: Path, dest: Path, n_train: int, **overrides) -> Path:
    """A training workspace on the sparse labels (SS3D's setting) starting from the trained weights."""
    make_workspace(str(dest), "det3d", "train", num_train=n_train, num_val=2,
                   overrides=dict(TINY, pretrained_model_params=["/in/models/best/model.pth"], **overrides))
    env = yaml.safe_load((dest / "in" / "env.yaml").read_text())
    env["input"]["training_index_file"] = "/in/train-index-sparse.tsv"
    (dest / "in" / "env.yaml").write_text(yaml.safe_dump(env))
    (dest / "in" / "models" / "best").mkdir(parents=True)
    (dest / "in" / "models" / "best" / "model.pth").write_bytes(
        (trained / "out" / "models" / "best" / "model.pth").read_bytes())
    return dest


def test_pretrained_weights_ui_strings_and_sparse_labels(trained, tmp_path):
    ws = _sparse_ws(trained, tmp_path / "pre", 4, max_epochs="1", val_interval="1", learning_rate="1e-3",
                    resume="False", eval_iou="0.5", cfg_options="model.test_cfg.score_thr=0.05")
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    loaded, total = (int(x) for x in re.search(r"(\d+) of (\d+) model tensors loaded", r.stdout).groups())
    assert loaded == total
    assert "4 train frames (4 boxes)" in r.stdout
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    from mmengine.config import Config
    cfg = Config(read_config_data(str(ws / "out" / "models" / "last" / "det3d_config.yaml")))
    assert cfg.train_cfg.max_epochs == 1 and cfg.optim_wrapper.optimizer.lr == pytest.approx(1e-3)
    assert cfg.model.test_cfg.score_thr == pytest.approx(0.05) and cfg.val_evaluator.iou_thresholds == [0.5] * 3


def test_kill_after_first_evaluation_then_resume(tmp_path):

    ws = tmp_path / "resume"
    make_workspace(str(ws), "det3d", "train", num_train=8, num_val=2,
                   overrides=dict(TINY, max_epochs=6, val_interval=1, max_keep_checkpoints=1))
    run_and_kill_after_checkpoint(ws, "det3d", "epoch_2.pth")
    assert verify_output(str(ws / "in"), str(ws / "out"), tasks=["training"]) == []
    # the kept checkpoint, plus the next one when the kill came while it was written
    assert len(list((ws / "out" / "work_dirs" / "det3d").glob("epoch_*.pth"))) <= 2
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "resuming from" in r.stdout and "Epoch(train) [1]" not in r.stdout
    assert verify_output(str(ws / "in"), str(ws / "out")) == []


def test_two_process_training_on_cpu(tmp_path):
    ws = tmp_path / "ddp"
    make_workspace(str(ws), "det3d", "train", num_train=8, num_val=2,
                   overrides=dict(TINY, max_epochs=1, val_interval=1, samples_per_gpu=2, gpu_count=2))
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    out = r.stdout + r.stderr
    assert "--nproc_per_node=2" in out and "Distributed training: True" in out
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    assert set(result(ws)["model_stages"]) == {"best", "last"}


def test_ss3d_rounds_grow_the_bank_and_train_on_it(trained, tmp_path):
    ws = _sparse_ws(trained, tmp_path / "ss3d", 8, max_epochs=1, val_interval=1, ss3d_iterations=1, ss3d_epochs=1)
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "SS3D round 1/1:" in r.stdout and r.stdout.count("evaluation at iteration") == 2
    report = json.loads((ws / "out" / "ss3d" / "round1.json").read_text())
    assert report["frames"] == 8 and [t["class"] for t in report["thresholds"]] == ["Car", "Pedestrian", "Cyclist"]
    doc = pickle.loads((ws / "out" / "ss3d" / "round1.pkl").read_bytes())
    n_inst = sum(len(i["instances"]) for i in doc["data_list"])
    assert n_inst == 8 + report["bank_pseudo"] and all("ss3d_holes" in i for i in doc["data_list"])
    assert sum(len(i["ss3d_holes"]) for i in doc["data_list"]) == report["unreliable_regions"]
    infos = pickle.loads((ws / "out" / "ss3d" / "bank" / "bank_dbinfos.pkl").read_bytes())
    assert sum(len(v) for v in infos.values()) == 8 + report["bank_pseudo"]
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    assert not list((ws / "out" / "work_dirs" / "det3d").glob("ss3d-round*"))
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["percent"] == 1.0
