"""``ymir-executor make-workspace``: deterministic synthetic datasets in the real
platform layout (sha1 file names in two-character sub-folders, index files with
absolute ``/in/...`` paths, ark txt for detection, ``coco-annotations.json`` with
RLE for segmentation, env.yaml and config.yaml from the schema's defaults).

The scenes are small enough for CPU tests and learnable: each class has its own
shape and colour family on a textured background. Ground truth of the
candidates is kept beside ``in/`` (in ``ground-truth/``), never inside it.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from .env import Env, InputPaths, OutputPaths, env_to_dict
from .registry import TaskKind, get_kind

TASKS = {"train": "training", "infer": "infer", "mine": "mining"}
DET_CLASSES = ["box", "disc"]
SEG_CLASSES = ["disc", "square"]


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


def _background(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    base = rng.randint(90, 160)
    img = np.full((h, w, 3), base, dtype=np.int16)
    img += rng.randint(-18, 19, size=(h, w, 1)).astype(np.int16)  # grey texture
    img += rng.randint(-6, 7, size=(1, 1, 3)).astype(np.int16)
    return img


def _encode(img: np.ndarray, fmt: str) -> Tuple[bytes, str]:
    from PIL import Image

    buf = io.BytesIO()
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if fmt == "jpg":
        pil.save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        pil.save(buf, format="PNG", optimize=False)
    return buf.getvalue(), fmt


def _place(rng: np.random.RandomState, h: int, w: int, taken: List[Tuple[int, int, int, int]],
           lo: int, hi: int) -> Optional[Tuple[int, int, int, int]]:
    for _ in range(50):
        bw, bh = rng.randint(lo, hi + 1), rng.randint(lo, hi + 1)
        x1, y1 = rng.randint(0, w - bw + 1), rng.randint(0, h - bh + 1)
        box = (x1, y1, x1 + bw, y1 + bh)
        if all(box[2] + 2 <= t[0] or t[2] + 2 <= box[0] or box[3] + 2 <= t[1] or t[3] + 2 <= box[1]
               for t in taken):
            return box
    return None


def _shape_mask(cls: int, box: Tuple[int, int, int, int], h: int, w: int, round_class: int) -> np.ndarray:
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


_COLOURS = {0: (200, 40, 40), 1: (40, 60, 210)}


def make_det_sample(rng: np.random.RandomState, width: int = 160, height: int = 120,
                    max_objects: int = 4, fmt: str = "jpg") -> Sample:
    img = _background(rng, height, width)
    n = rng.randint(0, max_objects + 1)
    taken: List[Tuple[int, int, int, int]] = []
    boxes = []
    for _ in range(n):
        box = _place(rng, height, width, taken, 18, 44)
        if box is None:
            continue
        cls = int(rng.randint(0, len(DET_CLASSES)))
        m = _shape_mask(cls, box, height, width, round_class=1)
        colour = np.array(_COLOURS[cls]) + rng.randint(-25, 26, size=3)
        img[m] = colour
        taken.append(box)
        # A box is the tight extent of the painted pixels.
        ys, xs = np.nonzero(m)
        boxes.append((cls, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    data, ext = _encode(img, fmt)
    return Sample(data, ext, width, height, boxes=boxes)


def make_seg_sample(rng: np.random.RandomState, width: int = 128, height: int = 96,
                    max_objects: int = 3, fmt: str = "png") -> Sample:
    img = _background(rng, height, width)
    label = np.full((height, width), 255, dtype=np.uint8)
    taken: List[Tuple[int, int, int, int]] = []
    instances = []
    for _ in range(rng.randint(1, max_objects + 1)):
        box = _place(rng, height, width, taken, 20, 48)
        if box is None:
            continue
        cls = int(rng.randint(0, len(SEG_CLASSES)))
        m = _shape_mask(cls, box, height, width, round_class=0)
        colour = np.array(_COLOURS[1 - cls]) + rng.randint(-25, 26, size=3)
        img[m] = colour
        label[m] = cls
        taken.append(box)
        instances.append((cls, m))
    data, ext = _encode(img, fmt)
    return Sample(data, ext, width, height, mask=label, instances=instances)


def _write_asset(root: Path, sample: Sample) -> str:
    sub = root / "assets" / sample.sha1[-2:]
    sub.mkdir(parents=True, exist_ok=True)
    (sub / sample.name).write_bytes(sample.image_bytes)
    return f"/in/assets/{sample.sha1[-2:]}/{sample.name}"


def _write_ark(root: Path, sample: Sample) -> str:
    sub = root / "annotations" / sample.sha1[-2:]
    sub.mkdir(parents=True, exist_ok=True)
    # ark coordinates are inclusive: xmax = x + w - 1.
    lines = [f"{c}, {x1}, {y1}, {x2 - 1}, {y2 - 1}, -1.0, 0.0" for c, x1, y1, x2, y2 in sample.boxes]
    (sub / f"{sample.sha1}.txt").write_text("".join(line + "\n" for line in lines))
    return f"/in/annotations/{sample.sha1[-2:]}/{sample.sha1}.txt"


def _coco_document(samples: Sequence[Sample], class_names: Sequence[str]) -> Dict[str, Any]:
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


def make_workspace(directory: str, kind_name: str, task: str, *, seed: int = 0, num_train: int = 48,
                   num_val: int = 16, num_candidates: int = 24, protocol: str = "1.1.0",
                   overrides: Optional[Dict[str, Any]] = None, profile: str = "default") -> Dict[str, Any]:
    """Build ``<directory>/in`` (and an empty ``out``); return the counts generated. ``profile``:
    ``default`` (learnable scenes) or a benchmark profile of :mod:`executor.benchmark` (a rare
    class, near-duplicates, hard and empty images: a pool where selection matters)."""
    bench = None
    if profile != "default":
        from .benchmark import PROFILES
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; profiles: default, {', '.join(PROFILES)}")
        bench = PROFILES[profile]
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}")
    kind = get_kind(kind_name)
    if kind.name not in ("det", "seg", "det3d"):
        raise NotImplementedError(f"make-workspace --kind {kind.name} is not implemented yet")
    if kind.name == "det3d":
        from .workspace3d import make_det3d_workspace

        return make_det3d_workspace(directory, kind, task, seed=seed, num_train=num_train, num_val=num_val,
                                    num_candidates=num_candidates, protocol=protocol, overrides=overrides,
                                    profile=bench)
    root = Path(directory)
    in_dir, out_dir, gt_dir = root / "in", root / "out", root / "ground-truth"
    for d in (in_dir, out_dir, gt_dir):
        if d.exists():
            shutil.rmtree(d)
    in_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True)
    (in_dir / "models").mkdir()
    (in_dir / "annotations").mkdir()
    rng = np.random.RandomState(seed)
    make = make_det_sample if kind.name == "det" else make_seg_sample
    class_names = DET_CLASSES if kind.name == "det" else SEG_CLASSES
    if bench is not None:
        class_names = list(bench.det_classes if kind.name == "det" else bench.seg_classes)

    def batch(n: int) -> List[Sample]:
        if bench is not None:
            from .benchmark import benchmark_samples
            return benchmark_samples(kind.name, rng, n, bench, (160, 120) if kind.name == "det" else (128, 96))
        # Mix encodings so readers must decode by content (a few PNG among JPEG or the reverse).
        out = []
        for i in range(n):
            fmt = ("png" if i % 5 == 4 else "jpg") if kind.name == "det" else ("jpg" if i % 5 == 4 else "png")
            out.append(make(rng, fmt=fmt))
        return out

    summary: Dict[str, Any] = {"kind": kind.name, "task": task, "seed": seed, "class_names": class_names,
                               "profile": profile}
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
            image = _write_asset(in_dir, s)
            if kind.name == "det":
                ann = _write_ark(ann_root, s)
                if ann_root is gt_dir:  # relative to ground-truth/, outside the read-only /in
                    ann = ann[len("/in/"):]
            else:
                ann = "/in/annotations/coco-annotations.json" if ann_root is in_dir \
                    else "annotations/coco-annotations.json"
            rows.append((image, ann))
        summary[name] = _split_summary(samples, kind.name, len(class_names))
        if name == "candidates":
            (in_dir / "candidate-index.tsv").write_text("".join(f"{img}\n" for img, _ in rows))
            (gt_dir / "gt-index.tsv").write_text("".join(f"{img}\t{ann}\n" for img, ann in rows))
        else:
            (in_dir / f"{name}-index.tsv").write_text("".join(f"{img}\t{ann}\n" for img, ann in rows))
    if kind.name == "seg":
        all_samples = [s for ss in splits.values() for s in ss]
        (ann_root / "annotations").mkdir(parents=True, exist_ok=True)
        doc = _coco_document(all_samples, class_names)
        (ann_root / "annotations" / "coco-annotations.json").write_text(json.dumps(doc))

    _write_env_config(in_dir, kind, task, class_names, protocol, overrides)
    (root / "workspace-summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _write_env_config(in_dir: Path, kind: TaskKind, task: str, class_names: Sequence[str], protocol: str,
                      overrides: Optional[Dict[str, Any]], extra: Optional[Dict[str, Any]] = None) -> None:
    """env.yaml and config.yaml (the schema's defaults plus the platform's keys)."""
    task_name = TASKS[task]
    env = Env(protocol_version=protocol, task_id=f"t-demo-{kind.name}-{task}",
              run_training=task == "train", run_mining=task == "mine", run_infer=task in ("mine", "infer"),
              input=InputPaths(training_index_file="/in/train-index.tsv" if task == "train" else "",
                               val_index_file="/in/val-index.tsv" if task == "train" else "",
                               candidate_index_file="/in/candidate-index.tsv" if task != "train" else ""),
              output=OutputPaths())
    (in_dir / "env.yaml").write_text(yaml.safe_dump(env_to_dict(env), sort_keys=False))
    config: Dict[str, Any] = dict(kind.schemas[task_name].defaults())
    if task == "mine":
        config.update({k: v for k, v in kind.schemas["infer"].defaults().items() if k not in config})
    config.update({"task_id": env.task_id, "class_names": list(class_names), "gpu_id": "", "gpu_count": 0,
                   "object_type": kind.object_type})
    if task == "train":
        config["pretrained_model_params"] = []
    else:
        config.update({"model_params_path": [], "run_mining": env.run_mining, "run_infer": env.run_infer})
    config.update(extra or {})
    config.update(overrides or {})
    (in_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def _split_summary(samples: Sequence[Sample], kind: str, n_classes: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {"images": len(samples)}
    if kind == "det":
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
