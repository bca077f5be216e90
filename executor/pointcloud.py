"""The point-cloud side of the contract (task kind ``det3d``; YMIR has no 3D object type).

* **Scans**: ``.bin`` files of float32 N×4 (x, y, z, intensity) in the LiDAR frame, as KITTI's
  velodyne files. A file whose size is not a multiple of 16 bytes, or that holds NaN/inf
  coordinates, is error 300003 (the 3D analogue of an undecodable image).
* **Boxes**: text, one box per line ``x y z dx dy dz yaw class [score]``: bottom centre
  (x, y, z), sizes along the box's own x / y / z axes, yaw about z counter-clockwise from +x
  (mmdet3d's ``LiDARInstance3DBoxes`` with origin (0.5, 0.5, 0)); ``class`` is a name from
  ``class_names`` or its 0-based index; separators are spaces, tabs or commas; blank lines and
  ``#`` comments are skipped. Bad lines are error 300002 naming file, line and field.

numpy only, like the rest of :mod:`executor`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from .errors import dataset_error, image_error

POINT_DIM = 4
BOX_FIELDS = ("x", "y", "z", "dx", "dy", "dz", "yaw")


@dataclass
class Boxes3D:
    """Boxes of one frame: ``boxes`` (N, 7) float64, ``labels`` (N,) int, ``scores`` (N,) float
    (-1 for annotated boxes, as in mmdet3d's dbinfos)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,)))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep) -> "Boxes3D":
        return Boxes3D(self.boxes[keep], self.labels[keep], self.scores[keep])

    @staticmethod
    def concat(parts: Sequence["Boxes3D"]) -> "Boxes3D":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Boxes3D()
        return Boxes3D(np.concatenate([p.boxes for p in parts]), np.concatenate([p.labels for p in parts]),
                       np.concatenate([p.scores for p in parts]))


def check_scan_size(path: str) -> None:
    """300003 unless the file exists and holds whole float32 N×4 rows (cheap: no read)."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise image_error(f"cannot read point cloud: {e.strerror}", file=path) from None
    if size % (4 * POINT_DIM):
        raise image_error(f"not a float32 N×{POINT_DIM} point cloud: {size} bytes is not a multiple of "
                          f"{4 * POINT_DIM}", file=path)


def load_points(path: str) -> np.ndarray:
    """A scan as float32 (N, 4)."""
    check_scan_size(path)
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, POINT_DIM)
    if len(pts) == 0:
        raise image_error("point cloud holds no point (empty file)", file=path)
    if not np.isfinite(pts).all():
        raise image_error("point cloud holds NaN or infinite values", file=path)
    return pts


def save_points(path: str, points: np.ndarray) -> None:
    np.ascontiguousarray(points, dtype=np.float32).reshape(-1, POINT_DIM).tofile(path)


def parse_boxes3d(text: str, class_names: Sequence[str], *, file: str = "<labels>",
                  with_score: bool = False) -> Boxes3D:
    """Parse the box text format (see the module docstring)."""
    index = {n: i for i, n in enumerate(class_names)}
    boxes: List[List[float]] = []
    labels: List[int] = []
    scores: List[float] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (8, 9):
            raise dataset_error(f"expected 'x y z dx dy dz yaw class [score]', got {len(parts)} field(s): "
                                f"{raw.strip()[:100]!r}", file=file, line=lineno)
        values = []
        for name, tok in zip(BOX_FIELDS, parts[:7]):
            try:
                v = float(tok)
            except ValueError:
                raise dataset_error(f"{name} is not a number: {tok!r}", file=file, line=lineno, field=name) from None
            if not np.isfinite(v):
                raise dataset_error(f"{name} is not finite: {tok!r}", file=file, line=lineno, field=name)
            values.append(v)
        for name, v in zip(("dx", "dy", "dz"), values[3:6]):
            if v <= 0:
                raise dataset_error(f"box size {name} must be > 0, got {v}", file=file, line=lineno, field=name)
        cls = parts[7]
        if cls in index:
            label = index[cls]
        elif cls.isdigit() and int(cls) < len(class_names):
            label = int(cls)
        else:
            raise dataset_error(f"unknown class {cls!r}; class_names are {list(class_names)}", file=file,
                                line=lineno, field="class")
        score = -1.0
        if len(parts) == 9:
            try:
                score = float(parts[8])
            except ValueError:
                raise dataset_error(f"score is not a number: {parts[8]!r}", file=file, line=lineno,
                                    field="score") from None
        boxes.append(values)
        labels.append(label)
        scores.append(score)
    return Boxes3D(np.asarray(boxes, dtype=np.float64).reshape(-1, 7), np.asarray(labels, dtype=np.int64),
                   np.asarray(scores, dtype=np.float64))


def read_boxes3d(path: Optional[str], class_names: Sequence[str]) -> Boxes3D:
    """The boxes of a label file; an absent path means no labels (an unlabelled candidate)."""
    if not path:
        return Boxes3D()
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise dataset_error("label file not found", file=path) from None
    except UnicodeDecodeError:
        raise dataset_error("label file is not UTF-8 text", file=path) from None
    return parse_boxes3d(text, class_names, file=path)


def format_boxes3d(b: Boxes3D, class_names: Sequence[str], *, with_score: bool = False) -> str:
    lines = []
    for box, label, score in zip(b.boxes, b.labels, b.scores):
        cols = [f"{v:.4f}" for v in box] + [class_names[int(label)]]
        if with_score:
            cols.append(f"{score:.4f}")
        lines.append(" ".join(cols))
    return "".join(line + "\n" for line in lines)
