"""The detection sample workspace (``make-workspace --kind det``): boxes and discs on a textured
background, a few per image, some images empty; ark txt labels.
The scenes are learnable: each class has its own shape and colour family."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from executor.registry import TaskKind

from ..common.scenes2d import COLOURS, Sample, background, encode, place, shape_mask
from ..common.workspace2d import make_2d_workspace

DET_CLASSES = ["box", "disc"]


def make_det_sample(rng: np.random.RandomState, width: int = 160, height: int = 120,
                    max_objects: int = 4, fmt: str = "jpg") -> Sample:
    img = background(rng, height, width)
    n = rng.randint(0, max_objects + 1)
    taken: List[Tuple[int, int, int, int]] = []
    boxes = []
    for _ in range(n):
        box = place(rng, height, width, taken, 18, 44)
        if box is None:
            continue
        cls = int(rng.randint(0, len(DET_CLASSES)))
        m = shape_mask(cls, box, height, width, round_class=1)
        colour = np.array(COLOURS[cls]) + rng.randint(-25, 26, size=3)
        img[m] = colour
        taken.append(box)
        # A box is the tight extent of the painted pixels.
        ys, xs = np.nonzero(m)
        boxes.append((cls, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    data, ext = encode(img, fmt)
    return Sample(data, ext, width, height, boxes=boxes)


def make_workspace(directory: str, kind: TaskKind, task: str, **counts: Any) -> Dict[str, Any]:
    return make_2d_workspace(directory, kind, task, classes=DET_CLASSES, profile_classes="det_classes", make=make_det_sample,
                             formats=("jpg", "png"), output="boxes", size=(160, 120), annotation="ark", **counts)