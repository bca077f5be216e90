"""``make-workspace --kind det3d``: synthetic LiDAR scenes (:mod:`ymir_tasks.det3d.scenes`) in the
platform layout: scans ``/in/assets/<xx>/<sha1>.bin``, labels ``/in/annotations/<xx>/<sha1>.txt``.

* ``train``: ``train-index.tsv`` / ``val-index.tsv`` with full labels, plus the SS3D sparse copy
  (one labelled instance per frame) in ``annotations-sparse/`` and ``train-index-sparse.tsv``,
  for training on sparse labels.
* ``mine``: ``candidate-index.tsv`` lines are ``scan<TAB>sparse labels`` (the 3D extension of
  the contract: known objects are not mined again); the full labels are in
  ``annotations-full/`` with ``full-index.tsv``, named by config ``eval_index_file`` so the
  mining report can score the instance bank against them.
* ``infer``: ``candidate-index.tsv`` with scans only; full labels in ``ground-truth/`` beside ``in/``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from executor.pointcloud import Boxes3D, format_boxes3d
from executor.registry import TaskKind
from executor.workspace import fresh_layout, write_env_config

from .scenes import CLASSES, Scene, class_counts, make_scenes


def _write_scene_files(in_dir: Path, scene: Scene) -> str:
    """Write the scan; return its sha1."""
    import io

    buf = io.BytesIO()
    buf.write(scene.points.astype("float32").tobytes())
    data = buf.getvalue()
    sha = hashlib.sha1(data).hexdigest()
    sub = in_dir / "assets" / sha[-2:]
    sub.mkdir(parents=True, exist_ok=True)
    (sub / f"{sha}.bin").write_bytes(data)
    return sha


def _write_labels(root: Path, folder: str, sha: str, boxes: Boxes3D) -> str:
    sub = root / folder / sha[-2:]
    sub.mkdir(parents=True, exist_ok=True)
    (sub / f"{sha}.txt").write_text(format_boxes3d(boxes, CLASSES))
    return f"{folder}/{sha[-2:]}/{sha}.txt"


def _summary(scenes: List[Scene]) -> Dict[str, Any]:
    full = [sum(x) for x in zip(*[class_counts(s.full) for s in scenes])] if scenes else [0, 0, 0]
    sparse = [sum(x) for x in zip(*[class_counts(s.sparse) for s in scenes])] if scenes else [0, 0, 0]
    return {"images": len(scenes), "frames": len(scenes), "objects": sum(full), "objects_per_class": full, "annotated_sparse": sum(sparse),
            "points_per_frame": int(sum(len(s.points) for s in scenes) / max(len(scenes), 1)),
            "images_per_class": [sum(1 for s in scenes if class_counts(s.full)[c]) for c in range(3)]}


def make_workspace(directory: str, kind: TaskKind, task: str, *, seed: int = 0, num_train: int = 48,
                   num_val: int = 16, num_candidates: int = 24, protocol: str = "1.1.0",
                   overrides: Optional[Dict[str, Any]] = None, profile: str = "default") -> Dict[str, Any]:
    bench = None
    if profile != "default":
        from ..common.benchmark import get_profile

        bench = get_profile(profile)
    root = Path(directory)
    in_dir, _, gt_dir = fresh_layout(root)
    summary: Dict[str, Any] = {"kind": kind.name, "task": task, "seed": seed, "class_names": CLASSES,
                               "profile": profile}
    if bench is not None:  # not the last class, as in the 2D profiles: simulate's table reads it here
        summary["rare_class"] = CLASSES[bench.det3d_rare]
    extra: Dict[str, Any] = {}

    def scenes_of(s: int, n: int) -> List[Scene]:
        if bench is None:
            return make_scenes(s, n)
        from .scenes import make_benchmark_scenes

        return make_benchmark_scenes(s, n, bench)

    if task == "train":
        splits = {"train": scenes_of(seed, num_train), "val": scenes_of(seed + 1000, num_val)}
        for name, scenes in splits.items():
            full_rows, sparse_rows = [], []
            for s in scenes:
                sha = _write_scene_files(in_dir, s)
                scan = f"/in/assets/{sha[-2:]}/{sha}.bin"
                full_rows.append(f"{scan}\t/in/{_write_labels(in_dir, 'annotations', sha, s.full)}\n")
                if name == "train":
                    sparse_rows.append(f"{scan}\t/in/{_write_labels(in_dir, 'annotations-sparse', sha, s.sparse)}\n")
            (in_dir / f"{name}-index.tsv").write_text("".join(full_rows))
            if sparse_rows:
                (in_dir / f"{name}-index-sparse.tsv").write_text("".join(sparse_rows))
            summary[name] = _summary(scenes)
    else:
        scenes = scenes_of(seed + 2000, num_candidates)
        cand_rows, full_rows, gt_rows = [], [], []
        for s in scenes:
            sha = _write_scene_files(in_dir, s)
            scan = f"/in/assets/{sha[-2:]}/{sha}.bin"
            if task == "mine":
                cand_rows.append(f"{scan}\t/in/{_write_labels(in_dir, 'annotations', sha, s.sparse)}\n")
                full_rows.append(f"{scan}\t/in/{_write_labels(in_dir, 'annotations-full', sha, s.full)}\n")
            else:
                cand_rows.append(f"{scan}\n")
            gt_rows.append(f"{scan}\t{_write_labels(gt_dir, 'annotations', sha, s.full)}\n")
        (in_dir / "candidate-index.tsv").write_text("".join(cand_rows))
        (gt_dir / "gt-index.tsv").write_text("".join(gt_rows))
        if task == "mine":
            (in_dir / "full-index.tsv").write_text("".join(full_rows))
            extra["eval_index_file"] = "/in/full-index.tsv"
        summary["candidates"] = _summary(scenes)
    write_env_config(in_dir, kind, task, CLASSES, protocol, overrides, extra)
    (root / "workspace-summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def read_back(env, pm, class_names: List[str]) -> Dict[str, int]:
    """The demo's check of a workspace: every scan and label file read with the contract readers."""
    from executor.index import iter_candidates, read_index
    from executor.pointcloud import load_points, read_boxes3d

    found = {"images": 0, "objects": 0}
    for index in (env.input.training_index_file, env.input.val_index_file):
        for entry in (read_index(index, path_map=pm) if index else []):
            load_points(entry.image)
            found["images"] += 1
            found["objects"] += len(read_boxes3d(entry.annotation, class_names))
    if env.input.candidate_index_file:
        for entry in iter_candidates(env.input.candidate_index_file, path_map=pm):
            load_points(entry.image)
            found["images"] += 1
    return found


def demo_summary(train_ws: Path, mine_ws: Path) -> Dict[str, str]:
    """The demo's extra figure: the instance bank the mining round built."""
    report = json.loads((mine_ws / "out" / "bank" / "mining-report.json").read_text())
    allrow = [r for r in report.get("bank", []) if r["class"] == "all"]
    if not allrow:
        return {}
    return {"bank": f"{allrow[0]['pseudo']} pseudo labels, recall@0.5 {allrow[0]['recall@0.5']:.2f}, "
                    f"precision@0.5 {allrow[0]['precision@0.5']:.2f}"}
