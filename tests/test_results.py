import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from executor.env import PathMap, load_env
from executor.errors import ErrorCode, YmirError
from executor.monitor import Monitor
from executor.results import (MAX_STAGES, DetectionInferWriter, SegmentationInferWriter, write_mining_result,
                              write_model_stage)
from executor.verify import verify_output

from conftest import write_config, write_env


def _env(in_dir, out_dir, protocol="1.1.0", **kw):
    write_env(in_dir, protocol_version=protocol, **kw)
    return load_env(str(in_dir / "env.yaml"), PathMap(str(in_dir), str(out_dir)))


def _weights(out_dir, name, content=b"w"):
    work = out_dir / "work"
    work.mkdir(exist_ok=True)
    (work / name).write_bytes(content)
    return str(work / name)


def _finish_training_outputs(env):
    os.makedirs(env.output.tensorboard_dir, exist_ok=True)
    open(os.path.join(env.output.tensorboard_dir, "events.out.tfevents.1"), "w").write("x")
    Monitor(env.output.monitor_file, env.task_id).finish()


def test_stages_accumulate_in_stage_folders_and_best_is_chosen(io_dirs):
    in_dir, out_dir = io_dirs
    write_config(in_dir, {"class_names": ["a"], "object_type": 3})
    env = _env(in_dir, out_dir)
    cfg_file = _weights(out_dir, "config.py", b"model = dict()")
    write_model_stage(env, "iter_100", [_weights(out_dir, "iter_100.pth"), cfg_file],
                      {"mIoU": np.float32(0.5), "mAcc": 0.6}, timestamp=100)
    doc = write_model_stage(env, "iter_200", [_weights(out_dir, "iter_200.pth"), cfg_file],
                            {"mIoU": 0.75, "mAcc": 0.8}, timestamp=200)
    assert doc["best_stage_name"] == "iter_200"
    on_disk = yaml.safe_load(Path(env.output.training_result_file).read_text())
    assert set(on_disk["model_stages"]) == {"iter_100", "iter_200"}
    s = on_disk["model_stages"]["iter_100"]
    assert s == {"stage_name": "iter_100", "files": ["iter_100.pth", "config.py"], "timestamp": 100,
                 "mIoU": 0.5, "mAcc": pytest.approx(0.6)}
    assert type(s["mIoU"]) is float
    assert (out_dir / "models" / "iter_100" / "iter_100.pth").is_file()
    assert (out_dir / "models" / "iter_200" / "config.py").read_bytes() == b"model = dict()"
    assert "model" not in on_disk
    _finish_training_outputs(env)
    assert verify_output(str(in_dir), str(out_dir)) == []


def test_best_stage_ties_go_to_the_newest_and_explicit_best_wins(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir)
    write_model_stage(env, "a", [_weights(out_dir, "a.pth")], {"mAP": 0.5}, timestamp=1)
    assert write_model_stage(env, "b", [_weights(out_dir, "b.pth")], {"mAP": 0.5}, timestamp=2)[
        "best_stage_name"] == "b"
    assert write_model_stage(env, "last", [_weights(out_dir, "c.pth")], {"mAP": 0.1}, timestamp=3,
                             best_stage_name="a")["best_stage_name"] == "a"


def test_symlinked_files_are_copied_as_real_files(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir)
    real = _weights(out_dir, "iter_10.pth", b"real")
    link = out_dir / "work" / "latest.pth"
    link.symlink_to(real)
    write_model_stage(env, "last", [str(link)], {"mAP": 0.3})
    placed = out_dir / "models" / "last" / "latest.pth"
    assert placed.is_file() and not placed.is_symlink() and placed.read_bytes() == b"real"


def test_protocol_100_keeps_files_at_the_models_root(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir, protocol="1.0.0")
    write_model_stage(env, "epoch-3", [_weights(out_dir, "epoch_3.pth")], {"mAP": 0.4})
    doc = yaml.safe_load(Path(env.output.training_result_file).read_text())
    assert "epoch_3" in doc["model_stages"]  # '-' replaced as the SDK does
    assert (out_dir / "models" / "epoch_3.pth").is_file()


def test_protocol_001_writes_the_old_model_map_format(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir, protocol="0.0.1")
    write_model_stage(env, "e1", [_weights(out_dir, "e1.pth")], {"mAP": 0.7})
    write_model_stage(env, "e2", [_weights(out_dir, "e2.pth")], {"mAP": 0.4})
    doc = yaml.safe_load(Path(env.output.training_result_file).read_text())
    assert doc == {"model": ["e1.pth"], "map": 0.7}
    _finish_training_outputs(env)
    write_config(in_dir, {"class_names": ["a"]})
    assert verify_output(str(in_dir), str(out_dir)) == []


def test_bad_metrics_are_refused(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir)
    w = _weights(out_dir, "x.pth")
    with pytest.raises(ValueError, match="fraction"):
        write_model_stage(env, "s", [w], {"mAP": 78.5})
    with pytest.raises(YmirError) as e:
        write_model_stage(env, "s", [w], {"mAP": float("nan")})
    assert e.value.code == ErrorCode.NAN_LOSS
    assert not os.path.exists(env.output.training_result_file)


def test_at_most_eleven_stages_and_the_best_survives(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir)
    write_model_stage(env, "s0", [_weights(out_dir, "s0.pth")], {"mAP": 0.9}, timestamp=0)
    for i in range(1, 15):
        write_model_stage(env, f"s{i}", [_weights(out_dir, f"s{i}.pth")], {"mAP": 0.1}, timestamp=i)
    doc = yaml.safe_load(Path(env.output.training_result_file).read_text())
    assert len(doc["model_stages"]) == MAX_STAGES and doc["best_stage_name"] == "s0"
    assert "s1" not in doc["model_stages"] and not (out_dir / "models" / "s1").exists()


def _candidates(in_dir, names):
    lines = [f"/in/assets/{n[-6:-4]}/{n}" for n in names]
    (in_dir / "candidate-index.tsv").write_text("".join(x + "\n" for x in lines))
    return lines


def test_detection_infer_result_has_every_candidate_and_integer_boxes(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir, run_training=False, run_infer=True,
               input={"candidate_index_file": "/in/candidate-index.tsv"})
    write_config(in_dir, {"class_names": ["cat", "dog"], "object_type": 2})
    cands = _candidates(in_dir, ["aa11.jpg", "bb22.png", "cc33.jpg"])
    w = DetectionInferWriter(env, ["cat", "dog"])
    w.add(env.map(cands[0]), [(1, 0.91, 10.4, 20.6, 50.2, 60.7), (0, 0.2, 5, 5, 5.2, 9)])
    w.close([env.map(c) for c in cands])
    doc = json.loads(Path(env.output.infer_result_file).read_text())
    assert set(doc["detection"]) == {"aa11.jpg", "bb22.png", "cc33.jpg"}
    assert doc["detection"]["aa11.jpg"]["boxes"] == [
        {"box": {"x": 10, "y": 21, "w": 40, "h": 40}, "class_name": "dog", "score": pytest.approx(0.91)}]
    assert doc["detection"]["bb22.png"] == {"boxes": []}
    Monitor(env.output.monitor_file, env.task_id, ["infer"]).finish()
    assert verify_output(str(in_dir), str(out_dir)) == []


def test_detection_infer_uses_annotations_key_before_protocol_100(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir, protocol="0.0.1")
    w = DetectionInferWriter(env, ["cat"])
    w.add("/x/a.jpg", [(0, 0.5, 0, 0, 4, 4)])
    w.close()
    assert json.loads(Path(env.output.infer_result_file).read_text())["detection"]["a.jpg"]["annotations"][0]["box"]["w"] == 4


def test_segmentation_infer_result_is_coco_with_string_rle(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir, run_training=False, run_infer=True,
               input={"candidate_index_file": "/in/candidate-index.tsv"})
    write_config(in_dir, {"class_names": ["bg", "fg"], "object_type": 3})
    cands = _candidates(in_dir, ["aa11.png", "bb22.png"])
    label = np.full((20, 30), 255, np.uint8)
    label[2:8, 3:12] = 1
    label[10:15, 0:5] = 0
    w = SegmentationInferWriter(env, ["bg", "fg"])
    w.add(env.map(cands[0]), label)
    w.close([(env.map(cands[1]), 30, 20)])
    doc = json.loads(Path(env.output.infer_result_file).read_text())
    assert [im["file_name"] for im in doc["images"]] == ["aa11.png", "bb22.png"]
    assert [c["name"] for c in doc["categories"]] == ["bg", "fg"]
    anns = {a["category_id"]: a for a in doc["annotations"]}
    assert set(anns) == {0, 1}
    fg = anns[1]
    assert isinstance(fg["segmentation"]["counts"], str) and fg["iscrowd"] == 1
    assert fg["bbox"] == [3.0, 2.0, 9.0, 6.0] and fg["area"] == 54
    decoded = mask_utils.decode({"size": fg["segmentation"]["size"], "counts": fg["segmentation"]["counts"]})
    assert (decoded.astype(bool) == (label == 1)).all()
    Monitor(env.output.monitor_file, env.task_id, ["infer"]).finish()
    assert verify_output(str(in_dir), str(out_dir)) == []


def test_mining_result_is_sorted_descending_and_deterministic(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir, run_training=False, run_mining=True,
               input={"candidate_index_file": "/in/candidate-index.tsv"})
    write_config(in_dir, {"class_names": ["a"], "object_type": 2})
    cands = _candidates(in_dir, ["aa11.jpg", "bb22.jpg", "cc33.jpg", "dd44.jpg"])
    n = write_mining_result(env, zip(cands, [0.1, 0.9, 0.1, float("nan")]))
    lines = open(env.output.mining_result_file).read().splitlines()
    assert n == 4
    assert [l.split("\t")[0] for l in lines] == [cands[1], cands[0], cands[2], cands[3]]
    assert all(len(l.split("\t")) == 2 for l in lines)
    Monitor(env.output.monitor_file, env.task_id, ["mining"]).finish()
    assert verify_output(str(in_dir), str(out_dir)) == []


def test_a_failed_write_leaves_the_previous_file_intact(io_dirs):
    in_dir, out_dir = io_dirs
    env = _env(in_dir, out_dir)
    w = DetectionInferWriter(env, ["a"])
    w.add("/x/a.jpg", [])
    w.close()
    before = open(env.output.infer_result_file).read()
    w = DetectionInferWriter(env, ["a"])
    w.add("/x/b.jpg", [])
    w.abort()  # e.g. the model crashed half-way
    assert open(env.output.infer_result_file).read() == before
    assert [p for p in os.listdir(out_dir) if p.endswith(".tmp")] == []


def test_a_json_list_written_item_by_item_is_the_whole_document_or_nothing(tmp_path):
    from executor.fileio import atomic_write_json_list

    path = tmp_path / "report.json"
    head, tail = {"thresholds": [{"class": "Car", "score": 0.5}], "mining_score": "qa"}, {"bank": [1, 2]}
    rows = [{"frame": f"/in/é/{i}.bin", "qa": i / 3} for i in range(3)]
    atomic_write_json_list(path, head, "frames", iter(rows), tail)
    assert json.loads(path.read_text(encoding="utf-8")) == {**head, "frames": rows, **tail}
    assert list(json.loads(path.read_text(encoding="utf-8"))) == ["thresholds", "mining_score", "frames", "bank"]
    atomic_write_json_list(tmp_path / "empty.json", {}, "frames", iter(()), {})
    assert json.loads((tmp_path / "empty.json").read_text()) == {"frames": []}

    def failing():
        yield {"frame": "a"}
        raise RuntimeError("killed halfway")
    with pytest.raises(RuntimeError):
        atomic_write_json_list(path, head, "frames", failing(), tail)
    assert json.loads(path.read_text(encoding="utf-8"))["frames"] == rows  # the earlier file stands
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.json", "report.json"]  # no temporary left
