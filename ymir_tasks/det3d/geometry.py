"""Box geometry for 3D mining: rotated BEV and 3D IoU (mmcv's CPU/GPU ``box_iou_rotated``), the
raw→augmented view transform and its exact inverse, point counts in boxes.

Boxes are (N, 7) ``x y z dx dy dz yaw``: bottom centre, yaw about z counter-clockwise from +x
(mmdet3d ``LiDARInstance3DBoxes``). The augmentation is SS3D's global one, applied in the order
flip (y → −y) → rotate about z → scale; :func:`invert_boxes` undoes it in the reverse order.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .scenes import points_in_boxes  # noqa: F401  (re-exported: one implementation)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) rotated IoU of the boxes' footprints."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    import torch
    from mmcv.ops import box_iou_rotated

    ta = torch.from_numpy(a[:, [0, 1, 3, 4, 6]]).float()
    tb = torch.from_numpy(b[:, [0, 1, 3, 4, 6]]).float()
    return np.clip(box_iou_rotated(ta, tb).numpy().astype(np.float64), 0.0, 1.0)


def iou_3d(a: np.ndarray, b: np.ndarray, bev: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, M) 3D IoU: BEV intersection × vertical overlap / union volume (mmdet3d's definition).
    ``bev``: the pair's BEV IoU when the caller already has it (the rotated overlap is the cost)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    bev = bev_iou(a, b) if bev is None else bev
    area_a = (a[:, 3] * a[:, 4])[:, None]
    area_b = (b[:, 3] * b[:, 4])[None, :]
    inter_bev = bev / (1.0 + bev) * (area_a + area_b)
    top = np.minimum(a[:, 2:3] + a[:, 5:6], (b[:, 2] + b[:, 5])[None, :])
    bottom = np.maximum(a[:, 2:3], b[:, 2][None, :])
    inter = inter_bev * np.clip(top - bottom, 0.0, None)
    union = (area_a * a[:, 5:6]) + (area_b * b[:, 5][None, :]) - inter
    return np.clip(inter / np.maximum(union, 1e-12), 0.0, 1.0)


@dataclass(frozen=True)
class Aug:
    """One global augmentation of a scan: flip y, then rotate by ``angle`` about z, then scale."""

    flip: bool
    angle: float
    scale: float


def aug_for(seed: int, key: str, view: int, rot: float = np.pi / 4, scale: float = 0.05) -> Aug:
    """The parameters of augmented view ``view`` (1-based) of a frame: a hash of the seed, the
    frame and the view, so they do not depend on batching or sharding. SS3D flips every
    augmented view; rotation U[−π/4, π/4], scale U[0.95, 1.05]."""
    h = hashlib.sha256(f"{seed}:{key}:{view}".encode()).digest()
    u1 = int.from_bytes(h[:8], "big") / 2.0 ** 64
    u2 = int.from_bytes(h[8:16], "big") / 2.0 ** 64
    return Aug(flip=True, angle=float((2 * u1 - 1) * rot), scale=float(1 + (2 * u2 - 1) * scale))


def _rotate_xy(xy: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([xy[:, 0] * c - xy[:, 1] * s, xy[:, 0] * s + xy[:, 1] * c], 1)


def augment_points(points: np.ndarray, aug: Aug) -> np.ndarray:
    out = np.array(points, dtype=np.float64, copy=True)
    if aug.flip:
        out[:, 1] = -out[:, 1]
    out[:, :2] = _rotate_xy(out[:, :2], aug.angle)
    out[:, :3] *= aug.scale
    return out.astype(points.dtype)


def augment_boxes(boxes: np.ndarray, aug: Aug) -> np.ndarray:
    out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 7)
    if aug.flip:
        out[:, 1] = -out[:, 1]
        out[:, 6] = -out[:, 6]
    out[:, :2] = _rotate_xy(out[:, :2], aug.angle)
    out[:, 6] = _wrap(out[:, 6] + aug.angle)
    out[:, :6] *= aug.scale
    return out


def invert_boxes(boxes: np.ndarray, aug: Aug) -> np.ndarray:
    """Boxes predicted on the augmented scan, in the raw scan's frame (exact inverse)."""
    out = np.array(boxes, dtype=np.float64, copy=True).reshape(-1, 7)
    out[:, :6] /= aug.scale
    out[:, :2] = _rotate_xy(out[:, :2], -aug.angle)
    out[:, 6] = out[:, 6] - aug.angle
    if aug.flip:
        out[:, 1] = -out[:, 1]
        out[:, 6] = -out[:, 6]
    out[:, 6] = _wrap(out[:, 6])
    return out


def count_points(points: np.ndarray, boxes: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Points inside each box, a few boxes at a time so a 120 k-point scan stays cheap in memory."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    out = np.zeros(len(boxes), dtype=np.int64)
    if not len(boxes) or not len(points):
        return out
    xyz = np.asarray(points[:, :3], dtype=np.float64)
    for i in range(0, len(boxes), chunk):
        part = boxes[i:i + chunk]
        # Pre-filter by the circumscribed circle: most points are far from every box.
        r = np.hypot(part[:, 3], part[:, 4]) / 2 + 1e-6
        near = (np.abs(xyz[:, None, 0] - part[None, :, 0]) <= r) & (np.abs(xyz[:, None, 1] - part[None, :, 1]) <= r)
        idx = np.nonzero(near.any(1))[0]
        if len(idx):
            out[i:i + chunk] = points_in_boxes(xyz[idx], part).sum(0)
    return out
