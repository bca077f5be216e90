"""Result writers: ``result.yaml`` stages, ``infer-result.json`` (detection and
COCO segmentation; a kind with an output of its own builds on :class:`KeyedInferStream`) and ``result.tsv``. Every write goes through a temporary
file and a rename, so a crash never leaves a half-written result.

Names follow the YMIR SDK (``write_model_stage``, ``write_mining_result``) so
platform users recognise them.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import yaml

from .env import Env
from .errors import ErrorCode, YmirError
from .fileio import atomic_write_text, atomic_write_yaml

log = logging.getLogger(__name__)

METRIC_KEYS = ("mAP", "mAR", "mIoU", "mAcc", "maskAP", "boxAP")
COUNT_KEYS = ("tp", "fp", "fn")
# Which metric makes a stage "best", by priority (as the SDK does).
MAIN_METRIC_PRIORITY = ("maskAP", "mIoU", "mAP")
MAX_STAGES = 11
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def valid_stage_name(name: str) -> bool:
    return bool(_STAGE_NAME.match(name)) and name.replace("-", "_").isidentifier()


@dataclass
class ModelStage:
    """One ``model_stages`` entry of result.yaml."""

    stage_name: str
    files: List[str]
    timestamp: int
    metrics: Dict[str, float] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"stage_name": self.stage_name, "files": list(self.files),
                               "timestamp": int(self.timestamp)}
        out.update({k: float(v) for k, v in self.metrics.items()})
        out.update({k: int(v) for k, v in self.counts.items()})
        return out

    def main_metric(self) -> float:
        for key in MAIN_METRIC_PRIORITY:
            if key in self.metrics:
                return self.metrics[key]
        return 0.0


def _plain_metric(key: str, value: Any) -> float:
    try:
        v = float(value)  # numpy / torch scalars become plain floats (yaml can't represent them)
    except (TypeError, ValueError):
        raise ValueError(f"metric {key}={value!r} is not a number") from None
    if not math.isfinite(v):
        raise YmirError(ErrorCode.NAN_LOSS, f"metric {key} is {v}: training diverged", field=key)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"metric {key}={v} must be a fraction in [0, 1]")
    return v


def _place_file(src: str, dest_dir: Path) -> str:
    """Copy ``src`` into ``dest_dir`` as a real file (never a symlink); return its basename."""
    src_path = Path(src)
    real = src_path.resolve()
    if not real.is_file():
        raise FileNotFoundError(f"stage file {src} does not exist")
    dest = dest_dir / src_path.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink():
        dest.unlink()
    if not (dest.exists() and os.path.samefile(dest, real)):
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(real, tmp)
        os.replace(tmp, dest)
    return dest.name


def _load_result(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError:
        log.warning("%s is not valid yaml; starting a new one", path)
        return {}
    return data if isinstance(data, dict) else {}


def write_model_stage(env: Env, stage_name: str, files: Sequence[str], metrics: Mapping[str, Any],
                      *, counts: Optional[Mapping[str, int]] = None, timestamp: Optional[int] = None,
                      attachments: Optional[Mapping[str, Sequence[str]]] = None,
                      evaluate_config: Optional[Mapping[str, float]] = None,
                      best_stage_name: Optional[str] = None) -> Dict[str, Any]:
    """Add or replace a stage in result.yaml (read-modify-write) and return the new document.

    ``files`` are local paths (or names relative to the models dir). They are copied
    as real files into ``models/<stage>/`` for protocol 1.1.0 and into ``models/``
    before; result.yaml lists basenames only. ``best_stage_name`` defaults to the
    stage with the highest main metric (ties: the newest).
    """
    models_dir = Path(env.output.models_dir)
    result_path = Path(env.output.training_result_file)
    stage_name = stage_name.replace("-", "_")  # as the SDK does: stage names are identifiers
    if stage_name.isdigit():
        stage_name = f"stage_{stage_name}"
    if not valid_stage_name(stage_name):
        raise ValueError(f"invalid stage name {stage_name!r}")
    if not files:
        raise ValueError("a stage needs at least one file")
    per_stage_dir = env.protocol >= (1, 1, 0)
    dest_dir = models_dir / stage_name if per_stage_dir else models_dir
    names: List[str] = []
    for f in files:
        src = f if os.path.isabs(f) else str(models_dir / f)
        name = _place_file(src, dest_dir)
        if name not in names:
            names.append(name)
    stage = ModelStage(stage_name=stage_name, files=names,
                       timestamp=int(time.time() if timestamp is None else timestamp),
                       metrics={k: _plain_metric(k, v) for k, v in metrics.items()},
                       counts={k: int(v) for k, v in (counts or {}).items()})
    for k, v in stage.counts.items():
        if k not in COUNT_KEYS or v < 0:
            raise ValueError(f"count {k}={v} must be one of {COUNT_KEYS} and >= 0")

    if env.protocol < (1, 0, 0):
        return _write_old_format(env, stage, result_path)

    doc = _load_result(result_path)
    doc.pop("model", None)  # a top-level 'model' key would switch the platform to the old format
    doc.pop("map", None)
    stages: Dict[str, Any] = dict(doc.get("model_stages") or {})
    stages[stage_name] = stage.to_dict()
    best = best_stage_name or _best_stage(stages)
    stages = _trim_stages(stages, best, models_dir if per_stage_dir else None)
    doc["model_stages"] = stages
    doc["best_stage_name"] = best
    main = _main_metric_key(stages[best])
    if main:
        doc[main] = float(stages[best][main])
    if evaluate_config:
        doc["evaluate_config"] = {k: float(v) for k, v in evaluate_config.items()}
    if attachments:
        att = dict(doc.get("attachments") or {})
        for section, paths in attachments.items():
            section_dir = models_dir / "attachments" / section
            att[section] = sorted(set(att.get(section, [])) | {_place_file(p, section_dir) for p in paths})
        doc["attachments"] = att
    atomic_write_yaml(result_path, doc)
    return doc


def _main_metric_key(stage: Mapping[str, Any]) -> Optional[str]:
    for key in MAIN_METRIC_PRIORITY:
        if key in stage:
            return key
    return None


def _best_stage(stages: Mapping[str, Mapping[str, Any]]) -> str:
    def score(item: Tuple[str, Mapping[str, Any]]) -> Tuple[float, int]:
        key = _main_metric_key(item[1])
        return (float(item[1][key]) if key else 0.0, int(item[1].get("timestamp", 0)))
    return max(stages.items(), key=score)[0]


def _trim_stages(stages: Dict[str, Any], best: str, stage_root: Optional[Path]) -> Dict[str, Any]:
    """Keep at most MAX_STAGES stages, dropping the oldest that are not best (as the SDK does)."""
    while len(stages) > MAX_STAGES:
        oldest = min((s for s in stages if s != best), key=lambda s: int(stages[s].get("timestamp", 0)))
        stages.pop(oldest)
        if stage_root is not None and (stage_root / oldest).is_dir():
            shutil.rmtree(stage_root / oldest, ignore_errors=True)
    return stages


def _write_old_format(env: Env, stage: ModelStage, result_path: Path) -> Dict[str, Any]:
    """Protocol 0.0.1 (YMIR <= 1.1): ``{model: [files], map: float}`` for the best stage so far.

    The history of stages lives beside /out/models so best-stage selection still works.
    """
    history_path = Path(env.output.root_dir) / ".ymir-stages.yaml"
    history = _load_result(history_path)
    history[stage.stage_name] = stage.to_dict()
    atomic_write_yaml(history_path, history)
    best = history[_best_stage(history)]
    doc = {"model": list(best["files"]), "map": float(best.get(_main_metric_key(best) or "mAP", 0.0))}
    atomic_write_yaml(result_path, doc)
    return doc


class _StreamingJson:
    """Writes a large JSON document piecewise into a temporary file, renamed on close."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.f = os.fdopen(fd, "w", encoding="utf-8")

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.f.closed:
            self.f.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


class KeyedInferStream:
    """A streamed ``{..., "<key>": {basename: entry}}`` document; ``close(candidates)`` adds every
    candidate that got no entry, so the key set always equals the candidates."""

    def __init__(self, path: str, head: str) -> None:
        self.out = _StreamingJson(path)
        self.out.f.write(head)
        self.seen: set = set()

    def add(self, path: str, boxes) -> None:
        raise NotImplementedError

    def _entry(self, path: str, value: Dict[str, Any]) -> None:
        name = os.path.basename(path)
        if name in self.seen:
            return
        self.out.f.write(("," if self.seen else "") + json.dumps(name) + ":" + json.dumps(value))
        self.seen.add(name)

    def close(self, candidates: Iterable[str] = ()) -> None:
        for path in candidates:
            if os.path.basename(path) not in self.seen:
                self.add(path, [])
        self.out.f.write("}}")
        self.out.commit()

    def abort(self) -> None:
        self.out.abort()


class DetectionInferWriter(KeyedInferStream):
    """Streams ``infer-result.json`` for detection (contract §5.4).

    Keys are candidate basenames; boxes are integers x, y, w, h; ``boxes`` for
    protocol >= 1.0.0, ``annotations`` before. ``close(candidates)`` adds every
    candidate that got no prediction, so the key set always equals the candidates.
    """

    def __init__(self, env: Env, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.list_key = "boxes" if env.protocol >= (1, 0, 0) else "annotations"
        super().__init__(env.output.infer_result_file, '{"detection": {')

    def add(self, image_path: str, boxes: Iterable[Tuple[int, float, float, float, float, float]]) -> None:
        """``boxes``: (class_id, score, x1, y1, x2, y2) with exclusive x2/y2, in pixels."""
        items = []
        for cls, score, x1, y1, x2, y2 in boxes:
            x, y = int(round(x1)), int(round(y1))
            w, h = int(round(x2)) - x, int(round(y2)) - y
            if w <= 0 or h <= 0:
                continue  # a degenerate box cannot be stored
            items.append({"box": {"x": x, "y": y, "w": w, "h": h},
                          "class_name": self.class_names[int(cls)],
                          "score": float(min(max(score, 0.0), 1.0))})
        self._entry(image_path, {self.list_key: items})


def encode_label_map(label_map: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> Tuple[int, int, List[Dict[str, Any]]]:
    """(height, width, per class present: category_id, segmentation, bbox, area) of an HxW map of
    class ids (0..num_classes-1); ``ignore_index`` pixels are left out. Several processes can
    encode and one write (:meth:`SegmentationInferWriter.add_encoded`)."""
    from pycocotools import mask as mask_utils  # light, but keep module import cheap

    h, w = label_map.shape[:2]
    anns = []
    for cls in np.unique(label_map):
        cls = int(cls)
        if cls == ignore_index or cls < 0 or cls >= num_classes:
            continue
        rle = mask_utils.encode(np.asfortranarray((label_map == cls).astype(np.uint8)))
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        area = int(mask_utils.area(rle))
        if area <= 0 or bbox[2] <= 0 or bbox[3] <= 0:
            continue
        anns.append({"category_id": cls, "iscrowd": 1,
                     "segmentation": {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")},
                     "bbox": bbox, "area": area})
    return int(h), int(w), anns


class SegmentationInferWriter:
    """Streams COCO ``infer-result.json`` for semantic segmentation (contract §5.5).

    One annotation per (image, class present) with a compressed RLE whose counts
    are a string, ``bbox`` and ``area``; ``iscrowd`` 1; no background entry.
    Images and annotations go to two temporary streams joined on close.
    """

    def __init__(self, env: Env, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.path = env.output.infer_result_file
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._images = tempfile.TemporaryFile("w+", encoding="utf-8", dir=Path(self.path).parent)
        self._anns = tempfile.TemporaryFile("w+", encoding="utf-8", dir=Path(self.path).parent)
        self.seen: set = set()
        self.n_images = 0
        self.n_anns = 0

    def add(self, image_path: str, label_map: np.ndarray, ignore_index: int = 255) -> None:
        """``label_map``: HxW class ids (0..N-1); ``ignore_index`` pixels are left out."""
        self.add_encoded(image_path, *encode_label_map(label_map, len(self.class_names), ignore_index))

    def add_encoded(self, image_path: str, height: int, width: int, anns: Sequence[Dict[str, Any]]) -> None:
        name = os.path.basename(image_path)
        if name in self.seen:
            return
        self.n_images += 1
        image_id = self.n_images
        self._images.write(("," if self.seen else "") +
                           json.dumps({"id": image_id, "file_name": name, "width": int(width), "height": int(height)}))
        self.seen.add(name)
        for a in anns:
            self.n_anns += 1
            ann = {"id": self.n_anns, "image_id": image_id, **a}
            self._anns.write(("," if self.n_anns > 1 else "") + json.dumps(ann))

    def add_empty(self, image_path: str, width: int, height: int) -> None:
        self.add_encoded(image_path, height, width, [])

    def close(self, candidates: Iterable[Tuple[str, int, int]] = ()) -> None:
        """``candidates``: (path, width, height) of every candidate, so none is missing."""
        for path, w, h in candidates:
            if os.path.basename(path) not in self.seen:
                self.add_empty(path, w, h)
        out = _StreamingJson(self.path)
        try:
            out.f.write('{"images": [')
            self._images.seek(0)
            shutil.copyfileobj(self._images, out.f)
            cats = [{"id": i, "name": n, "supercategory": "object"} for i, n in enumerate(self.class_names)]
            out.f.write('], "categories": ' + json.dumps(cats) + ', "annotations": [')
            self._anns.seek(0)
            shutil.copyfileobj(self._anns, out.f)
            out.f.write("]}")
            out.commit()
        except BaseException:
            out.abort()
            raise
        finally:
            self._images.close()
            self._anns.close()


# The score of a candidate that could not be read: after every real score (written as the lowest
# finite number, so the platform only picks it when it asks for more images than were readable).
UNREADABLE_SCORE = -math.inf


def write_mining_result(env: Env, scores: Iterable[Tuple[str, float]]) -> int:
    """Write ``result.tsv``: ``path<TAB>score`` per candidate, sorted by score descending.

    Paths must be exactly as in candidate-index.tsv. Non-finite scores rank last.
    Ties keep the candidate order, so the file is deterministic. Returns the line count.
    """
    rows = []
    for i, (path, score) in enumerate(scores):
        if "\t" in path or "\n" in path:
            raise ValueError(f"candidate path {path!r} holds a TAB or newline")
        s = float(score)
        rows.append((-s if math.isfinite(s) else math.inf, i, path, s if math.isfinite(s) else -1e30))
    rows.sort()
    text = "".join(f"{path}\t{score:.10g}\n" for _, _, path, score in rows)
    atomic_write_text(env.output.mining_result_file, text)
    return len(rows)
