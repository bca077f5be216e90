"""Bird's-eye views of scans for the mining previews: points from above (brighter = higher), the
annotated boxes, the bank's pseudo labels and the uncertain predictions in their own colours."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from executor.pointcloud import Boxes3D

# BGR
ANNOTATED, PSEUDO, UNCERTAIN = (230, 230, 230), (80, 200, 60), (0, 140, 255)
METRES = (0.0, 70.4, -40.0, 40.0)  # x from, x to, y from, y to: KITTI's forward field of view
SIDE = 512  # pixels of the picture's longest side


def view_range(point_cloud_range: Sequence[float]) -> Tuple[float, float, float, float]:
    """(x from, x to, y from, y to) of an mmdet3d ``point_cloud_range`` [x0, y0, z0, x1, y1, z1]."""
    x0, y0, _, x1, y1, _ = (float(v) for v in point_cloud_range)
    return x0, x1, y0, y1


def pixels_per_metre(r: Tuple[float, float, float, float], side: int = SIDE) -> float:
    return side / max(r[1] - r[0], r[3] - r[2])


def _to_pixels(x: np.ndarray, y: np.ndarray, r: Tuple[float, float, float, float]) -> Tuple[np.ndarray, np.ndarray]:
    """x forward -> up the picture, y left -> left in the picture."""
    ppm = pixels_per_metre(r)
    return (r[3] - y) * ppm, (r[1] - x) * ppm


def footprint(box: np.ndarray) -> np.ndarray:
    """The 4 ground corners (x, y) of a (x, y, z, dx, dy, dz, yaw) box."""
    x, y, _, dx, dy, _, yaw = box[:7]
    c, s = np.cos(yaw), np.sin(yaw)
    half = np.array([[dx, dy], [dx, -dy], [-dx, -dy], [-dx, dy]]) / 2
    return half @ np.array([[c, s], [-s, c]]) + np.array([x, y])


def bev(points: np.ndarray, layers: Sequence[Tuple[Boxes3D, Tuple[int, int, int], bool]],
        class_names: Sequence[str], r: Tuple[float, float, float, float] = METRES) -> np.ndarray:
    """The scan from above (``r``: the model's field of view) with ``layers`` of (boxes, colour,
    write the score) drawn in order."""
    import cv2

    ppm = pixels_per_metre(r)
    w, h = int(round((r[3] - r[2]) * ppm)), int(round((r[1] - r[0]) * ppm))
    img = np.zeros((h, w, 3), np.uint8)
    col, row = _to_pixels(points[:, 0], points[:, 1], r)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    z = points[inside, 2]
    shade = (np.clip((z - np.percentile(z, 2)) / max(float(np.ptp(z)), 1e-3), 0, 1) * 160 + 70).astype(np.uint8) \
        if len(z) else np.zeros(0, np.uint8)
    img[row[inside].astype(int), col[inside].astype(int)] = np.stack([shade, shade, shade], 1)
    img = cv2.dilate(img, np.ones((2, 2), np.uint8))  # a point a pixel is lost at this scale
    ego_c, ego_r = _to_pixels(np.array([0.0]), np.array([0.0]), r)
    cv2.drawMarker(img, (int(ego_c[0]), int(ego_r[0])), (0, 200, 255), cv2.MARKER_TRIANGLE_UP, 10, 2)
    for boxes, colour, with_score in layers:
        for b, lab, s in zip(boxes.boxes, boxes.labels, boxes.scores):
            cx, cy = _to_pixels(*footprint(b).T, r)
            pts = np.stack([cx, cy], 1).round().astype(np.int32)
            cv2.polylines(img, [pts], True, colour, 2 if with_score else 1, cv2.LINE_AA)
            if with_score:
                name = class_names[int(lab)] if 0 <= int(lab) < len(class_names) else str(int(lab))
                cv2.putText(img, f"{name} {float(s):.2f}", (int(pts[:, 0].min()), int(pts[:, 1].min()) - 2),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
    return img


def legend() -> List[str]:
    return ["white: annotated   green: bank pseudo labels   orange: uncertain predictions"]
