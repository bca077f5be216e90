"""Benchmark profiles of the sample generator: pools where selection matters.

The default sample workspaces saturate after a few dozen images, so no miner can beat random on
them. A benchmark pool has what real pools have:

* a **rare class**, in at most ``rare_share`` of the images (a model that has not learnt it is
  confident where it is: pure uncertainty cannot find it);
* **near-duplicates**: clusters of almost identical frames (a video's consecutive frames), the
  same objects shifted by a pixel or two on fresh background noise;
* **hard images**: small, low-contrast and partly occluded objects;
* **empty images**: nothing to label.

``benchmark`` is the profile miners are tuned on; ``benchmark-b`` (other shapes for the rare
class, other shares) is the one a result is confirmed on without tuning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .scenes2d import Sample, background, encode, place


@dataclass(frozen=True)
class Profile:
    name: str
    det_classes: Tuple[str, ...]
    seg_classes: Tuple[str, ...]
    rare_share: float  # share of images holding the rare class (the last class)
    duplicate_share: float  # share of images that belong to a near-duplicate cluster
    cluster: Tuple[int, int]  # images per cluster, min and max
    hard_share: float
    empty_share: float
    det3d_rare: int = 2  # the rare 3D class (Cyclist)


PROFILES: Dict[str, Profile] = {
    "benchmark": Profile("benchmark", ("box", "disc", "triangle"), ("disc", "square", "triangle"), rare_share=0.04,
                         duplicate_share=0.3, cluster=(4, 8), hard_share=0.2, empty_share=0.15),
    "benchmark-b": Profile("benchmark-b", ("box", "disc", "cross"), ("disc", "square", "cross"), rare_share=0.05,
                           duplicate_share=0.25, cluster=(3, 10), hard_share=0.3, empty_share=0.1, det3d_rare=1),
}
# shape and colour per class index (the rare class is the last)
_SHAPES = {"box": "rect", "square": "rect", "disc": "ellipse", "triangle": "triangle", "ring": "ring",
           "cross": "cross"}
_HUES = [(200, 40, 40), (40, 60, 210), (40, 170, 60)]


def _shape(shape: str, box: Tuple[int, int, int, int], h: int, w: int) -> np.ndarray:
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = (x1 + x2 - 1) / 2.0, (y1 + y2 - 1) / 2.0
    rx, ry = max((x2 - x1) / 2.0, 1.0), max((y2 - y1) / 2.0, 1.0)
    inside = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
    e = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    if shape == "rect":
        return inside
    if shape == "ellipse":
        return e <= 1.0
    if shape == "ring":
        return (e <= 1.0) & (e >= 0.35)
    if shape == "triangle":  # apex at the top centre
        t = (yy - y1) / max(y2 - y1, 1)
        return inside & (np.abs(xx - cx) <= rx * t)
    if shape == "cross":
        return inside & ((np.abs(xx - cx) <= rx / 2.5) | (np.abs(yy - cy) <= ry / 2.5))
    raise ValueError(shape)


@dataclass
class _Object:
    cls: int
    box: Tuple[int, int, int, int]
    colour: np.ndarray


def _scene_objects(rng: np.random.RandomState, h: int, w: int, n_classes: int, role: str) -> List[_Object]:
    if role == "empty":
        return []
    common = n_classes - 1
    n = int(rng.randint(1, 4))
    lo, hi = (8, 14) if role == "hard" else (18, 44)
    taken: List[Tuple[int, int, int, int]] = []
    objs = []
    for i in range(n):
        box = place(rng, h, w, [] if role == "hard" else taken, lo, hi)  # hard: overlaps allowed
        if box is None:
            continue
        cls = common if (role == "rare" and i == 0) else int(rng.randint(0, common))
        base = np.array(_HUES[cls], dtype=np.int16)
        if role == "hard":  # low contrast: the class's hue, close to the grey background
            colour = 125 + (base - 125) // 4 + rng.randint(-8, 9, size=3)
        else:
            colour = base + rng.randint(-25, 26, size=3)
        taken.append(box)
        objs.append(_Object(cls, box, colour))
    return objs


def _render(output: str, rng: np.random.RandomState, objs: Sequence[_Object], classes: Sequence[str], h: int, w: int,
            shift: Tuple[int, int], fmt: str) -> Sample:
    img = background(rng, h, w)
    label = np.full((h, w), 255, dtype=np.uint8)
    boxes, instances = [], []
    dx, dy = shift
    for o in objs:
        x1, y1, x2, y2 = o.box
        box = (min(max(x1 + dx, 0), w - 2), min(max(y1 + dy, 0), h - 2), min(max(x2 + dx, 2), w), min(max(y2 + dy, 2), h))
        m = _shape(_SHAPES[classes[o.cls]], box, h, w)
        if not m.any():
            continue
        img[m] = o.colour
        label[m] = o.cls
        instances.append((o.cls, m))
    # Painted later, an object occludes the earlier ones: labels and boxes follow what is visible.
    for c, m in instances:
        visible = m & (label == c)
        if visible.any():
            ys, xs = np.nonzero(visible)
            boxes.append((c, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    instances = [(c, m & (label == c)) for c, m in instances if (m & (label == c)).any()]
    data, ext = encode(img, fmt)
    if output == "boxes":
        return Sample(data, ext, w, h, boxes=boxes)
    return Sample(data, ext, w, h, mask=label, instances=instances)


def _roles(rng: np.random.RandomState, n: int, profile: Profile) -> List[str]:
    roles = ["normal"] * n
    order = list(rng.permutation(n))
    n_rare = max(1, int(round(profile.rare_share * n)))
    n_empty = int(round(profile.empty_share * n))
    n_hard = int(round(profile.hard_share * n))
    for i in order[:n_rare]:
        roles[i] = "rare"
    for i in order[n_rare:n_rare + n_empty]:
        roles[i] = "empty"
    for i in order[n_rare + n_empty:n_rare + n_empty + n_hard]:
        roles[i] = "hard"
    return roles


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; profiles: default, {', '.join(PROFILES)}")
    return PROFILES[name]


def benchmark_samples(output: str, rng: np.random.RandomState, n: int, profile: Profile,
                      classes: Sequence[str], size: Tuple[int, int]) -> List[Sample]:
    """``n`` images with ``output`` 'boxes' (JPEG) or 'mask' (PNG, with instances): the profile's
    roles, near-duplicate clusters among the common ones (a rare image is never duplicated: it
    must stay rare)."""
    w, h = size
    fmt = "png" if output == "mask" else "jpg"
    roles = _roles(rng, n, profile)
    out: List[Optional[Sample]] = [None] * n
    free = [i for i in range(n) if roles[i] != "rare"]
    n_dup = int(round(profile.duplicate_share * n))
    rng.shuffle(free)
    pos = 0
    while n_dup > 1 and pos < len(free):
        size_c = min(int(rng.randint(profile.cluster[0], profile.cluster[1] + 1)), n_dup, len(free) - pos)
        members = free[pos:pos + size_c]
        pos += size_c
        n_dup -= size_c
        objs = _scene_objects(rng, h, w, len(classes), roles[members[0]])
        for j, i in enumerate(members):
            shift = (0, 0) if j == 0 else (int(rng.randint(-2, 3)), int(rng.randint(-2, 3)))
            out[i] = _render(output, rng, objs, classes, h, w, shift, fmt)
            roles[i] = f"dup:{members[0]}"
    for i in range(n):
        if out[i] is None:
            objs = _scene_objects(rng, h, w, len(classes), roles[i])
            out[i] = _render(output, rng, objs, classes, h, w, (0, 0), fmt)
    return [s for s in out if s is not None]


def benchmark_scene_plan(rng: np.random.RandomState, n: int, profile: Profile) -> List[str]:
    """Roles of ``n`` 3D frames, with near-duplicates as ``dup:<first frame>``."""
    roles = _roles(rng, n, profile)
    free = [i for i in range(n) if roles[i] != "rare"]
    rng.shuffle(free)
    n_dup, pos = int(round(profile.duplicate_share * n)), 0
    while n_dup > 1 and pos < len(free):
        size_c = min(int(rng.randint(profile.cluster[0], profile.cluster[1] + 1)), n_dup, len(free) - pos)
        members = sorted(free[pos:pos + size_c])  # generated in index order: the first comes first
        for i in members[1:]:
            roles[i] = f"dup:{members[0]}"
        pos += size_c
        n_dup -= size_c
    return roles
