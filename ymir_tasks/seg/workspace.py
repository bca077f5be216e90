"""The segmentation sample workspace (``make-workspace --kind seg``): discs and squares on a textured
background, the rest unlabelled (255); one ``coco-annotations.json`` with RLE masks.
The scenes are learnable: each class has its own shape and colour family."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from executor.registry import TaskKind

from ..common.scenes2d import COLOURS, Sample, background, encode, place, shape_mask
from ..common.workspace2d import make_2d_workspace

SEG_CLASSES = ["disc", "square"]


def make_seg_sample(rng: np.random.RandomState, width: int = 128, height: int = 96,
                    max_objects: int = 3, fmt: str = "png") -> Sample:
    img = background(rng, height, width)
    label = np.full((height, width), 255, dtype=np.uint8)
    taken: List[Tuple[int, int, int, int]] = []
    instances = []
    for _ in range(rng.randint(1, max_objects + 1)):
        box = place(rng, height, width, taken, 20, 48)
        if box is None:
            continue
        cls = int(rng.randint(0, len(SEG_CLASSES)))
        m = shape_mask(cls, box, height, width, round_class=0)
        colour = np.array(COLOURS[1 - cls]) + rng.randint(-25, 26, size=3)
        img[m] = colour
        label[m] = cls
        taken.append(box)
        instances.append((cls, m))
    data, ext = encode(img, fmt)
    return Sample(data, ext, width, height, mask=label, instances=instances)


def make_workspace(directory: str, kind: TaskKind, task: str, **counts: Any) -> Dict[str, Any]:
    return make_2d_workspace(directory, kind, task, classes=SEG_CLASSES, profile_classes="seg_classes", make=make_seg_sample,
                             formats=("png", "jpg"), output="mask", size=(128, 96), annotation="coco", **counts)


def demo_summary(train_ws: Path, mine_ws: Path) -> Dict[str, str]:
    """The demo's extra figure: IoU of the inferred masks against the hidden ground truth."""
    import yaml

    from .evaluation import mask_iou

    classes = yaml.safe_load((train_ws / "in" / "config.yaml").read_text())["class_names"]
    miou, _ = mask_iou(str(mine_ws / "out" / "infer-result.json"),
                       str(mine_ws / "ground-truth" / "annotations" / "coco-annotations.json"), classes)
    return {"infer IoU vs ground truth": f"{miou:.3f}"}
