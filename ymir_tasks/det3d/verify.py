"""How ``verify`` checks a 3D infer-result (object_type 100 is this project's, so the platform
has no rule for it): every candidate's basename is a key of ``detection3d`` with a ``boxes`` list
of {box3d: {x, y, z, dx, dy, dz, yaw}, class_name, score}; the 3D analogue of contract §5.4."""
from __future__ import annotations

import posixpath
from typing import List, Optional

from executor.env import Env
from executor.verify import Report, compare_names, is_number, load_json, read_candidates, short


def check_infer(env: Env, class_names: Optional[List[str]], rep: Report) -> None:
    file = env.output.infer_result_file
    ok, doc = load_json(file, rep)
    if not ok:
        return
    det = doc.get("detection3d") if isinstance(doc, dict) else None
    if not isinstance(det, dict):
        rep.add(file, "detection3d", "missing or not a mapping {basename: {boxes: [...]}}")
        return
    cands = read_candidates(env, rep)
    if cands is not None:
        compare_names(set(det), {posixpath.basename(p) for p in cands}, file, "detection3d", "key(s)", rep)
    known = set(class_names) if class_names is not None else None
    for name, value in det.items():
        prefix = f"detection3d.{name}"
        boxes = value.get("boxes") if isinstance(value, dict) else None
        if not isinstance(boxes, list):
            rep.add(file, f"{prefix}.boxes", f"expected a list, got {short(boxes)}", "boxes not a list")
            continue
        for i, obj in enumerate(boxes):
            where = f"{prefix}.boxes[{i}]"
            box = obj.get("box3d") if isinstance(obj, dict) else None
            if not isinstance(box, dict):
                rep.add(file, f"{where}.box3d", f"expected {{x, y, z, dx, dy, dz, yaw}}, got {short(box)}",
                        "box3d missing")
                continue
            for k in ("x", "y", "z", "dx", "dy", "dz", "yaw"):
                v = box.get(k)
                if not is_number(v):
                    rep.add(file, f"{where}.box3d.{k}", f"expected a finite number, got {short(v)}", "box3d value")
                elif k in ("dx", "dy", "dz") and v <= 0:
                    rep.add(file, f"{where}.box3d.{k}", f"must be > 0, got {v}", "box3d size not > 0")
            cname = obj.get("class_name")
            if not isinstance(cname, str) or (known is not None and cname not in known):
                rep.add(file, f"{where}.class_name", f"{short(cname)} not in config class_names", "unknown class_name")
            score = obj.get("score")
            if not is_number(score) or not 0 <= score <= 1:
                rep.add(file, f"{where}.score", f"expected a number in [0, 1], got {short(score)}",
                        "score not in [0, 1]")
