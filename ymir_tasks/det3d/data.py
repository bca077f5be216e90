"""Index files + point-cloud labels → mmdet3d v2 info pkls (``/out/det3d-cache``), and the class
statistics the anchors are built from (mean size and bottom height per class)."""
from __future__ import annotations

import os
import pickle
from typing import Any, Dict, List, Sequence

import numpy as np

from executor.env import Env
from executor.errors import dataset_error
from executor.index import read_index
from executor.pointcloud import POINT_DIM, Boxes3D, load_points, read_boxes3d


def build_infos(index_file: str, class_names: Sequence[str], env: Env, out_pkl: str) -> Dict[str, Any]:
    """Write the info pkl of one split; return its counts and per-class box statistics."""
    entries = read_index(index_file, path_map=env.path_map)
    if not entries:
        raise dataset_error("index file lists no frame", file=index_file)
    data_list: List[Dict[str, Any]] = []
    per_class: List[List[np.ndarray]] = [[] for _ in class_names]
    for i, e in enumerate(entries):
        # the whole scan read once, as inference reads it: an empty, cut or NaN scan fails here (300003)
        load_points(e.image)
        boxes = read_boxes3d(e.annotation, class_names)
        for b, l in zip(boxes.boxes, boxes.labels):
            per_class[int(l)].append(b)
        data_list.append({"sample_idx": i, "lidar_points": {"lidar_path": e.image, "num_pts_feats": POINT_DIM},
                          "instances": [{"bbox_3d": [float(v) for v in b], "bbox_label_3d": int(l)}
                                        for b, l in zip(boxes.boxes, boxes.labels)]})
    doc = {"metainfo": {"categories": {n: i for i, n in enumerate(class_names)}, "dataset": "ymir_det3d",
                        "info_version": "1.1"}, "data_list": data_list}
    os.makedirs(os.path.dirname(out_pkl), exist_ok=True)
    with open(out_pkl + ".tmp", "wb") as f:
        pickle.dump(doc, f)
    os.replace(out_pkl + ".tmp", out_pkl)
    stats = []
    for c in range(len(class_names)):
        arr = np.asarray(per_class[c]).reshape(-1, 7)
        stats.append({"count": len(arr),
                      "size": [round(float(v), 3) for v in arr[:, 3:6].mean(0)] if len(arr) else None,
                      "z": round(float(arr[:, 2].mean()), 3) if len(arr) else None})
    return {"pkl": out_pkl, "frames": len(entries), "objects": sum(s["count"] for s in stats), "classes": stats}


def load_gt(pkl: str) -> Dict[int, Boxes3D]:
    with open(pkl, "rb") as f:
        doc = pickle.load(f)
    out = {}
    for info in doc["data_list"]:
        inst = info["instances"]
        out[int(info["sample_idx"])] = Boxes3D(np.asarray([i["bbox_3d"] for i in inst], dtype=np.float64).reshape(-1, 7),
                                               np.asarray([i["bbox_label_3d"] for i in inst], dtype=np.int64),
                                               -np.ones(len(inst)))
    return out


def prepare(env: Env, class_names: Sequence[str], cache: str) -> Dict[str, Any]:
    train = build_infos(env.input.training_index_file, class_names, env, os.path.join(cache, "train.pkl"))
    if not env.input.val_index_file:
        raise dataset_error("no validation index: env.yaml input.val_index_file is empty", field="val_index_file")
    val = build_infos(env.input.val_index_file, class_names, env, os.path.join(cache, "val.pkl"))
    if train["objects"] == 0:
        raise dataset_error("the training frames hold no labelled box", file=env.input.training_index_file)
    return {"train": train, "val": val}
