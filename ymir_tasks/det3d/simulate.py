"""A seeded simulated LiDAR detector for deterministic tests of the mining logic
(3d-mining.md §4): a true box is detected with probability 1 − exp(−points/15), with 0.15 m
centre, 4 % size and 0.05 rad yaw noise and a score ≈ that probability + N(0, 0.1); each view
adds 1-3 false positives. Augmented views are simulated *in the augmented frame* and mapped
back with :func:`~.geometry.invert_boxes`, so the inverse mapping is on the tested path."""
from __future__ import annotations

import hashlib
from typing import Dict, List, Sequence, Tuple

import numpy as np

from executor.pointcloud import Boxes3D
from .scenes import MEAN_SIZES

from .geometry import Aug, augment_boxes, count_points, invert_boxes


class SimulatedDetector:
    def __init__(self, truth: Dict[str, Boxes3D], seed: int = 0, centre_noise: float = 0.15,
                 size_noise: float = 0.04, yaw_noise: float = 0.05) -> None:
        self.truth = truth
        self.seed = seed
        self.centre_noise, self.size_noise, self.yaw_noise = centre_noise, size_noise, yaw_noise

    def _rng(self, key: str, view: int) -> np.random.RandomState:
        h = hashlib.sha256(f"{self.seed}:{key}:{view}".encode()).digest()
        return np.random.RandomState(int.from_bytes(h[:4], "big"))

    def _view(self, key: str, points: np.ndarray, view: int, aug: Aug = None) -> Boxes3D:
        rng = self._rng(key, view)
        gt = self.truth.get(key, Boxes3D())
        n_pts = count_points(points, gt.boxes)
        boxes = augment_boxes(gt.boxes, aug) if aug is not None else gt.boxes.copy()
        scale = aug.scale if aug is not None else 1.0
        p_det = 1.0 - np.exp(-n_pts / 15.0)
        hit = rng.uniform(size=len(gt)) < p_det
        out = boxes[hit].copy()
        k = len(out)
        out[:, :3] += rng.normal(0, self.centre_noise * scale, size=(k, 3)) * np.array([1, 1, 0.5])
        out[:, 3:6] *= 1 + rng.normal(0, self.size_noise, size=(k, 3))
        out[:, 6] += rng.normal(0, self.yaw_noise, size=k)
        scores = np.clip(p_det[hit] + rng.normal(0, 0.1, size=k), 0.0, 1.0)
        labels = gt.labels[hit]
        fps, fl, fs = [], [], []
        for _ in range(rng.randint(1, 4)):
            c = int(rng.randint(3)) if len(MEAN_SIZES) >= 3 else 0
            size = np.array(MEAN_SIZES[c]) * rng.uniform(0.9, 1.1, 3)
            fps.append([rng.uniform(4, 38) * scale, rng.uniform(-18, 18) * scale, -1.73 * scale,
                        *(size * scale), rng.uniform(-np.pi, np.pi)])
            fl.append(c)
            fs.append(rng.uniform(0.1, 0.7))
        boxes = np.concatenate([out, np.asarray(fps).reshape(-1, 7)])
        labels = np.concatenate([labels, np.asarray(fl, dtype=np.int64)])
        scores = np.concatenate([scores, np.asarray(fs)])
        if aug is not None:
            boxes = invert_boxes(boxes, aug)
        return Boxes3D(boxes, labels, scores)

    def predict_views(self, frames: Sequence[Tuple[str, np.ndarray, List[Aug]]]) -> List[List[Boxes3D]]:
        return [[self._view(key, pts, 0)] + [self._view(key, pts, v + 1, a) for v, a in enumerate(augs)]
                for key, pts, augs in frames]
