"""The 3D ``infer-result.json`` (this project's extension of the contract; YMIR has no 3D type)."""
from __future__ import annotations

import json
import math
from typing import Iterable, Sequence, Tuple

from executor.env import Env
from executor.results import KeyedInferStream


class Detection3DInferWriter(KeyedInferStream):
    """Streams ``infer-result.json`` for LiDAR 3D detection (this project's extension, the analogue
    of §5.4): ``{"box3d_format": ..., "detection3d": {basename: {"boxes": [{"box3d": {x, y, z, dx,
    dy, dz, yaw}, "class_name", "score"}]}}}``, metres and radians, LiDAR frame, bottom centre.
    Every candidate is present, with an empty list when nothing was detected."""

    FORMAT = "LiDAR frame, bottom centre x y z, sizes dx dy dz, yaw about z counter-clockwise from +x"

    def __init__(self, env: Env, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        super().__init__(env.output.infer_result_file, '{"box3d_format": ' + json.dumps(self.FORMAT) +
                         ', "detection3d": {')

    def add(self, path: str, boxes: Iterable[Tuple[int, float, Sequence[float]]]) -> None:
        """``boxes``: (class_id, score, [x, y, z, dx, dy, dz, yaw])."""
        items = []
        for cls, score, box in boxes:
            vals = [float(v) for v in box[:7]]
            if not all(math.isfinite(v) for v in vals) or min(vals[3:6]) <= 0:
                continue
            items.append({"box3d": {k: round(v, 4) for k, v in zip(("x", "y", "z", "dx", "dy", "dz", "yaw"), vals)},
                          "class_name": self.class_names[int(cls)], "score": float(min(max(score, 0.0), 1.0))})
        self._entry(path, {"boxes": items})
