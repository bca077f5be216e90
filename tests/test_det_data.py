"""Detection data preparation from ark, voc xml and coco json gives the same COCO lists."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from executor.annotations import read_ark
from executor.env import PathMap, load_env
from executor.images import image_size
from executor.workspace import make_workspace
from ymir_tasks.det.workspace import DET_CLASSES
from ymir_tasks.det.data import prepare


def _rewrite(ws: Path, fmt: str) -> None:
    """Turn the workspace's ark annotations into voc xml files or one coco json."""
    coco = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "disc"}, {"id": 3, "name": "box"}]}
    for index in ("train-index.tsv", "val-index.tsv"):
        rows = []
        for line in (ws / "in" / index).read_text().splitlines():
            image, ann = line.split("\t")
            objs = read_ark(str(ws / ann.lstrip("/")), DET_CLASSES)
            w, h = image_size(str(ws / image.lstrip("/")))
            if fmt == "voc":
                body = "".join(
                    f"<object><name>{DET_CLASSES[o.class_id]}</name><pose>unknown</pose><truncated>unknown</truncated>"
                    f"<difficult>0</difficult><bndbox><xmin>{int(o.x1)}</xmin><ymin>{int(o.y1)}</ymin>"
                    f"<xmax>{int(o.x2) - 1}</xmax><ymax>{int(o.y2) - 1}</ymax><rotate_angle>0</rotate_angle></bndbox>"
                    f"</object>" for o in objs)
                xml = ws / ann.lstrip("/").replace(".txt", ".xml")
                xml.write_text(f"<annotation><folder>f</folder><filename>{image}</filename><size><width>{w}</width>"
                               f"<height>{h}</height><depth>3</depth></size><segmented>0</segmented>{body}"
                               f"<extra>ignored</extra></annotation>")
                rows.append(f"{image}\t{ann.replace('.txt', '.xml')}")
            else:
                img_id = len(coco["images"]) + 1
                coco["images"].append({"id": img_id, "file_name": Path(image).name, "width": w, "height": h})
                for o in objs:
                    coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": img_id,
                                                "category_id": {0: 3, 1: 7}[o.class_id], "iscrowd": 0,
                                                "bbox": [o.x1, o.y1, o.w, o.h], "area": o.w * o.h})
                rows.append(f"{image}\t/in/annotations/coco-annotations.json")
        (ws / "in" / index).write_text("\n".join(rows) + "\n")
    if fmt == "coco":
        (ws / "in" / "annotations" / "coco-annotations.json").write_text(json.dumps(coco))


@pytest.mark.parametrize("fmt", ["voc", "coco"])
def test_voc_and_coco_give_the_ark_boxes(tmp_path, fmt):
    make_workspace(str(tmp_path / "ark"), "det", "train", num_train=8, num_val=3, seed=2)
    make_workspace(str(tmp_path / "other"), "det", "train", num_train=8, num_val=3, seed=2)
    _rewrite(tmp_path / "other", fmt)
    docs = {}
    for name in ("ark", "other"):
        ws = tmp_path / name
        env = load_env(str(ws / "in" / "env.yaml"), PathMap(str(ws / "in"), str(ws / "out")))
        data = prepare(env, DET_CLASSES, str(ws / "out" / "cache"))
        docs[name] = {split: json.loads(Path(data[f"{split}_json"]).read_text()) for split in ("train", "val")}
    for split in ("train", "val"):
        a, b = docs["ark"][split], docs["other"][split]
        assert [Path(i["file_name"]).name for i in a["images"]] == [Path(i["file_name"]).name for i in b["images"]]
        key = lambda d: sorted((x["image_id"], x["category_id"], *[round(v, 3) for v in x["bbox"]])
                               for x in d["annotations"])
        assert key(a) == key(b) and len(a["annotations"]) > 0
        assert [c["name"] for c in b["categories"]] == DET_CLASSES
