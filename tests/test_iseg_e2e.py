"""Instance segmentation end to end on CPU: a real tiny training to maskAP@0.5 >= 0.7, inference in
the platform's COCO form, every miner, several processes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from executor.demo import _handoff_model
from executor.runner import run
from executor.verify import verify_output
from executor.workspace import make_workspace

from seg_helpers import assert_previews, assert_training_pictures, pretrained_ws, assert_two_processes_match, result, run_cli

TINY = {"config_file": "tiny", "samples_per_gpu": 8, "workers_per_gpu": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws = tmp_path_factory.mktemp("iseg") / "train"
    make_workspace(str(ws), "iseg", "train", overrides=dict(TINY, max_epochs=40, val_interval=20))
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    return ws


def test_the_sample_workspace_has_polygons_rle_crowds_and_empty_images(trained):
    doc = json.loads((trained / "in" / "annotations" / "coco-annotations.json").read_text())
    anns = doc["annotations"]
    assert any(isinstance(a["segmentation"], list) for a in anns)
    assert any(isinstance(a["segmentation"], dict) and isinstance(a["segmentation"]["counts"], str) for a in anns)
    assert any(a["iscrowd"] for a in anns)
    per_image = {}
    for a in anns:
        per_image.setdefault((a["image_id"], a["category_id"]), []).append(a)
    assert any(len(v) > 1 for v in per_image.values())  # several instances of one class on an image
    assert len({a["image_id"] for a in anns}) < len(doc["images"])  # and images without objects


def test_training_reaches_mask_ap50_and_passes_verify(trained):
    assert verify_output(str(trained / "in"), str(trained / "out")) == []
    doc = result(trained)
    best = doc["model_stages"]["best"]
    assert doc["best_stage_name"] == "best" and doc["maskAP"] == best["maskAP"]
    assert best["maskAP"] >= 0.7 and 0 <= best["boxAP"] <= 1, best
    assert best["files"] == ["model.pth", "iseg_config.yaml", "ymir-model.yaml"]
    table = json.loads((trained / "out" / "models" / "attachments" / "best" / "evaluation.json").read_text())
    assert table["mask"]["AP@0.5"] == pytest.approx(best["maskAP"])
    assert table["box"]["AP@0.5"] == pytest.approx(best["boxAP"])
    assert table["mask"]["AP@[.5:.95]"] <= table["mask"]["AP@0.5"] and set(table["mask"]["AP50_by_class"]) == \
        {"disc", "box"}
    assert_training_pictures(trained, ["pr-curves", "ap-by-iou", "val-predictions"])


def _mine_ws(trained: Path, dest: Path, **cfg) -> Path:
    make_workspace(str(dest), "iseg", "mine", num_candidates=8, seed=3,
                   overrides=dict({"samples_per_gpu": 4, "workers_per_gpu": 0}, **cfg))
    _handoff_model(trained / "out", dest)
    return dest


def test_inference_writes_the_coco_instances_the_platform_parses(trained, tmp_path):
    ws = _mine_ws(trained, tmp_path / "inf", conf_threshold=0.3)
    assert run(str(ws / "in"), str(ws / "out"), only="infer") == 0
    assert verify_output(str(ws / "in"), str(ws / "out"), tasks=["infer"]) == []
    doc = json.loads((ws / "out" / "infer-result.json").read_text())
    cands = [Path(l).name for l in (ws / "in" / "candidate-index.tsv").read_text().split()]
    assert [i["file_name"] for i in doc["images"]] == cands  # every candidate, in order
    assert [c["name"] for c in doc["categories"]] == ["disc", "box"]
    assert len(doc["annotations"]) > 5
    for a in doc["annotations"]:
        assert isinstance(a["segmentation"]["counts"], str) and len(a["bbox"]) == 4 and a["area"] > 0
        assert a["category_id"] in (0, 1) and 0.3 <= a["confidence"] <= 1 and a["iscrowd"] == 0
    # the masks match the hidden ground truth: most predicted instances overlap a true one
    from pycocotools import mask as mask_utils
    gt = json.loads((ws / "ground-truth" / "annotations" / "coco-annotations.json").read_text())
    gt_id = {i["file_name"]: i["id"] for i in gt["images"]}
    hits = 0
    for a in doc["annotations"]:
        name = doc["images"][a["image_id"] - 1]["file_name"]
        truth = [g for g in gt["annotations"] if g["image_id"] == gt_id[name] and isinstance(g["segmentation"], dict)]
        if truth:
            rle = dict(a["segmentation"], counts=a["segmentation"]["counts"].encode())
            ious = mask_utils.iou([rle], [dict(g["segmentation"], counts=g["segmentation"]["counts"].encode())
                                          for g in truth], [0] * len(truth))
            hits += bool(ious.max() >= 0.5)
    assert hits >= 0.6 * len(doc["annotations"])


@pytest.mark.parametrize("algorithm", ["mask_entropy", "aldd", "cald", "entropy", "random"])
def test_each_miner_passes_verify(trained, tmp_path, algorithm):
    ws = _mine_ws(trained, tmp_path / "m", mining_algorithm=algorithm)
    assert run(str(ws / "in"), str(ws / "out"), only="mining") == 0
    assert verify_output(str(ws / "in"), str(ws / "out"), tasks=["mining"]) == []
    rows = [l.split("\t") for l in (ws / "out" / "result.tsv").read_text().splitlines()]
    assert len(rows) == 8 and len({r[0] for r in rows}) == 8
    assert_previews(ws, 8)
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1


@pytest.mark.parametrize("task,algorithm", [("infer", None)] + [("mine", a) for a in
                                                              ("mask_entropy", "aldd", "cald", "entropy", "random")])
def test_two_processes_give_the_single_process_files(trained, tmp_path, task, algorithm):
    cfg = dict(samples_per_gpu=1, workers_per_gpu=0, **({"mining_algorithm": algorithm} if algorithm else {}))
    assert_two_processes_match(_mine_ws(trained, tmp_path / "one", **cfg),
                               _mine_ws(trained, tmp_path / "two", gpu_count=2, **cfg), task)


def test_a_box_only_annotation_is_an_ignored_region_and_a_detection_json_is_refused(tmp_path):
    from executor.errors import YmirError
    from executor.records import IndexEntry
    from ymir_tasks.iseg.data import InstanceSource

    ann = tmp_path / "coco.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 10}],
                               "categories": [{"id": 0, "name": "disc"}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [2, 2, 5, 4],
                                                "segmentation": {}, "iscrowd": 0}]}))
    (a,) = InstanceSource(["disc"]).instances(IndexEntry(image="/in/assets/a.jpg", annotation=str(ann), line=1), 20, 10)
    assert a["iscrowd"] == 1 and a["bbox"] == [2.0, 2.0, 5.0, 4.0] and a["area"] == 20
    txt = tmp_path / "a.txt"
    txt.write_text("0, 1, 1, 5, 5\n")
    with pytest.raises(YmirError, match="not instance segmentation"):
        InstanceSource(["disc"]).instances(IndexEntry(image="/in/assets/a.jpg", annotation=str(txt), line=1), 20, 10)


def test_mask_entropy_is_the_mean_binary_entropy_inside_each_box():
    from ymir_tasks.iseg.mining import instance_entropies

    probs = np.full((2, 8, 8), 0.99)
    probs[0, :4, :4] = 0.5  # the first instance's box (0..32 px at stride 8) is all uncertain
    boxes = np.array([[0, 0, 32, 32], [32, 32, 64, 64]], float)
    grid = instance_entropies(probs, boxes, scale=1.0, stride=8)
    assert grid[0] == pytest.approx(1.0) and grid[1] == pytest.approx(0.0808, abs=1e-3)
    roi = instance_entropies(probs, boxes, scale=1.0, stride=None)  # each map is its box
    assert roi[0] == pytest.approx((16 * 1.0 + 48 * 0.0808) / 64, abs=1e-3)


def test_two_process_training_from_the_trained_weights_stops_early_and_resumes_after_a_kill(trained, tmp_path):
    from seg_helpers import run_and_kill_after_checkpoint

    # two processes (gloo), pretrained from the trained model, a learning rate too small to improve
    # anything, patience 1: stops at the second evaluation with the pretrained model's maskAP
    ws = pretrained_ws(trained, tmp_path / "ddp", "iseg", **dict(TINY, samples_per_gpu=2), gpu_count=2, max_epochs=6,
                       val_interval=1, learning_rate=1e-12, early_stop_patience=1)
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "--nproc_per_node=2" in r.stdout + r.stderr and r.stdout.count("evaluation at iteration") == 2
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    assert result(ws)["model_stages"]["best"]["maskAP"] > 0.5

    ws = tmp_path / "resume"
    make_workspace(str(ws), "iseg", "train", num_train=8, num_val=4,
                   overrides=dict(TINY, samples_per_gpu=4, max_epochs=6, val_interval=1))
    run_and_kill_after_checkpoint(ws, "iseg", "epoch_2.pth")
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "resuming from" in r.stdout and "Epoch(train) [1]" not in r.stdout
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
