"""Synthetic LiDAR scenes for the ``det3d`` sample workspace and tests (3d-mining.md §4).

A sensor at the origin over a ground plane at z = -1.73 (KITTI's height); 4-10 objects per
frame (Car 65 %, Pedestrian 20 %, Cyclist 15 %, KITTI mean sizes ±10 %, any yaw); object points
on the faces that look at the sensor with a count ∝ area / range², so far objects are
genuinely sparse; ground points whose density falls with range; 2-5 clutter blobs as hard
negatives. Each frame has full labels and a sparse copy with one random instance (the SS3D
split). Deterministic for a seed; numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from executor.pointcloud import Boxes3D

CLASSES = ["Car", "Pedestrian", "Cyclist"]
CLASS_PROBS = [0.65, 0.20, 0.15]
MEAN_SIZES = {0: (3.9, 1.6, 1.56), 1: (0.8, 0.6, 1.73), 2: (1.76, 0.6, 1.73)}  # dx (length), dy, dz
GROUND_Z = -1.73
# Detector range whose pillar grid is a multiple of 8 at 0.32 m and 0.16 m (3d-mining.md §4).
POINT_CLOUD_RANGE = (0.0, -20.48, -3.0, 40.96, 20.48, 1.0)


@dataclass
class Scene:
    points: np.ndarray  # (N, 4) float32
    full: Boxes3D
    sparse: Boxes3D


def rotation_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s], [s, c]])


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, M) bool: point n lies in bottom-centred box m (the box frame rotated by yaw about z)."""
    points = np.asarray(points, dtype=np.float64)[:, :3]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if not len(points) or not len(boxes):
        return np.zeros((len(points), len(boxes)), dtype=bool)
    d = points[:, None, :] - boxes[None, :, :3]  # (N, M, 3)
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    lx = d[..., 0] * c + d[..., 1] * s  # rotate by -yaw into the box frame
    ly = -d[..., 0] * s + d[..., 1] * c
    return ((np.abs(lx) <= boxes[:, 3] / 2) & (np.abs(ly) <= boxes[:, 4] / 2)
            & (d[..., 2] >= 0) & (d[..., 2] <= boxes[:, 5]))


def _faces(box: np.ndarray) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(centre, normal, u axis, v axis) of the four sides and the top, axes scaled to half-extents."""
    x, y, z, dx, dy, dz, yaw = box
    r = rotation_z(yaw)
    ex = np.array([*r[:, 0], 0.0])
    ey = np.array([*r[:, 1], 0.0])
    ez = np.array([0.0, 0.0, 1.0])
    centre = np.array([x, y, z + dz / 2])
    faces = []
    for sign in (1, -1):
        faces.append((centre + sign * ex * dx / 2, sign * ex, ey * dy / 2, ez * dz / 2))
        faces.append((centre + sign * ey * dy / 2, sign * ey, ex * dx / 2, ez * dz / 2))
    faces.append((centre + ez * dz / 2, ez, ex * dx / 2, ey * dy / 2))
    return faces


def object_points(rng: np.random.RandomState, box: np.ndarray, density: float = 1500.0) -> np.ndarray:
    """Points on the faces that look at the sensor (the origin) and on the top face."""
    out = []
    for centre, normal, u, v in _faces(box):
        to_sensor = -centre
        if normal[2] == 0 and normal @ to_sensor <= 0:
            continue  # a side facing away is occluded
        area = 4 * np.linalg.norm(u) * np.linalg.norm(v)
        rng2 = float(centre @ centre)
        n = int(np.clip(density * area / max(rng2, 1.0), 0, 400))
        if n == 0:
            continue
        a, b = rng.uniform(-0.97, 0.97, size=(2, n))
        # 3 cm inside the surface, so the 2 cm range noise leaves the returns in their box.
        out.append(centre - 0.03 * normal + a[:, None] * u + b[:, None] * v)
    if not out:
        return np.zeros((0, 3))
    pts = np.concatenate(out)
    if len(pts) < 3:  # keep every object visible, as the recipe clips at 3 points
        pts = np.concatenate([pts, box[None, :3] + np.array([0, 0, box[5] / 2]) + rng.normal(0, 0.05, (3, 3))])
    if len(pts) > 600:
        pts = pts[rng.choice(len(pts), 600, replace=False)]
    return pts + rng.normal(0, 0.02, size=pts.shape)


def _place_objects(rng: np.random.RandomState, n: int, probs: Sequence[float] = CLASS_PROBS,
                   x_range: Tuple[float, float] = (4, 38), first: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    boxes, labels = [], []
    for i in range(n):
        for _try in range(60):
            cls = first if (i == 0 and first is not None) else int(rng.choice(3, p=probs))
            size = np.array(MEAN_SIZES[cls]) * rng.uniform(0.9, 1.1, size=3)
            x, y = rng.uniform(*x_range), rng.uniform(-18, 18)
            radius = np.hypot(size[0], size[1]) / 2
            ok = all(np.hypot(x - b[0], y - b[1]) > radius + np.hypot(b[3], b[4]) / 2 + 0.3 for b in boxes)
            if ok:
                boxes.append([x, y, GROUND_Z, size[0], size[1], size[2], rng.uniform(-np.pi, np.pi)])
                labels.append(cls)
                break
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 7), np.asarray(labels, dtype=np.int64)


def make_scene(rng: np.random.RandomState, n_ground: int = 6000, role: str = "normal",
               rare: Optional[int] = None) -> Scene:
    """One frame; ``role`` (benchmark profiles): ``normal``, ``rare`` (one object of class ``rare``,
    which normal frames never hold), ``hard`` (few objects, far away: few points), ``empty``."""
    if role == "normal" and rare is None:
        boxes, labels = _place_objects(rng, int(rng.randint(4, 11)))
    elif role == "empty":
        boxes, labels = np.zeros((0, 7)), np.zeros(0, dtype=np.int64)
    else:
        probs = [0.0 if c == rare else p for c, p in enumerate(CLASS_PROBS)]
        probs = [p / sum(probs) for p in probs]
        n, x_range = (int(rng.randint(1, 4)), (26, 39)) if role == "hard" else (int(rng.randint(3, 8)), (4, 38))
        boxes, labels = _place_objects(rng, n, probs, x_range, first=rare if role == "rare" else None)
    parts = [object_points(rng, b) for b in boxes]
    # Ground: density falls with range (r drawn towards the sensor), inside the detector's range.
    r = 2.0 + 40.0 * rng.uniform(0, 1, n_ground) ** 1.6
    phi = rng.uniform(-np.pi / 2, np.pi / 2, n_ground)
    ground = np.stack([r * np.cos(phi), r * np.sin(phi), GROUND_Z + rng.normal(0, 0.02, n_ground)], 1)
    ground = ground[(ground[:, 0] < 40.0) & (np.abs(ground[:, 1]) < 20.0)]
    if len(boxes):
        footprint = boxes.copy()
        footprint[:, 2] -= 0.5
        footprint[:, 5] += 1.0
        ground = ground[~points_in_boxes(ground, footprint).any(1)]
    clutter = []
    for _ in range(rng.randint(2, 6)):
        for _try in range(30):
            c = np.array([rng.uniform(3, 39), rng.uniform(-19, 19)])
            if all(np.hypot(*(c - b[:2])) > np.hypot(b[3], b[4]) / 2 + 1.0 for b in boxes):
                h = rng.uniform(0, 2)
                blob = np.stack([rng.normal(c[0], 0.3, 40), rng.normal(c[1], 0.3, 40),
                                 GROUND_Z + rng.uniform(0, max(h, 0.1), 40)], 1)
                clutter.append(blob)
                break
    xyz = np.concatenate([ground] + parts + clutter)
    pts = np.concatenate([xyz, rng.uniform(0.2, 0.9, size=(len(xyz), 1))], 1).astype(np.float32)
    pts = pts[rng.permutation(len(pts))]
    full = Boxes3D(boxes, labels, -np.ones(len(boxes)))
    keep = np.zeros(len(boxes), dtype=bool)
    if len(boxes):
        keep[rng.randint(len(boxes))] = True
    return Scene(pts, full, full.select(keep))


def make_scenes(seed: int, n: int) -> List[Scene]:
    rng = np.random.RandomState(seed)
    return [make_scene(rng) for _ in range(n)]


def make_benchmark_scenes(seed: int, n: int, profile) -> List[Scene]:
    """Frames of a benchmark profile (:mod:`ymir_tasks.common.benchmark`): a rare class, near-duplicate
    frames (the same objects, the points jittered and thinned), hard far objects, empty frames."""
    from ..common.benchmark import benchmark_scene_plan

    rng = np.random.RandomState(seed)
    roles = benchmark_scene_plan(rng, n, profile)
    scenes: List[Scene] = []
    for role in roles:
        if role.startswith("dup:"):
            src = scenes[int(role[4:])] if int(role[4:]) < len(scenes) else None
            if src is not None:
                pts = src.points[rng.rand(len(src.points)) > 0.1].copy()
                pts[:, :3] += rng.normal(0, 0.02, size=(len(pts), 3)).astype(np.float32)
                scenes.append(Scene(pts, src.full, src.sparse))
                continue
            role = "normal"
        scenes.append(make_scene(rng, role=role, rare=profile.det3d_rare))
    return scenes


def class_counts(boxes: Optional[Boxes3D], n_classes: int = 3) -> List[int]:
    if boxes is None:
        return [0] * n_classes
    return [int((boxes.labels == c).sum()) for c in range(n_classes)]
