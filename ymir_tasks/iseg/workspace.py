"""The instance-segmentation sample workspace (``make-workspace --kind iseg``): discs and boxes on a
textured background, several instances of a class per image, some images empty; one
``coco-annotations.json`` as the platform exports ``seg-coco:raw``: RLE and polygon masks, now and
then an ``iscrowd`` region. The scenes are learnable: each class has its own shape and colour family."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from executor.registry import TaskKind

from ..common.scenes2d import COLOURS, Sample, background, encode, place, shape_mask
from ..common.workspace2d import make_2d_workspace

ISEG_CLASSES = ["disc", "box"]
POLYGON_EVERY, CROWD_EVERY = 3, 17  # every 3rd mask as a polygon, every 17th a crowd region


def make_iseg_sample(rng: np.random.RandomState, width: int = 160, height: int = 120,
                     max_objects: int = 5, fmt: str = "jpg") -> Sample:
    img = background(rng, height, width)
    label = np.full((height, width), 255, dtype=np.uint8)
    taken: List[Tuple[int, int, int, int]] = []
    instances = []
    for _ in range(rng.randint(0, max_objects + 1)):
        box = place(rng, height, width, taken, 20, 46)
        if box is None:
            continue
        cls = int(rng.randint(0, len(ISEG_CLASSES)))
        m = shape_mask(cls, box, height, width, round_class=0)
        img[m] = np.array(COLOURS[cls]) + rng.randint(-25, 26, size=3)
        label[m] = cls
        taken.append(box)
        instances.append((cls, m))
    data, ext = encode(img, fmt)
    return Sample(data, ext, width, height, mask=label, instances=instances)


def _polygon(rle: Dict[str, Any]) -> List[List[float]]:
    """The outline of a mask as one polygon (pixel corners, so it paints the same pixels)."""
    import cv2
    from pycocotools import mask as mask_utils

    m = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
    big = cv2.resize(m, (m.shape[1] * 2, m.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
    return [[round(float(v), 1) for v in ((c + 0.5) / 2.0).reshape(-1)]]


def _vary(path: Path) -> None:
    doc = json.loads(path.read_text())
    for k, a in enumerate(doc["annotations"]):
        if k % CROWD_EVERY == CROWD_EVERY - 1:
            a["iscrowd"] = 1
        elif k % POLYGON_EVERY == POLYGON_EVERY - 1:
            a["segmentation"] = _polygon(a["segmentation"])
    path.write_text(json.dumps(doc))


def make_workspace(directory: str, kind: TaskKind, task: str, **counts: Any) -> Dict[str, Any]:
    summary = make_2d_workspace(directory, kind, task, classes=ISEG_CLASSES, profile_classes="seg_classes",
                                make=make_iseg_sample, formats=("jpg", "png"), output="mask", size=(160, 120),
                                annotation="coco", **counts)
    for path in Path(directory).glob("*/annotations/coco-annotations.json"):
        _vary(path)
    return summary
