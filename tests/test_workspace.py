"""make-workspace output read back by the contract readers gives exactly what was generated."""
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from executor.annotations import CocoSegReader, detect_annotation_format, read_ark
from executor.env import PathMap, load_env
from executor.hyperparams import load_config
from executor.images import image_size, load_image, sniff_format
from executor.index import iter_candidates, read_index
from executor.registry import get_kind
from executor.workspace import make_workspace


def _load(ws: Path):
    pm = PathMap(str(ws / "in"), str(ws / "out"))
    return load_env(str(ws / "in" / "env.yaml"), pm), pm


def test_det_train_counts_read_back(tmp_path):
    summary = make_workspace(str(tmp_path), "det", "train", num_train=20, num_val=8)
    env, pm = _load(tmp_path)
    assert env.run_training and env.protocol_version == "1.1.0"
    cfg = load_config(env.input.config_file, get_kind("det").schemas["training"])
    assert cfg.class_names == ["box", "disc"] and cfg.object_type == 2
    for split, index in (("train", env.input.training_index_file), ("val", env.input.val_index_file)):
        entries = read_index(index, path_map=pm)
        per_class = [0, 0]
        negatives = 0
        for e in entries:
            # platform layout: /in/assets/<last 2 of sha1>/<sha1>.<ext>, ext from the content
            name = Path(e.raw_image).name
            sha1 = name.split(".")[0]
            assert e.raw_image == f"/in/assets/{sha1[-2:]}/{name}"
            assert hashlib.sha1(Path(e.image).read_bytes()).hexdigest() == sha1
            assert {"jpeg": "jpg", "png": "png"}[sniff_format(e.image)] == name.split(".")[1]
            assert detect_annotation_format(e.annotation) == "ark"
            objs = read_ark(e.annotation, cfg.class_names)
            w, h = image_size(e.image)
            negatives += not objs
            for o in objs:
                per_class[o.class_id] += 1
                assert 0 <= o.x1 < o.x2 <= w and 0 <= o.y1 < o.y2 <= h
        assert len(entries) == summary[split]["images"]
        assert per_class == summary[split]["objects_per_class"]
        assert negatives == summary[split]["negatives"]
    assert summary["train"]["images"] == 20 and summary["val"]["images"] == 8


def test_det_boxes_are_tight_around_the_painted_objects(tmp_path):
    make_workspace(str(tmp_path), "det", "train", num_train=6, num_val=2, seed=3)
    env, pm = _load(tmp_path)
    for e in read_index(env.input.training_index_file, path_map=pm):
        img = load_image(e.image).astype(int)
        for o in read_ark(e.annotation, ["box", "disc"]):
            inner = img[int(o.y1) + 3:int(o.y2) - 3, int(o.x1) + 3:int(o.x2) - 3]
            # object colours are strongly red (box) or blue (disc), unlike the grey background
            chan = 0 if o.class_id == 0 else 2
            centre = inner[inner.shape[0] // 2, inner.shape[1] // 2]
            assert centre[chan] - centre[1] > 60


def test_seg_train_counts_read_back(tmp_path):
    summary = make_workspace(str(tmp_path), "seg", "train", num_train=12, num_val=4)
    env, pm = _load(tmp_path)
    cfg = yaml.safe_load(Path(env.input.config_file).read_text())
    assert cfg["object_type"] == 3 and cfg["export_format"] == "seg-coco:raw"
    for split, index in (("train", env.input.training_index_file), ("val", env.input.val_index_file)):
        entries = read_index(index, path_map=pm)
        assert {e.annotation for e in entries} == {str(tmp_path / "in/annotations/coco-annotations.json")}
        reader = CocoSegReader(entries[0].annotation, cfg["class_names"])
        pixels = [0, 0]
        unlabelled = 0
        for e in entries:
            w, h = image_size(e.image)
            m = reader.mask(e.image)
            assert m.shape == (h, w)
            for c in (0, 1):
                pixels[c] += int((m == c).sum())
            unlabelled += int((m == 255).sum())
        assert len(entries) == summary[split]["images"]
        assert pixels == summary[split]["pixels_per_class"]
        assert unlabelled == summary[split]["unlabelled_pixels"]
    doc = json.loads((tmp_path / "in/annotations/coco-annotations.json").read_text())
    assert len(doc["annotations"]) == summary["train"]["instances"] + summary["val"]["instances"]
    assert all(isinstance(a["segmentation"]["counts"], str) for a in doc["annotations"])


@pytest.mark.parametrize("kind", ["det", "seg"])
def test_mine_workspace_counts_and_hidden_ground_truth(tmp_path, kind):
    summary = make_workspace(str(tmp_path), kind, "mine", num_candidates=10)
    env, pm = _load(tmp_path)
    assert env.run_mining and env.run_infer and not env.run_training
    cands = list(iter_candidates(env.input.candidate_index_file, path_map=pm))
    assert len(cands) == summary["candidates"]["images"] == 10
    assert all(c.annotation is None and c.raw_image.startswith("/in/assets/") for c in cands)
    # ground truth lives outside /in, never inside it
    assert not any((tmp_path / "in" / "annotations").iterdir())
    gt = (tmp_path / "ground-truth" / "gt-index.tsv").read_text().splitlines()
    assert [l.split("\t")[0] for l in gt] == [c.raw_image for c in cands]
    cfg = yaml.safe_load(Path(env.input.config_file).read_text())
    assert cfg["run_mining"] is True and cfg["model_params_path"] == []
    schema = get_kind(kind).schemas["mining"]
    assert load_config(env.input.config_file, schema).params == schema.defaults()


def test_workspaces_are_deterministic(tmp_path):
    make_workspace(str(tmp_path / "a"), "det", "train", num_train=5, num_val=2, seed=7)
    make_workspace(str(tmp_path / "b"), "det", "train", num_train=5, num_val=2, seed=7)
    make_workspace(str(tmp_path / "c"), "det", "train", num_train=5, num_val=2, seed=8)
    a = (tmp_path / "a/in/train-index.tsv").read_text()
    assert a == (tmp_path / "b/in/train-index.tsv").read_text()
    assert a != (tmp_path / "c/in/train-index.tsv").read_text()


def test_overrides_and_protocol(tmp_path):
    make_workspace(str(tmp_path), "seg", "train", num_train=2, num_val=1, protocol="1.0.0",
                   overrides={"max_iters": 20, "interval": 10})
    env, _ = _load(tmp_path)
    cfg = yaml.safe_load(Path(env.input.config_file).read_text())
    assert env.protocol_version == "1.0.0" and cfg["max_iters"] == 20 and cfg["interval"] == 10


def test_demo_input_check_reads_back_what_was_generated(tmp_path):
    from executor.demo import check_inputs

    summary = make_workspace(str(tmp_path / "det"), "det", "train", num_train=6, num_val=3)
    found = check_inputs(tmp_path / "det")
    assert found == {"images": 9, "objects": summary["train"]["objects"] + summary["val"]["objects"]}
    make_workspace(str(tmp_path / "seg"), "seg", "mine", num_candidates=5)
    assert check_inputs(tmp_path / "seg") == {"images": 5, "objects": 0}
