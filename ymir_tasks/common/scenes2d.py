"""Synthetic 2D scenes for the sample workspaces of the 2D kinds (detection, segmentation):
shapes on a textured background, encoded as JPEG or PNG, and the writer that puts them in the
platform's layout (sha1 asset names in two-character folders, index files with absolute ``/in``
paths, ark txt boxes or one ``coco-annotations.json`` with RLE masks).

Ground truth of the candidates is kept beside ``in/`` (in ``ground-truth/``), never inside it.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from executor.registry import TaskKind
from executor.workspace import fresh_layout, write_env_config

ANNOTATIONS = ("ark", "coco")  # boxes, one txt per image | masks, one COCO document


@dataclass
class Sample:
    image_bytes: bytes
    ext: str
    width: int
    height: int
    boxes: List[Tuple[int, int, int, int, int]] = field(default_factory=list)  # cls, x1, y1, x2, y2 (excl.)
    mask: Optional[np.ndarray] = None  # HxW class ids, 255 = unlabelled (seg)
    instances: List[Tuple[int, np.ndarray]] = field(default_factory=list)  # (cls, binary mask) (seg)

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.image_bytes).hexdigest()

    @property
    def name(self) -> str:
        return f"{self.sha1}.{self.ext}"


def background(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    base = rng.randint(90, 160)
    img = np.full((h, w, 3), base, dtype=np.int16)
    img += rng.randint(-18, 19, size=(h, w, 1)).astype(np.int16)  # grey texture
    img += rng.randint(-6, 7, size=(1, 1, 3)).astype(np.int16)
    return img


def encode(img: np.ndarray, fmt: str) -> Tuple[bytes, str]:
    from PIL import Image

    buf = io.BytesIO()
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if fmt == "jpg":
        pil.save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        pil.save(buf, format="PNG", optimize=False)
    return buf.getvalue(), fmt


def place(rng: np.random.RandomState, h: int, w: int, taken: List[Tuple[int, int, int, int]],
           lo: int, hi: int) -> Optional[Tuple[int, int, int, int]]:
    for _ in range(50):
        bw, bh = rng.randint(lo, hi + 1), rng.randint(lo, hi + 1)
        x1, y1 = rng.randint(0, w - bw + 1), rng.randint(0, h - bh + 1)
        box = (x1, y1, x1 + bw, y1 + bh)
        if all(box[2] + 2 <= t[0] or t[2] + 2 <= box[0] or box[3] + 2 <= t[1] or t[3] + 2 <= box[1]
               for t in taken):
            return box
    return None


def shape_mask(cls: int, box: Tuple[int, int, int, int], h: int, w: int, round_class: int) -> np.ndarray:
    x1, y1, x2, y2 = box
    mask = np.zeros((h, w), dtype=bool)
    if cls == round_class:
        yy, xx = np.mgrid[0:h, 0:w]
        cx, cy = (x1 + x2 - 1) / 2.0, (y1 + y2 - 1) / 2.0
        rx, ry = (x2 - x1) / 2.0, (y2 - y1) / 2.0
        mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    else:
        mask[y1:y2, x1:x2] = True
    return mask


COLOURS = {0: (200, 40, 40), 1: (40, 60, 210)}


def write_asset(root: Path, sample: Sample) -> str:
    sub = root / "assets" / sample.sha1[-2:]
    sub.mkdir(parents=True, exist_ok=True)
    (sub / sample.name).write_bytes(sample.image_bytes)
    return f"/in/assets/{sample.sha1[-2:]}/{sample.name}"


def write_ark(root: Path, sample: Sample) -> str:
    sub = root / "annotations" / sample.sha1[-2:]
    sub.mkdir(parents=True, exist_ok=True)
    # ark coordinates are inclusive: xmax = x + w - 1.
    lines = [f"{c}, {x1}, {y1}, {x2 - 1}, {y2 - 1}, -1.0, 0.0" for c, x1, y1, x2, y2 in sample.boxes]
    (sub / f"{sample.sha1}.txt").write_text("".join(line + "\n" for line in lines))
    return f"/in/annotations/{sample.sha1[-2:]}/{sample.sha1}.txt"


def coco_document(samples: Sequence[Sample], class_names: Sequence[str]) -> Dict[str, Any]:
    from pycocotools import mask as mask_utils

    images, annotations, present = [], [], set()
    for image_id, s in enumerate(sorted(samples, key=lambda s: s.sha1), start=1):
        images.append({"id": image_id, "file_name": s.name, "width": s.width, "height": s.height,
                       "date_captured": "2026-01-01 00:00:00", "license": 1, "coco_url": "", "flickr_url": ""})
        for cls, m in s.instances:
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cls, "iscrowd": 0,
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "segmentation": {"counts": rle["counts"].decode("ascii"), "size": [s.height, s.width]},
                "area": int(mask_utils.area(rle)), "confidence": 1.0})
            present.add(cls)
    # Like the platform: only categories that occur are listed.
    categories = [{"id": c, "name": class_names[c], "supercategory": "object"} for c in sorted(present)]
    return {"images": images, "annotations": annotations, "categories": categories,
            "info": {"description": "ymir-executor synthetic workspace"}, "licenses": [{"id": 1}]}

def write_2d_workspace(directory: str, kind: TaskKind, task: str, class_names: Sequence[str],
                       batch: Callable[[int], List[Sample]], annotation: str, *, seed: int, num_train: int,
                       num_val: int, num_candidates: int, protocol: str, overrides: Optional[Dict[str, Any]],
                       profile: str) -> Dict[str, Any]:
    """Build ``<directory>/in`` from ``batch(n)`` samples; return the counts generated."""
    if annotation not in ANNOTATIONS:
        raise ValueError(f"annotation must be one of {ANNOTATIONS}")
    root = Path(directory)
    in_dir, _, gt_dir = fresh_layout(root)
    summary: Dict[str, Any] = {"kind": kind.name, "task": task, "seed": seed, "class_names": list(class_names),
                               "profile": profile}
    if profile != "default":  # a benchmark profile's rare class is its last (simulate's table reads it here)
        summary["rare_class"] = class_names[-1]
    if task == "train":
        splits = {"train": batch(num_train), "val": batch(num_val)}
        ann_root = in_dir
    else:
        splits = {"candidates": batch(num_candidates)}
        ann_root = gt_dir
        gt_dir.mkdir(parents=True)
    for name, samples in splits.items():
        rows = []
        for s in samples:
            image = write_asset(in_dir, s)
            if annotation == "ark":
                ann = write_ark(ann_root, s)
                if ann_root is gt_dir:  # relative to ground-truth/, outside the read-only /in
                    ann = ann[len("/in/"):]
            else:
                ann = "/in/annotations/coco-annotations.json" if ann_root is in_dir \
                    else "annotations/coco-annotations.json"
            rows.append((image, ann))
        summary[name] = split_summary(samples, annotation, len(class_names))
        if name == "candidates":
            (in_dir / "candidate-index.tsv").write_text("".join(f"{img}\n" for img, _ in rows))
            (gt_dir / "gt-index.tsv").write_text("".join(f"{img}\t{ann}\n" for img, ann in rows))
        else:
            (in_dir / f"{name}-index.tsv").write_text("".join(f"{img}\t{ann}\n" for img, ann in rows))
    if annotation == "coco":
        all_samples = [s for ss in splits.values() for s in ss]
        (ann_root / "annotations").mkdir(parents=True, exist_ok=True)
        doc = coco_document(all_samples, class_names)
        (ann_root / "annotations" / "coco-annotations.json").write_text(json.dumps(doc))
    write_env_config(in_dir, kind, task, class_names, protocol, overrides)
    (root / "workspace-summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def split_summary(samples: Sequence[Sample], annotation: str, n_classes: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {"images": len(samples)}
    if annotation == "ark":
        per_class = [0] * n_classes
        for s in samples:
            for b in s.boxes:
                per_class[b[0]] += 1
        out.update(objects=sum(per_class), objects_per_class=per_class,
                   negatives=sum(1 for s in samples if not s.boxes),
                   images_per_class=[sum(1 for s in samples if any(b[0] == c for b in s.boxes))
                                     for c in range(n_classes)])
    else:
        per_class = [0] * n_classes
        pixels = [0] * n_classes
        for s in samples:
            for cls, m in s.instances:
                per_class[cls] += 1
                pixels[cls] += int(m.sum())
        out.update(instances=sum(per_class), instances_per_class=per_class, pixels_per_class=pixels,
                   images_per_class=[sum(1 for s in samples if any(c2 == c for c2, _ in s.instances))
                                     for c in range(n_classes)],
                   unlabelled_pixels=int(sum(int((s.mask == 255).sum()) for s in samples)))
    return out
