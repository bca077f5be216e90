"""Tests for executor.verify: a hand-built correct output passes, each broken variant
yields the specific problem (field + message) the contract calls for."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_util

from executor.verify import Problem, main_verify, verify_output

CLASSES = ["dog", "cat"]
ALL = ["training", "mining", "infer"]
H, W = 4, 5


def _sha(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


CANDIDATES = [f"/in/assets/{_sha(i)[-2:]}/{_sha(i)}.jpg" for i in range(3)]
BASENAMES = [os.path.basename(p) for p in CANDIDATES]


def _write_yaml(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _build(tmp_path: Path, object_type: int, run: Tuple[str, ...] = ("mining", "infer")) -> Tuple[Path, Path]:
    """A correct in/ + out/ pair holding the outputs of all three tasks."""
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    _write_yaml(in_dir / "env.yaml", {
        "protocol_version": "1.1.0",
        "task_id": "t0001",
        "run_training": "training" in run,
        "run_mining": "mining" in run,
        "run_infer": "infer" in run,
        "manifest_file": "/img-man/manifest.yaml",
        "input": {
            "root_dir": "/in", "assets_dir": "/in/assets", "annotations_dir": "/in/annotations",
            "models_dir": "/in/models", "training_index_file": "", "val_index_file": "",
            "candidate_index_file": "/in/candidate-index.tsv", "config_file": "/in/config.yaml",
        },
        "output": {
            "root_dir": "/out", "models_dir": "/out/models", "tensorboard_dir": "/out/tensorboard",
            "training_result_file": "/out/models/result.yaml", "mining_result_file": "/out/result.tsv",
            "infer_result_file": "/out/infer-result.json", "monitor_file": "/out/monitor.txt",
            "executor_log_file": "/out/ymir-executor-out.log",
        },
    })
    _write_yaml(in_dir / "config.yaml", {"task_id": "t0001", "class_names": CLASSES, "object_type": object_type,
                                         "gpu_id": "0", "gpu_count": 1})
    for p in CANDIDATES:
        local = in_dir / p[len("/in/"):]
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(b"\xff\xd8fake")
    (in_dir / "candidate-index.tsv").write_text("".join(p + "\n" for p in CANDIDATES))

    metric = {2: "mAP", 3: "mIoU", 4: "maskAP"}[object_type]
    stages = {}
    for n, value in ((1, 0.5), (2, 0.75)):
        name = f"epoch_{n}"
        for f in (f"{name}.pth", "config.py"):
            (out_dir / "models" / name).mkdir(parents=True, exist_ok=True)
            (out_dir / "models" / name / f).write_text("x")
        stages[name] = {"stage_name": name, "files": [f"{name}.pth", "config.py"],
                        "timestamp": 1700000000 + n, metric: value, "tp": 3, "fp": 1, "fn": 0}
    (out_dir / "models" / "attachments" / "extra").mkdir(parents=True)
    (out_dir / "models" / "attachments" / "extra" / "labels.txt").write_text("dog\ncat\n")
    _write_yaml(out_dir / "models" / "result.yaml", {
        "best_stage_name": "epoch_2", "model_stages": stages, metric: 0.75,
        "evaluate_config": {"iou_thr": 0.5, "conf_thr": 0.005}, "attachments": {"extra": ["labels.txt"]}})
    (out_dir / "tensorboard").mkdir()
    (out_dir / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"\0")
    (out_dir / "monitor.txt").write_text("t0001\t1700000000.123456\t1.00\t2\t0\n")
    scores = [0.9, 0.5, 0.1]
    (out_dir / "result.tsv").write_text("".join(f"{p}\t{s}\n" for p, s in zip(CANDIDATES, scores)))

    if object_type == 2:
        det = {b: {"boxes": [{"box": {"x": 1, "y": 2, "w": 10, "h": 20}, "class_name": "dog", "score": 0.8}]}
               for b in BASENAMES}
        det[BASENAMES[2]] = {"boxes": []}
        _write_json(out_dir / "infer-result.json", {"detection": det})
    else:
        m = np.zeros((H, W), dtype=np.uint8)
        m[1:3, 2:4] = 1
        rle = mask_util.encode(np.asfortranarray(m))
        coco = {
            "images": [{"id": i + 1, "file_name": b, "width": W, "height": H} for i, b in enumerate(BASENAMES)],
            "categories": [{"id": 0, "name": "dog", "supercategory": "none"},
                           {"id": 1, "name": "cat", "supercategory": "none"}],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 0, "iscrowd": 1,
                             "segmentation": {"size": [H, W], "counts": rle["counts"].decode()},
                             "bbox": [2, 1, 2, 2], "area": int(mask_util.area(rle))}
                            for i in range(len(BASENAMES))],
        }
        _write_json(out_dir / "infer-result.json", coco)
    return in_dir, out_dir


@pytest.fixture
def det(tmp_path: Path) -> Tuple[Path, Path]:
    return _build(tmp_path, 2)


@pytest.fixture
def seg(tmp_path: Path) -> Tuple[Path, Path]:
    return _build(tmp_path, 3)


def _run(dirs: Tuple[Path, Path], tasks=ALL) -> List[Problem]:
    return verify_output(str(dirs[0]), str(dirs[1]), tasks=tasks)


def _has(problems: List[Problem], field: str, message: str) -> Problem:
    """The problem whose field contains ``field`` and message contains ``message``."""
    for p in problems:
        if field in p.field and message in p.message:
            return p
    raise AssertionError(f"no problem ({field!r}, {message!r}) in:\n" + "\n".join(map(str, problems)))


def _edit_yaml(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------- correct outputs

def test_detection_output_is_clean(det):
    assert _run(det) == []


def test_segmentation_output_is_clean(seg):
    assert _run(seg) == []


def test_tasks_from_env(tmp_path):
    in_dir, out_dir = _build(tmp_path, 2, run=("training",))
    assert verify_output(str(in_dir), str(out_dir)) == []
    os.remove(out_dir / "result.tsv")  # not checked: env says training only
    assert verify_output(str(in_dir), str(out_dir)) == []


def test_object_type_argument_overrides_config(det):
    # Detection output checked as segmentation: stages lack mIoU, infer file is not COCO.
    problems = verify_output(str(det[0]), str(det[1]), tasks=["training", "infer"], object_type=3)
    _has(problems, "model_stages.epoch_1.mIoU", "missing")
    _has(problems, "images", "missing")


def test_main_verify(det, capsys):
    assert main_verify(str(det[0]), str(det[1]), tasks=["mining", "infer"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "verify: OK (mining, infer)"
    os.remove(det[1] / "monitor.txt")
    assert main_verify(str(det[0]), str(det[1])) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "verify: 1 problem(s)"
    assert out[0] == f"{det[1] / 'monitor.txt'}: file not found"


def test_problem_str():
    assert str(Problem("a.yaml", "model_stages.x.mAP", "bad")) == "a.yaml: model_stages.x.mAP: bad"


# --------------------------------------------------------------------------- training

def test_metric_as_percentage(det):
    _edit_yaml(det[1] / "models/result.yaml", lambda d: d["model_stages"]["epoch_1"].update(mAP=78.5))
    p = _has(_run(det, ["training"]), "model_stages.epoch_1.mAP", "outside [0, 1]")
    assert p.file == str(det[1] / "models/result.yaml")


def test_metric_minus_one_and_bad_counts(det):
    _edit_yaml(det[1] / "models/result.yaml",
               lambda d: d["model_stages"]["epoch_2"].update(mAR=-1, tp=-2, fp=1.5))
    problems = _run(det, ["training"])
    _has(problems, "model_stages.epoch_2.mAR", "outside [0, 1]")
    _has(problems, "model_stages.epoch_2.tp", "int >= 0")
    _has(problems, "model_stages.epoch_2.fp", "int >= 0")


def test_symlinked_stage_file(det):
    stage = det[1] / "models/epoch_1"
    os.replace(stage / "epoch_1.pth", det[1] / "real.pth")
    os.symlink(det[1] / "real.pth", stage / "epoch_1.pth")
    _has(_run(det, ["training"]), "model_stages.epoch_1.files[0]", "is a symlink")


def test_missing_stage_file_and_top_level_fallback(det):
    os.replace(det[1] / "models/epoch_1/config.py", det[1] / "models/config.py")
    assert _run(det, ["training"]) == []  # /out/models/<file> is the platform's second lookup
    os.remove(det[1] / "models/config.py")
    _has(_run(det, ["training"]), "model_stages.epoch_1.files[1]", "not found")


def test_absolute_and_dotdot_file_paths(det):
    def edit(d):
        d["model_stages"]["epoch_1"]["files"][0] = str(det[1] / "models/epoch_1/epoch_1.pth")
        d["model_stages"]["epoch_2"]["files"][1] = "../config.py"
    _edit_yaml(det[1] / "models/result.yaml", edit)
    problems = _run(det, ["training"])
    _has(problems, "model_stages.epoch_1.files[0]", "absolute path not allowed")
    _has(problems, "model_stages.epoch_2.files[1]", "'..' not allowed")


def test_best_stage_not_a_stage(det):
    _edit_yaml(det[1] / "models/result.yaml", lambda d: d.update(best_stage_name="epoch_9"))
    _has(_run(det, ["training"]), "best_stage_name", "not a key of model_stages")


def test_stage_missing_main_metric(det):
    _edit_yaml(det[1] / "models/result.yaml", lambda d: d["model_stages"]["epoch_2"].pop("mAP"))
    _has(_run(det, ["training"]), "model_stages.epoch_2.mAP", "missing")


def test_seg_stage_needs_miou_not_map(seg):
    def edit(d):
        st = d["model_stages"]["epoch_1"]
        st["mAP"] = st.pop("mIoU")
    _edit_yaml(seg[1] / "models/result.yaml", edit)
    _has(_run(seg, ["training"]), "model_stages.epoch_1.mIoU", "missing")


def test_model_with_model_stages(det):
    _edit_yaml(det[1] / "models/result.yaml", lambda d: d.update(model=["epoch_2/epoch_2.pth"]))
    _has(_run(det, ["training"]), "model", "together with 'model_stages'")


def test_bad_stage_name_key_mismatch_and_timestamp(det):
    def edit(d):
        st = d["model_stages"].pop("epoch_1")
        st["timestamp"] = "yesterday"
        d["model_stages"]["1st epoch"] = st
    _edit_yaml(det[1] / "models/result.yaml", edit)
    problems = _run(det, ["training"])
    _has(problems, "model_stages.1st epoch", "invalid stage name")
    _has(problems, "model_stages.1st epoch.stage_name", "differs from the key")
    _has(problems, "model_stages.1st epoch.timestamp", "expected an int")


def test_empty_files_evaluate_config_attachments(det):
    def edit(d):
        d["model_stages"]["epoch_1"]["files"] = []
        d["evaluate_config"]["iou_thr"] = "high"
        d["attachments"]["extra"].append("nothere.txt")
    _edit_yaml(det[1] / "models/result.yaml", edit)
    problems = _run(det, ["training"])
    _has(problems, "model_stages.epoch_1.files", "non-empty list")
    _has(problems, "evaluate_config.iou_thr", "expected a float")
    _has(problems, "attachments.extra[1]", "not found")


def test_missing_tensorboard_dir(det):
    (det[1] / "tensorboard/events.out.tfevents.1.host").unlink()
    _has(_run(det, ["training"]), "", "tensorboard directory is empty")
    (det[1] / "tensorboard").rmdir()
    p = _has(_run(det, ["training"]), "", "tensorboard directory not found")
    assert p.file == str(det[1] / "tensorboard")


def test_result_yaml_garbage(det):
    (det[1] / "models/result.yaml").write_text("model_stages: [unclosed\n")
    _has(_run(det, ["training"]), "", "malformed YAML")
    (det[1] / "models/result.yaml").write_text("!!python/object:numpy.float64 {}\n")
    _has(_run(det, ["training"]), "", "malformed YAML")
    (det[1] / "models/result.yaml").write_text("- a\n- b\n")
    _has(_run(det, ["training"]), "", "expected a mapping")
    (det[1] / "models/result.yaml").unlink()
    _has(_run(det, ["training"]), "", "file not found")


def test_old_format_rules(tmp_path):
    in_dir, out_dir = _build(tmp_path, 2, run=("training",))
    _edit_yaml(in_dir / "env.yaml", lambda d: d.pop("protocol_version"))
    (out_dir / "models/model.pth").write_text("x")
    _write_yaml(out_dir / "models/result.yaml", {"model": ["model.pth"], "map": 0.5})
    assert verify_output(str(in_dir), str(out_dir)) == []
    _write_yaml(out_dir / "models/result.yaml", {"model": ["model.pth", "gone.pth"], "map": 55})
    problems = verify_output(str(in_dir), str(out_dir))
    _has(problems, "model[1]", "not found")
    _has(problems, "map", "[0, 1]")


# --------------------------------------------------------------------------- monitor

def test_monitor_three_fields(det):
    (det[1] / "monitor.txt").write_text("t0001\t1700000000.0\t0.5\n")
    _has(_run(det, ["mining"]), "line 1", ">= 4 TAB-separated fields")


def test_monitor_failed_state_and_bad_values(det):
    (det[1] / "monitor.txt").write_text("t0001\t1700000000.0\t1.00\t4\t300004\tno weights\ntraceback\n")
    _has(_run(det, ["mining"]), "line 1.state", "run failed with code 300004: no weights")
    (det[1] / "monitor.txt").write_text("t0001\tnow\t150\t7\n")
    problems = _run(det, ["mining"])
    _has(problems, "line 1.timestamp", "expected a float")
    _has(problems, "line 1.percent", "outside [0, 1]")
    _has(problems, "line 1.state", "got 7")


# --------------------------------------------------------------------------- infer, detection

def test_missing_candidate_in_infer_result(det):
    _edit_json(det[1] / "infer-result.json", lambda d: d["detection"].pop(BASENAMES[1]))
    p = _has(_run(det, ["infer"]), "detection", "1 candidate image(s) missing")
    assert BASENAMES[1] in p.message


def test_extra_key_in_infer_result(det):
    _edit_json(det[1] / "infer-result.json", lambda d: d["detection"].update({"other.jpg": {"boxes": []}}))
    _has(_run(det, ["infer"]), "detection", "not among the candidates: other.jpg")


def test_non_integer_box(det):
    def edit(d):
        d["detection"][BASENAMES[0]]["boxes"][0]["box"]["w"] = 10.5
        d["detection"][BASENAMES[1]]["boxes"][0]["box"]["x"] = 3.0
    _edit_json(det[1] / "infer-result.json", edit)
    problems = _run(det, ["infer"])
    _has(problems, f"detection.{BASENAMES[0]}.boxes[0].box.w", "expected a JSON integer")
    _has(problems, f"detection.{BASENAMES[1]}.boxes[0].box.x", "expected a JSON integer")


def test_box_class_score_size_and_list_key(det):
    def edit(d):
        box = d["detection"][BASENAMES[0]]["boxes"][0]
        box.update(class_name="horse", score=1.5)
        box["box"]["h"] = 0
        d["detection"][BASENAMES[1]] = {"objects": []}
        d["detection"][BASENAMES[2]] = {"annotations": []}  # protocol 0.0.1 key: accepted
    _edit_json(det[1] / "infer-result.json", edit)
    problems = _run(det, ["infer"])
    pre = f"detection.{BASENAMES[0]}.boxes[0]"
    _has(problems, f"{pre}.class_name", "not in config class_names")
    _has(problems, f"{pre}.score", "[0, 1]")
    _has(problems, f"{pre}.box.h", "must be > 0")
    _has(problems, f"detection.{BASENAMES[1]}", "neither 'boxes' nor 'annotations'")
    assert not [p for p in problems if BASENAMES[2] in p.field]


def test_infer_json_garbage(det):
    (det[1] / "infer-result.json").write_text("{not json")
    _has(_run(det, ["infer"]), "line 1", "malformed JSON")
    (det[1] / "infer-result.json").write_text("[1, 2]")
    _has(_run(det, ["infer"]), "detection", "missing top-level key")


# --------------------------------------------------------------------------- infer, segmentation

def test_rle_counts_as_list(seg):
    def edit(d):
        d["annotations"][0]["segmentation"] = {"size": [H, W], "counts": [5, 2, 2, 2, 9]}
    _edit_json(seg[1] / "infer-result.json", edit)
    _has(_run(seg, ["infer"]), "annotations[0].segmentation.counts", "uncompressed RLE")


def test_rle_not_decodable_and_wrong_size(seg):
    def edit(d):
        d["annotations"][0]["segmentation"]["counts"] = "garbage~~"
        d["annotations"][1]["segmentation"]["counts"] = "2"  # runs sum to 2, not 20
        m = np.zeros((H + 1, W), dtype=np.uint8, order="F")
        d["annotations"][2]["segmentation"] = {"size": [H + 1, W],
                                               "counts": mask_util.encode(m)["counts"].decode()}
    _edit_json(seg[1] / "infer-result.json", edit)
    problems = _run(seg, ["infer"])
    _has(problems, "annotations[0].segmentation.counts", "cannot decode RLE")
    _has(problems, "annotations[1].segmentation.counts", "cannot decode RLE")
    _has(problems, "annotations[2].segmentation.size", "differs from the image")


def test_seg_annotation_without_bbox(seg):
    _edit_json(seg[1] / "infer-result.json", lambda d: d["annotations"][1].pop("bbox"))
    _has(_run(seg, ["infer"]), "annotations[1].bbox", "missing")


def test_instance_output_needs_mask_ap_in_range_and_a_confidence_per_instance(tmp_path):
    iseg = _build(tmp_path, 4)
    _has(_run(iseg, ["infer"]), "annotations[0].confidence", "missing")
    _edit_json(iseg[1] / "infer-result.json",
               lambda d: [a.update(confidence=0.9, iscrowd=0) for a in d["annotations"]])
    assert _run(iseg) == []
    _edit_json(iseg[1] / "infer-result.json", lambda d: d["annotations"][1].update(confidence=1.5))
    _edit_yaml(iseg[1] / "models" / "result.yaml", lambda d: d["model_stages"]["epoch_1"].update(maskAP=75.0))
    problems = _run(iseg)
    _has(problems, "annotations[1].confidence", "[0, 1]")
    _has(problems, "epoch_1.maskAP", "")


def test_seg_annotation_without_area(seg):
    _edit_json(seg[1] / "infer-result.json", lambda d: d["annotations"][2].pop("area"))
    _has(_run(seg, ["infer"]), "annotations[2].area", "missing")


def test_seg_references_categories_images(seg):
    def edit(d):
        d["annotations"][0].update(image_id=99, category_id=7)
        d["annotations"][1]["bbox"] = [0, 0, 0, 2]
        d["categories"].append({"id": 0, "name": "horse"})
        d["images"][0]["file_name"] = "/in/assets/" + d["images"][0]["file_name"]
        d["images"].pop()
    _edit_json(seg[1] / "infer-result.json", edit)
    problems = _run(seg, ["infer"])
    _has(problems, "annotations[0].image_id", "not the id of an image")
    _has(problems, "annotations[0].category_id", "not the id of a category")
    _has(problems, "annotations[1].bbox", "w and h must be > 0")
    _has(problems, "categories[2].id", "duplicate category id")
    _has(problems, "categories[2].name", "not in config class_names")
    _has(problems, "images[0].file_name", "expected a basename")
    _has(problems, "images", f"missing: {BASENAMES[2]}")


def test_seg_with_detection_key_only(seg):
    _write_json(seg[1] / "infer-result.json", {"detection": {b: {"boxes": []} for b in BASENAMES}})
    problems = _run(seg, ["infer"])
    for key in ("images", "categories", "annotations"):
        _has(problems, key, "missing")


# --------------------------------------------------------------------------- mining

def _write_tsv(dirs, lines: List[str]) -> None:
    (dirs[1] / "result.tsv").write_text("".join(ln + "\n" for ln in lines))


def test_unsorted_tsv(det):
    _write_tsv(det, [f"{CANDIDATES[0]}\t0.9", f"{CANDIDATES[1]}\t0.1", f"{CANDIDATES[2]}\t0.5"])
    p = _has(_run(det, ["mining"]), "line 3", "not sorted descending")
    assert "line 2" in p.message


def test_three_field_tsv_line(det):
    _write_tsv(det, [f"{CANDIDATES[0]}\t0.9\t0.3", f"{CANDIDATES[1]}\t0.5", f"{CANDIDATES[2]}\t0.1"])
    problems = _run(det, ["mining"])
    _has(problems, "line 1", "exactly 2 TAB-separated fields")
    _has(problems, "line 1", "exactly 2 whitespace-separated tokens")


def test_tsv_missing_candidate(det):
    _write_tsv(det, [f"{CANDIDATES[0]}\t0.9", f"{CANDIDATES[2]}\t0.1"])
    problems = _run(det, ["mining"])
    p = _has(problems, "paths", "1 candidate image(s) missing")
    assert CANDIDATES[1] in p.message
    _has(problems, "", "2 line(s) but candidate-index.tsv has 3")


def test_tsv_blank_line_bad_score_local_path(det):
    local = str(det[0] / CANDIDATES[2][len("/in/"):])  # a mapped path is not what the index says
    (det[1] / "result.tsv").write_text(f"{CANDIDATES[0]}\t0.9\n\n{CANDIDATES[1]}\tnan\n{local}\t0.1\n")
    problems = _run(det, ["mining"])
    _has(problems, "line 2", "blank line")
    _has(problems, "line 3", "not a finite number")
    _has(problems, "paths", "not among the candidates")


def test_tsv_path_with_space(det):
    _write_tsv(det, [f"{CANDIDATES[0]}\t0.9", f"{CANDIDATES[1]} x\t0.5", f"{CANDIDATES[2]}\t0.1"])
    _has(_run(det, ["mining"]), "line 2", "whitespace-separated tokens")


# --------------------------------------------------------------------------- garbage inputs

def test_never_crashes_on_binary_garbage(det):
    for name in ("models/result.yaml", "infer-result.json", "result.tsv", "monitor.txt"):
        (det[1] / name).write_bytes(b"\x80\x81\xfe\xff\x00garbage")
    problems = _run(det)
    assert {p.file for p in problems} >= {str(det[1] / n) for n in
                                          ("models/result.yaml", "infer-result.json", "result.tsv", "monitor.txt")}


def test_bad_env_and_unknown_task(det):
    (det[0] / "env.yaml").write_text("protocol_version: 9.9.9\n")
    problems = verify_output(str(det[0]), str(det[1]))
    _has(problems, "protocol_version", "unknown protocol")
    with pytest.raises(ValueError):
        verify_output(str(det[0]), str(det[1]), tasks=["train"])


def test_problem_cap(det):
    _edit_json(det[1] / "infer-result.json",
               lambda d: d["detection"][BASENAMES[0]].update(
                   boxes=[{"box": {"x": 0.5, "y": 0, "w": 1, "h": 1}, "class_name": "dog", "score": 0.5}] * 100))
    problems = _run(det, ["infer"])
    assert len([p for p in problems if p.field.endswith("box.x")]) == 20
    _has(problems, "", "80 more problem(s)")
