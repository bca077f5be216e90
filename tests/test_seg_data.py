"""Segmentation data preparation: both annotation formats, blank-area handling."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from executor.annotations import CocoSegReader
from executor.env import PathMap, load_env
from executor.errors import ErrorCode, YmirError
from executor.workspace import make_workspace
from ymir_tasks.seg.config import class_weights, set_class_weight
from ymir_tasks.seg.data import LabelSpace, balanced_class_weight, prepare

COLOURS = {"disc": (10, 200, 30), "square": (200, 20, 120)}


def _to_seg_mask(ws: Path) -> None:
    """Rewrite a seg-coco workspace as the YMIR 2.0 seg-mask export (RGB PNG + labelmap.txt)."""
    coco_path = ws / "in" / "annotations" / "coco-annotations.json"
    reader = CocoSegReader(str(coco_path), ["disc", "square"])
    (ws / "in" / "annotations" / "labelmap.txt").write_text(
        "bg:0,0,0::\n" + "".join(f"{n}:{c[0]},{c[1]},{c[2]}::\n" for n, c in COLOURS.items()))
    for index in ("train-index.tsv", "val-index.tsv"):
        rows = []
        for line in (ws / "in" / index).read_text().splitlines():
            image = line.split("\t")[0]
            local = ws / image.lstrip("/")
            mask = reader.mask(str(local))
            rgb = np.zeros(mask.shape + (3,), np.uint8)
            for i, n in enumerate(COLOURS):
                rgb[mask == i] = COLOURS[n]
            name = Path(image).stem
            rel = f"annotations/{name[-2:]}/{name}.png"
            (ws / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(ws / "in" / rel)
            rows.append(f"{image}\t/in/{rel}")
        (ws / "in" / index).write_text("\n".join(rows) + "\n")
    coco_path.unlink()


@pytest.mark.parametrize("fmt", ["seg-coco", "seg-mask"])
@pytest.mark.parametrize("ignore_blank", [False, True])
def test_prepare_writes_label_maps_for_both_formats(tmp_path, fmt, ignore_blank):
    make_workspace(str(tmp_path), "seg", "train", num_train=6, num_val=2)
    truth = CocoSegReader(str(tmp_path / "in/annotations/coco-annotations.json"), ["disc", "square"])
    expected = {Path(l.split("\t")[0]).stem: truth.mask(str(tmp_path / l.split("\t")[0].lstrip("/")))
                for l in (tmp_path / "in/train-index.tsv").read_text().splitlines()}
    if fmt == "seg-mask":
        _to_seg_mask(tmp_path)
    env = load_env(str(tmp_path / "in/env.yaml"), PathMap(str(tmp_path / "in"), str(tmp_path / "out")))
    data = prepare(env, ["disc", "square"], ignore_blank, str(tmp_path / "out/cache"))
    labels: LabelSpace = data["labels"]
    assert labels.with_background is (not ignore_blank)
    items = json.loads(Path(data["train_list"]).read_text())
    assert len(items) == 6 and data["num_val"] == 2
    for it in items:
        got = np.array(Image.open(it["seg_map_path"]))
        want = expected[Path(it["img_path"]).stem]
        assert (got == labels.to_model(want)).all()
        assert (labels.to_ymir(got) == want).all()
    # the training pixels per model class, counted over the label maps (the same on a cached rerun)
    counts = np.zeros(len(labels.model_classes), np.int64)
    for it in items:
        got = np.array(Image.open(it["seg_map_path"]))
        counts += np.bincount(got[got < len(counts)].ravel(), minlength=len(counts))
    assert data["train_pixels"] == counts.tolist() and min(counts) > 0
    again = prepare(env, ["disc", "square"], ignore_blank, str(tmp_path / "out/cache"))
    assert again["train_pixels"] == data["train_pixels"]


def test_a_detection_annotation_is_refused_for_segmentation(tmp_path):
    make_workspace(str(tmp_path), "det", "train", num_train=3, num_val=1)
    env = load_env(str(tmp_path / "in/env.yaml"), PathMap(str(tmp_path / "in"), str(tmp_path / "out")))
    with pytest.raises(YmirError) as e:
        prepare(env, ["box", "disc"], False, str(tmp_path / "out/cache"))
    assert e.value.code == ErrorCode.DATASET and "not a segmentation format" in str(e.value)


def test_class_weights_balance_a_rare_class_and_reach_every_loss():
    # background 97 %, two common classes, one rare: median frequency / frequency, clipped
    assert balanced_class_weight([1195000, 15000, 15000, 3000]) == [0.5, 1.0, 1.0, 5.0]
    assert balanced_class_weight([100, 0, 1]) == [0.505, 1.0, 10.0]  # absent: 1, never a target
    assert balanced_class_weight([0, 0]) == [1.0, 1.0]
    classes = ["ymir_background", "disc", "square"]
    assert class_weights("auto", [900, 50, 50], classes, "config.yaml") == [0.5, 1.0, 1.0]
    assert class_weights("none", [900, 50, 50], classes, "config.yaml") is None
    assert class_weights("0.2, 1, 3", [], classes, "config.yaml") == [0.2, 1.0, 3.0]
    for bad in ("1 2", "a b c", "1 -1 1"):
        with pytest.raises(YmirError) as e:
            class_weights(bad, [], classes, "/in/config.yaml")
        assert e.value.code == ErrorCode.CONFIG and "class_weight" in str(e.value) and "ymir_background" in str(e.value)
    model = dict(decode_head=dict(loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False)),
                 auxiliary_head=[dict(loss_decode=dict(type="CrossEntropyLoss")),
                                 dict(loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=True))])
    assert set_class_weight(model, [0.5, 1.0, 2.0]) == 2
    assert model["decode_head"]["loss_decode"] == dict(type="YmirCrossEntropyLoss", use_sigmoid=False,
                                                      class_weight=[0.5, 1.0, 2.0])
    assert "class_weight" not in model["auxiliary_head"][1]["loss_decode"]  # a sigmoid loss is left alone


def test_weighted_loss_ignores_255_and_is_pytorchs_weighted_mean():
    # mmseg's weighted mean looks up a weight for every label, 255 too, and raises IndexError
    import torch
    import torch.nn.functional as F

    from ymir_tasks.seg.mm import YmirCrossEntropyLoss

    torch.manual_seed(0)
    logits, label = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    label[0, :3] = 255  # padding / ignore_blank_area
    weights = [0.5, 1.0, 10.0]
    loss = YmirCrossEntropyLoss(class_weight=weights, avg_non_ignore=True)(logits, label, ignore_index=255)
    expected = F.cross_entropy(logits, label, weight=torch.tensor(weights), ignore_index=255)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert YmirCrossEntropyLoss(class_weight=weights)(logits, torch.full_like(label, 255), ignore_index=255).item() == 0
