"""The point-cloud side of the contract (no torch): scan and box readers with their errors, the
synthetic 3D workspace, the 3D infer writer and its verify rules."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from executor.env import PathMap, load_env
from executor.errors import ErrorCode, YmirError
from executor.index import iter_candidates, iter_candidates_with_labels, read_index
from executor.pointcloud import format_boxes3d, load_points, parse_boxes3d, read_boxes3d, save_points
from ymir_tasks.det3d.infer_result import Detection3DInferWriter
from ymir_tasks.det3d.scenes import CLASSES, make_scenes, points_in_boxes
from executor.verify import verify_output
from executor.workspace import make_workspace

NAMES = ["Car", "Pedestrian", "Cyclist"]


def test_boxes_parse_names_indices_commas_comments_and_scores():
    text = ("# a comment\n1 2 -1.7 3.9 1.6 1.5 0.3 Car\n\n4, 5, -1.7, 0.8, 0.6, 1.7, -1 1\n"
            "7 8 -1.7 1.7 0.6 1.7 3.1 Cyclist 0.75\n")
    b = parse_boxes3d(text, NAMES)
    assert b.labels.tolist() == [0, 1, 2]
    assert b.boxes[1].tolist() == [4, 5, -1.7, 0.8, 0.6, 1.7, -1]
    assert b.scores.tolist() == [-1.0, -1.0, 0.75]
    again = parse_boxes3d(format_boxes3d(b, NAMES, with_score=True), NAMES)
    assert np.allclose(again.boxes, b.boxes, atol=1e-4) and again.labels.tolist() == [0, 1, 2]


@pytest.mark.parametrize("line,field,fragment", [
    ("1 2 3 4 5 6 Car", None, "got 7 field(s)"),
    ("1 2 3 4 5 6 0.1 Car 0.5 9", None, "got 10 field(s)"),
    ("1 two 3 4 5 6 0.1 Car", "y", "not a number"),
    ("1 2 3 0 5 6 0.1 Car", "dx", "must be > 0"),
    ("1 2 3 4 -5 6 0.1 Car", "dy", "must be > 0"),
    ("1 2 3 4 5 6 nan Car", "yaw", "not finite"),
    ("1 2 3 4 5 6 0.1 Truck", "class", "unknown class 'Truck'"),
    ("1 2 3 4 5 6 0.1 7", "class", "unknown class '7'"),
    ("1 2 3 4 5 6 0.1 Car high", "score", "not a number"),
])
def test_malformed_box_lines_name_file_line_and_field(tmp_path, line, field, fragment):
    path = tmp_path / "labels.txt"
    path.write_text("1 2 -1.7 3.9 1.6 1.5 0.3 Car\n" + line + "\n")
    with pytest.raises(YmirError) as e:
        read_boxes3d(str(path), NAMES)
    assert e.value.code == ErrorCode.DATASET and e.value.line == 2
    msg = e.value.one_line()
    assert str(path) in msg and fragment in msg
    if field:
        assert f"field '{field}'" in msg


def test_missing_and_binary_label_files(tmp_path):
    with pytest.raises(YmirError) as e:
        read_boxes3d(str(tmp_path / "nope.txt"), NAMES)
    assert e.value.code == ErrorCode.DATASET and "not found" in str(e.value)
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(YmirError) as e:
        read_boxes3d(str(bad), NAMES)
    assert e.value.code == ErrorCode.DATASET and "UTF-8" in str(e.value)
    assert len(read_boxes3d(None, NAMES)) == 0  # an unlabelled candidate


def test_scans_round_trip_and_broken_scans_are_300003(tmp_path):
    pts = np.arange(40, dtype=np.float32).reshape(10, 4)
    save_points(str(tmp_path / "a.bin"), pts)
    assert np.array_equal(load_points(str(tmp_path / "a.bin")), pts)
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 18)
    nan = pts.copy()
    nan[3, 1] = np.nan
    save_points(str(tmp_path / "nan.bin"), nan)
    for name, fragment in (("odd.bin", "not a multiple of 16"), ("nan.bin", "NaN"), ("missing.bin", "cannot read")):
        with pytest.raises(YmirError) as e:
            load_points(str(tmp_path / name))
        assert e.value.code == ErrorCode.IMAGE_FORMAT and name in str(e.value) and fragment in str(e.value)


def test_synthetic_scenes_are_deterministic_sparse_and_visible():
    a, b = make_scenes(5, 6), make_scenes(5, 6)
    for s, t in zip(a, b):
        assert np.array_equal(s.points, t.points) and np.array_equal(s.full.boxes, t.full.boxes)
    for s in a:
        assert s.points.dtype == np.float32 and s.points.shape[1] == 4
        assert 4 <= len(s.full) <= 10 and len(s.sparse) == 1
        assert (np.abs(s.full.boxes[:, None] - s.sparse.boxes[None]).sum(-1) < 1e-9).any(0).all()
        counts = points_in_boxes(s.points, s.full.boxes).sum(0)
        assert (counts >= 1).all()
        near = np.hypot(s.full.boxes[:, 0], s.full.boxes[:, 1]) < 15
        assert (counts[near & (s.full.labels == 0)] > 50).all()  # near cars are dense, far objects sparse


def test_det3d_workspaces_follow_the_platform_layout(tmp_path):
    for task in ("train", "mine", "infer"):
        make_workspace(str(tmp_path / task), "det3d", task, num_train=6, num_val=3, num_candidates=5)
    pm = PathMap(str(tmp_path / "train" / "in"), str(tmp_path / "train" / "out"))
    env = load_env(str(tmp_path / "train" / "in" / "env.yaml"), pm)
    entries = read_index(env.input.training_index_file, path_map=pm)
    assert len(entries) == 6
    for e in entries:
        data = Path(e.image).read_bytes()
        sha = hashlib.sha1(data).hexdigest()
        assert e.raw_image == f"/in/assets/{sha[-2:]}/{sha}.bin" and len(data) % 16 == 0
        assert len(read_boxes3d(e.annotation, CLASSES)) >= 4
    sparse = (tmp_path / "train" / "in" / "train-index-sparse.tsv").read_text().splitlines()
    assert len(sparse) == 6
    for line in sparse:
        assert len(read_boxes3d(pm(line.split("\t")[1]), CLASSES)) == 1
    cfg = yaml.safe_load((tmp_path / "train" / "in" / "config.yaml").read_text())
    assert cfg["object_type"] == 100 and cfg["class_names"] == CLASSES and cfg["config_file"] == "pointpillars"

    mine = tmp_path / "mine"
    pm = PathMap(str(mine / "in"), str(mine / "out"))
    cands = list(iter_candidates_with_labels(str(mine / "in" / "candidate-index.tsv"), path_map=pm))
    assert len(cands) == 5 and all(len(read_boxes3d(c.annotation, CLASSES)) == 1 for c in cands)
    # the plain candidate reader (and so the platform and verify) sees one path per line
    assert [c.raw_image for c in iter_candidates(str(mine / "in" / "candidate-index.tsv"), path_map=pm)] == \
        [c.raw_image for c in cands]
    cfg = yaml.safe_load((mine / "in" / "config.yaml").read_text())
    assert cfg["eval_index_file"] == "/in/full-index.tsv" and cfg["run_mining"] and cfg["run_infer"]
    full = read_index(pm(cfg["eval_index_file"]), path_map=pm)
    assert [f.raw_image for f in full] == [c.raw_image for c in cands]
    infer_lines = (tmp_path / "infer" / "in" / "candidate-index.tsv").read_text().splitlines()
    assert len(infer_lines) == 5 and all("\t" not in l for l in infer_lines)
    assert (tmp_path / "infer" / "ground-truth" / "gt-index.tsv").is_file()


def _infer_ws(tmp_path: Path) -> Path:
    make_workspace(str(tmp_path / "inf"), "det3d", "infer", num_candidates=3)
    return tmp_path / "inf"


def _write_infer(ws: Path, boxes) -> None:
    env = load_env(str(ws / "in" / "env.yaml"), PathMap(str(ws / "in"), str(ws / "out")))
    w = Detection3DInferWriter(env, CLASSES)
    cands = [c.image for c in iter_candidates(env.input.candidate_index_file, path_map=env.path_map)]
    w.add(cands[0], boxes)
    w.close(cands)
    (ws / "out" / "monitor.txt").write_text("t-demo-det3d-infer\t1700000000\t1.00\t3\n")


def test_3d_infer_writer_passes_verify_and_keeps_every_candidate(tmp_path):
    ws = _infer_ws(tmp_path)
    _write_infer(ws, [(0, 0.9, [10, 2, -1.7, 3.9, 1.6, 1.5, 0.1]), (2, 0.4, [5, -3, -1.7, 1.7, 0.6, 1.7, 2.0]),
                      (1, 0.5, [5, -3, -1.7, 0.0, 0.6, 1.7, 2.0])])  # a degenerate box is dropped
    doc = json.loads((ws / "out" / "infer-result.json").read_text())
    assert "LiDAR" in doc["box3d_format"] and len(doc["detection3d"]) == 3
    first = next(v for v in doc["detection3d"].values() if v["boxes"])
    assert [b["class_name"] for b in first["boxes"]] == ["Car", "Cyclist"]
    assert first["boxes"][0]["box3d"] == {"x": 10, "y": 2, "z": -1.7, "dx": 3.9, "dy": 1.6, "dz": 1.5, "yaw": 0.1}
    assert verify_output(str(ws / "in"), str(ws / "out"), tasks=["infer"]) == []


def test_verify_reports_broken_3d_infer_files(tmp_path):
    ws = _infer_ws(tmp_path)
    _write_infer(ws, [(0, 0.9, [10, 2, -1.7, 3.9, 1.6, 1.5, 0.1])])
    path = ws / "out" / "infer-result.json"
    doc = json.loads(path.read_text())
    name = next(iter(doc["detection3d"]))
    doc["detection3d"][name]["boxes"] = [{"box3d": {"x": 1, "y": 2, "z": 0, "dx": -1, "dy": 1, "dz": "1",
                                                    "yaw": 0}, "class_name": "Truck", "score": 1.5}]
    doc["detection3d"].pop(list(doc["detection3d"])[1])
    path.write_text(json.dumps(doc))
    text = "\n".join(str(p) for p in verify_output(str(ws / "in"), str(ws / "out"), tasks=["infer"]))
    for fragment in ("1 candidate image(s) missing", "box3d.dx: must be > 0", "box3d.dz: expected a finite number",
                     "'Truck' not in config class_names", "score: expected a number in [0, 1]"):
        assert fragment in text, text
