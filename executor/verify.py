"""Check an output folder against the YMIR contract.

Covers every check of the public verifier (contract §7.4) plus the platform's
stricter rules (§5): what the verifier lets through but the platform rejects
(metrics outside [0, 1], symlinked stage files, float box coordinates, COCO
annotations without ``area``, list RLE counts, unsorted mining scores ...).

Nothing here raises on a malformed output file: every defect becomes a
:class:`Problem`. Segmentation is checked by the segmentation rules (project
decision, §7.4): stages carry ``mIoU`` / ``maskAP``, infer output is plain COCO.
"""
from __future__ import annotations

import json
import math
import os
import posixpath
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import yaml

from .env import Env, InputPaths, OutputPaths, PathMap, load_env
from .errors import YmirError
from .index import iter_candidates
from .registry import YMIR_OBJECT_TYPES, all_kinds, resolve
from .results import COUNT_KEYS as COUNT_FIELDS
from .results import METRIC_KEYS as METRIC_FIELDS
from .results import valid_stage_name

TASKS = ("training", "mining", "infer")
# YMIR's main metric per object type it defines (a kind of another type declares its own)
YMIR_MAIN_METRIC = {2: "mAP", 3: "mIoU", 4: "maskAP"}
MONITOR_STATES = {1: "pending", 2: "running", 3: "done", 4: "error"}
# How many problems of one kind in one file are listed before the rest is summarised,
# so a 100 000-image garbage file still gives a readable report.
_CAP = 20
_EXAMPLES = 5


@dataclass
class Problem:
    file: str  # path of the file the rule is about
    field: str  # e.g. 'model_stages.epoch_10.mAP', 'detection.<basename>.boxes[0].box.w', 'line 3'
    message: str

    def __str__(self) -> str:
        # A whole-file problem (missing file, bad JSON) has no field: don't print an empty one.
        if self.field:
            return f"{self.file}: {self.field}: {self.message}"
        return f"{self.file}: {self.message}"


class Report:
    """Collects problems, capping each (file, rule) pair at ``_CAP`` entries."""

    def __init__(self) -> None:
        self.problems: List[Problem] = []
        self._counts: Dict[Tuple[str, str], int] = {}

    def add(self, file: str, field: str, message: str, rule: Optional[str] = None) -> None:
        key = (file, rule or message)
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        if n <= _CAP:
            self.problems.append(Problem(file, field, message))

    def finish(self) -> List[Problem]:
        for (file, rule), n in self._counts.items():
            if n > _CAP:
                self.problems.append(Problem(file, "", f"{n - _CAP} more problem(s) like '{rule}' not listed"))
        return self.problems


def main_metrics() -> Dict[int, str]:
    """object_type -> the stage's main metric: YMIR's types, and those the kinds bring."""
    return {**YMIR_MAIN_METRIC, **{k.object_type: k.main_metric for k in all_kinds()
                                   if k.object_type not in YMIR_MAIN_METRIC}}


# --------------------------------------------------------------------------- helpers

def is_number(v: Any) -> bool:
    # bool is an int subclass but the platform's pydantic floats would take True as 1.0 silently.
    if isinstance(v, bool):
        return False
    # ints are always finite (and math.isfinite overflows on a 400-digit one)
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def short(v: Any, limit: int = 80) -> str:
    """repr() cut to ``limit`` characters: garbage values must not flood the report."""
    text = repr(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _examples(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_EXAMPLES])
    return shown + (f", ... ({len(names) - _EXAMPLES} more)" if len(names) > _EXAMPLES else "")


def _load_yaml(path: str, rep: Report) -> Tuple[bool, Any]:
    """(ok, data); a missing or unparsable file is reported."""
    if not os.path.isfile(path):
        rep.add(path, "", "file not found")
        return False, None
    try:
        with open(path, "r", encoding="utf-8") as f:
            return True, yaml.safe_load(f)
    except yaml.YAMLError as e:
        # safe_load also rejects numpy/python object tags, which the platform cannot load either.
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        rep.add(path, where, f"malformed YAML: {getattr(e, 'problem', None) or e}")
    except (OSError, UnicodeDecodeError) as e:
        rep.add(path, "", f"cannot read: {e}")
    return False, None


def load_json(path: str, rep: Report) -> Tuple[bool, Any]:
    if not os.path.isfile(path):
        rep.add(path, "", "file not found")
        return False, None
    try:
        with open(path, "r", encoding="utf-8") as f:
            return True, json.load(f)
    except json.JSONDecodeError as e:
        rep.add(path, f"line {e.lineno}", f"malformed JSON: {e.msg}")
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as e:
        rep.add(path, "", f"cannot read JSON: {e}")
    return False, None


def _check_relative_name(name: Any, file: str, field: str, rep: Report) -> bool:
    """A file entry must be a plain basename: the platform joins it under /out/models."""
    if not isinstance(name, str) or not name.strip():
        rep.add(file, field, f"expected a file name, got {short(name)}")
        return False
    if name.startswith("/") or os.path.isabs(name):
        rep.add(file, field, f"absolute path not allowed: {short(name)}", "absolute path not allowed")
        return False
    if ".." in name.replace("\\", "/").split("/"):
        rep.add(file, field, f"'..' not allowed in {short(name)}", "'..' not allowed")
        return False
    if "/" in name or "\\" in name:
        rep.add(file, field, f"must be a basename, got {short(name)}", "must be a basename")
        return False
    return True


def _check_real_file(candidates: Sequence[str], name: str, file: str, field: str, rep: Report) -> None:
    """The first existing candidate is what the platform packs: it must be a regular, non-symlink file."""
    for path in candidates:
        if os.path.lexists(path):
            # tarfile.add does not dereference: a symlink is packed as a link to nothing.
            if os.path.islink(path):
                rep.add(file, field, f"{short(name)} is a symlink ({path}); copy the real file", "is a symlink")
            elif not os.path.isfile(path):
                rep.add(file, field, f"{short(name)} is not a regular file ({path})", "not a regular file")
            return
    rep.add(file, field, f"{short(name)} not found in {' or '.join(os.path.dirname(p) for p in candidates)}",
            "stage file not found")


def _dir_has_entries(path: str, what: str, rep: Report) -> None:
    if not os.path.isdir(path):
        rep.add(path, "", f"{what} directory not found")
        return
    try:
        if not os.listdir(path):
            rep.add(path, "", f"{what} directory is empty")
    except OSError as e:
        rep.add(path, "", f"cannot list {what} directory: {e}")


def read_candidates(env: Env, rep: Report) -> Optional[List[str]]:
    """Candidate image paths exactly as written in candidate-index.tsv (container paths)."""
    path = env.input.candidate_index_file
    if not path:
        rep.add(env.source_file or "env.yaml", "input.candidate_index_file", "empty: cannot check against candidates")
        return None
    try:
        return [e.raw_image for e in iter_candidates(path, path_map=env.path_map, check_exists=False,
                                                      warn_repeats=False)]
    except YmirError as e:
        rep.add(path, f"line {e.line}" if e.line else "", e.message)
    except OSError as e:
        rep.add(path, "", f"cannot read: {e}")
    return None


# --------------------------------------------------------------------------- training

def _check_metrics(stage: Dict[str, Any], file: str, prefix: str, rep: Report) -> None:
    for key in METRIC_FIELDS:
        if key not in stage:
            continue
        v = stage[key]
        if not is_number(v):
            rep.add(file, f"{prefix}.{key}", f"expected a plain number in [0, 1], got {short(v)}",
                    "metric not a number")
        elif not 0 <= v <= 1:
            # pydantic rejects it ⇒ no model ⇒ task error (percentages, COCO's -1 'no GT').
            rep.add(file, f"{prefix}.{key}", f"{short(v)} outside [0, 1]", "metric outside [0, 1]")
    for key in COUNT_FIELDS:
        if key in stage and not (_is_int(stage[key]) and stage[key] >= 0):
            rep.add(file, f"{prefix}.{key}", f"expected an int >= 0, got {short(stage[key])}", "count not an int >= 0")


def _check_training(env: Env, object_type: int, rep: Report) -> None:
    out = env.output
    file = out.training_result_file
    models_dir = out.models_dir
    _dir_has_entries(models_dir, "models", rep)
    _dir_has_entries(out.tensorboard_dir, "tensorboard", rep)

    ok, doc = _load_yaml(file, rep)
    if not ok:
        return
    if not isinstance(doc, dict):
        rep.add(file, "", f"expected a mapping at top level, got {type(doc).__name__}")
        return

    old_protocol = env.protocol_version == "0.0.1"
    if "model_stages" in doc:
        if "model" in doc:
            # The platform takes the old-format path whenever 'model' exists, ignoring model_stages.
            rep.add(file, "model", "top-level 'model' key together with 'model_stages': the platform "
                                   "would read the old format; remove 'model'")
        if old_protocol:
            rep.add(file, "model_stages", "protocol 0.0.1 expects the old format ('model' + 'map')")
        _check_stages(doc, file, models_dir, object_type, rep)
    elif "model" in doc:
        if not old_protocol:
            rep.add(file, "model", f"old format ('model' + 'map') but protocol is {env.protocol_version}: "
                                   "write 'model_stages'")
        _check_old_format(doc, file, models_dir, rep)
    else:
        rep.add(file, "model_stages", "missing (neither 'model_stages' nor old-format 'model')")

    if "evaluate_config" in doc:
        ec = doc["evaluate_config"]
        if not isinstance(ec, dict):
            rep.add(file, "evaluate_config", f"expected a mapping, got {type(ec).__name__}")
        else:
            for k, v in ec.items():
                if not is_number(v):
                    rep.add(file, f"evaluate_config.{k}", f"expected a float, got {short(v)}")
    if "attachments" in doc:
        _check_attachments(doc["attachments"], file, models_dir, rep)


def _check_old_format(doc: Dict[str, Any], file: str, models_dir: str, rep: Report) -> None:
    files = doc.get("model")
    if not isinstance(files, list) or not files:
        rep.add(file, "model", f"expected a non-empty list of files, got {short(files)}")
    else:
        for i, name in enumerate(files):
            if _check_relative_name(name, file, f"model[{i}]", rep):
                _check_real_file([os.path.join(models_dir, name)], name, file, f"model[{i}]", rep)
    if "map" not in doc:
        rep.add(file, "map", "missing")
    elif not is_number(doc["map"]) or not 0 <= doc["map"] <= 1:
        rep.add(file, "map", f"expected a plain number in [0, 1], got {short(doc['map'])}")


def _check_stages(doc: Dict[str, Any], file: str, models_dir: str, object_type: int, rep: Report) -> None:
    stages = doc["model_stages"]
    metric = main_metrics().get(object_type, "mAP")
    if not isinstance(stages, dict) or not stages:
        rep.add(file, "model_stages", f"expected a non-empty mapping, got {short(stages)}")
        stages = {}
    for key, stage in stages.items():
        prefix = f"model_stages.{key}"
        if not isinstance(key, str) or not valid_stage_name(key):
            rep.add(file, prefix, f"invalid stage name {short(key)}: use letters, digits, '_' and '-', "
                                  "not starting with a digit", "invalid stage name")
        if not isinstance(stage, dict):
            rep.add(file, prefix, f"expected a mapping, got {type(stage).__name__}")
            continue
        if "stage_name" not in stage:
            rep.add(file, f"{prefix}.stage_name", "missing")
        elif stage["stage_name"] != key:
            rep.add(file, f"{prefix}.stage_name", f"{short(stage['stage_name'])} differs from the key {short(key)}")
        files = stage.get("files")
        if "files" not in stage:
            rep.add(file, f"{prefix}.files", "missing")
        elif not isinstance(files, list) or not files:
            rep.add(file, f"{prefix}.files", f"expected a non-empty list of file names, got {short(files)}")
        else:
            for i, name in enumerate(files):
                field = f"{prefix}.files[{i}]"
                if _check_relative_name(name, file, field, rep):
                    # Platform lookup order: /out/models/<stage>/<file>, then /out/models/<file>.
                    cands = [os.path.join(models_dir, str(key), name), os.path.join(models_dir, name)]
                    _check_real_file(cands, name, file, field, rep)
        if "timestamp" not in stage:
            rep.add(file, f"{prefix}.timestamp", "missing")
        elif not _is_int(stage["timestamp"]):
            rep.add(file, f"{prefix}.timestamp", f"expected an int (seconds), got {short(stage['timestamp'])}")
        if metric not in stage:
            rep.add(file, f"{prefix}.{metric}", f"missing (main metric for object_type {object_type})",
                    "main metric missing")
        _check_metrics(stage, file, prefix, rep)

    if "best_stage_name" not in doc:
        rep.add(file, "best_stage_name", "missing")
    else:
        best = doc["best_stage_name"]
        if not isinstance(best, str) or best not in stages:
            rep.add(file, "best_stage_name", f"{short(best)} is not a key of model_stages "
                                             f"({_examples(str(k) for k in stages) or 'none'})")


def _check_attachments(att: Any, file: str, models_dir: str, rep: Report) -> None:
    if not isinstance(att, dict):
        rep.add(file, "attachments", f"expected a mapping {{section: [files]}}, got {type(att).__name__}")
        return
    for section, names in att.items():
        field = f"attachments.{section}"
        if not isinstance(section, str) or not _check_relative_name(section, file, field, rep):
            continue
        if not isinstance(names, list):
            rep.add(file, field, f"expected a list of files, got {short(names)}")
            continue
        for i, name in enumerate(names):
            if _check_relative_name(name, file, f"{field}[{i}]", rep):
                path = os.path.join(models_dir, "attachments", section, name)
                _check_real_file([path], name, file, f"{field}[{i}]", rep)


# --------------------------------------------------------------------------- monitor

def _check_monitor(env: Env, rep: Report) -> None:
    file = env.output.monitor_file
    if not os.path.isfile(file):
        rep.add(file, "", "file not found")
        return
    try:
        with open(file, "r", encoding="utf-8") as f:
            first = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        rep.add(file, "", f"cannot read: {e}")
        return
    parts = first.split("\t")
    if len(parts) < 4:
        rep.add(file, "line 1", f"expected >= 4 TAB-separated fields (task_id, timestamp, percent, state), "
                                f"got {len(parts)}: {short(first[:120])}")
        return
    task_id, ts, percent, state = (p.strip() for p in parts[:4])
    if not task_id:
        rep.add(file, "line 1.task_id", "empty")
    try:
        if not math.isfinite(float(ts)):
            raise ValueError
    except ValueError:
        rep.add(file, "line 1.timestamp", f"expected a float (seconds), got {short(ts)}")
    try:
        p = float(percent)
        if not 0 <= p <= 1:
            rep.add(file, "line 1.percent", f"{p} outside [0, 1]")
    except ValueError:
        rep.add(file, "line 1.percent", f"expected a float in [0, 1], got {short(percent)}")
    try:
        s = int(state)
    except ValueError:
        rep.add(file, "line 1.state", f"expected an int in 1..4, got {short(state)}")
        return
    if s not in MONITOR_STATES:
        rep.add(file, "line 1.state", f"expected 1 (pending), 2 (running), 3 (done) or 4 (error), got {s}")
    code = parts[4].strip() if len(parts) > 4 else ""
    if code:
        try:
            int(code)  # the platform parses field 5 with int(): anything else crashes its parser
        except ValueError:
            rep.add(file, "line 1.return_code", f"expected an int, got {short(code)}")
    if s == 4:
        msg = parts[5].strip() if len(parts) > 5 else ""
        rep.add(file, "line 1.state", f"run failed with code {code or '?'}" + (f": {msg[:200]}" if msg else ""))


# --------------------------------------------------------------------------- infer

def compare_names(found: Set[str], expected: Set[str], file: str, field: str, what: str, rep: Report) -> None:
    missing = expected - found
    extra = found - expected
    if missing:
        rep.add(file, field, f"{len(missing)} candidate image(s) missing: {_examples(missing)}")
    if extra:
        rep.add(file, field, f"{len(extra)} {what} not among the candidates: {_examples(extra)}")


def _check_infer_detection(env: Env, class_names: Optional[List[str]], rep: Report) -> None:
    file = env.output.infer_result_file
    ok, doc = load_json(file, rep)
    if not ok:
        return
    if not isinstance(doc, dict) or "detection" not in doc:
        rep.add(file, "detection", "missing top-level key 'detection'")
        return
    det = doc["detection"]
    if not isinstance(det, dict):
        rep.add(file, "detection", f"expected a mapping {{basename: {{boxes: [...]}}}}, got {type(det).__name__}")
        return
    cands = read_candidates(env, rep)
    if cands is not None:
        expected = {posixpath.basename(p) for p in cands}
        compare_names(set(det), expected, file, "detection", "key(s)", rep)
        n_lines = len(cands)  # distinct candidates: a repeated row is used once
        if set(det) == expected and len(det) != n_lines:
            # The verifier also compares counts: duplicate basenames among the candidates break it.
            rep.add(file, "detection", f"{len(det)} keys but candidate-index.tsv has {n_lines} distinct "
                                       "candidates (duplicate basenames among the candidates?)")
    known = set(class_names) if class_names is not None else None
    for name, value in det.items():
        prefix = f"detection.{name}"
        if not isinstance(value, dict):
            rep.add(file, prefix, f"expected a mapping with 'boxes', got {type(value).__name__}", "value not a mapping")
            continue
        # 'boxes' for protocol >= 1.0.0, 'annotations' before; the platform accepts both.
        key = "boxes" if "boxes" in value else "annotations" if "annotations" in value else None
        if key is None:
            rep.add(file, prefix, "neither 'boxes' nor 'annotations'", "no boxes list")
            continue
        boxes = value[key]
        if not isinstance(boxes, list):
            rep.add(file, f"{prefix}.{key}", f"expected a list, got {type(boxes).__name__}", "boxes not a list")
            continue
        for i, obj in enumerate(boxes):
            _check_det_box(obj, known, file, f"{prefix}.{key}[{i}]", rep)


def _check_det_box(obj: Any, known: Optional[Set[str]], file: str, prefix: str, rep: Report) -> None:
    if not isinstance(obj, dict):
        rep.add(file, prefix, f"expected a mapping, got {type(obj).__name__}", "box not a mapping")
        return
    box = obj.get("box")
    if not isinstance(box, dict):
        rep.add(file, f"{prefix}.box", f"expected {{x, y, w, h}}, got {short(box)}", "box missing")
    else:
        for k in ("x", "y", "w", "h"):
            v = box.get(k)
            if k not in box:
                rep.add(file, f"{prefix}.box.{k}", "missing", "box coordinate missing")
            elif not _is_int(v):
                # protobuf int32: a float (even 10.0 written as JSON float) is rejected by the importer.
                rep.add(file, f"{prefix}.box.{k}", f"expected a JSON integer, got {short(v)}",
                        "box coordinate not an integer")
            elif k in ("w", "h") and v <= 0:
                rep.add(file, f"{prefix}.box.{k}", f"must be > 0, got {v}", "box size not > 0")
    name = obj.get("class_name")
    if not isinstance(name, str):
        rep.add(file, f"{prefix}.class_name", f"expected a class name, got {short(name)}", "class_name missing")
    elif known is not None and name not in known:
        rep.add(file, f"{prefix}.class_name", f"{short(name)} not in config class_names", "unknown class_name")
    score = obj.get("score")
    if "score" not in obj:
        rep.add(file, f"{prefix}.score", "missing (the platform drops the box)", "score missing")
    elif not is_number(score) or not 0 <= score <= 1:
        rep.add(file, f"{prefix}.score", f"expected a number in [0, 1], got {short(score)}", "score not in [0, 1]")


def _rle_counts(s: str) -> List[int]:
    """Decode a COCO compressed RLE string (pycocotools' rleFrString) in Python.

    Done before handing it to pycocotools so that a garbage string cannot make the C
    decoder run past its buffer: the run lengths are checked to sum to h*w first.
    """
    counts: List[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE string")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {short(s[p])} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _check_rle(seg: Any, image: Optional[Dict[str, Any]], file: str, prefix: str, rep: Report) -> None:
    if not isinstance(seg, dict):
        rep.add(file, prefix, f"expected a compressed RLE {{size, counts}}, got {type(seg).__name__}",
                "segmentation not an RLE dict")
        return
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
        rep.add(file, f"{prefix}.size", f"expected [height, width] of positive ints, got {short(size)}",
                "bad RLE size")
        return
    if "counts" not in seg:
        rep.add(file, f"{prefix}.counts", "missing", "RLE counts missing")
        return
    if isinstance(counts, list):
        rep.add(file, f"{prefix}.counts", "uncompressed RLE (a list) cannot be stored; encode with "
                                          "pycocotools.mask.encode and .decode('utf-8') the counts",
                "RLE counts is a list")
        return
    if not isinstance(counts, str):
        rep.add(file, f"{prefix}.counts", f"expected a string, got {type(counts).__name__}", "RLE counts not a string")
        return
    h, w = size
    try:
        runs = _rle_counts(counts)
        if any(r < 0 for r in runs) or sum(runs) != h * w:
            raise ValueError(f"run lengths sum to {sum(runs)}, size says {h}x{w}={h * w}")
        from pycocotools import mask as mask_util

        m = mask_util.decode({"size": [h, w], "counts": counts.encode("ascii")})
        if m.shape[:2] != (h, w):
            raise ValueError(f"decoded shape {m.shape[:2]} != size {h}x{w}")
    except Exception as e:  # any decoder failure is a defect of the file, not of the checker
        rep.add(file, f"{prefix}.counts", f"cannot decode RLE: {e}", "RLE not decodable")
        return
    if image is not None:
        ih, iw = image.get("height"), image.get("width")
        if _is_int(ih) and _is_int(iw) and (ih, iw) != (h, w):
            rep.add(file, f"{prefix}.size", f"[{h}, {w}] differs from the image's [height, width] [{ih}, {iw}]",
                    "RLE size differs from image")


def _check_infer_segmentation(env: Env, class_names: Optional[List[str]], rep: Report,
                              instances: bool = False) -> None:
    """COCO masks (types 3 and 4); ``instances`` (type 4): every annotation an instance with its
    ``confidence`` (the platform stores -1 for an instance without one)."""
    file = env.output.infer_result_file
    ok, doc = load_json(file, rep)
    if not ok:
        return
    if not isinstance(doc, dict):
        rep.add(file, "", f"expected a COCO mapping, got {type(doc).__name__}")
        return
    lists: Dict[str, list] = {}
    for key in ("images", "categories", "annotations"):
        v = doc.get(key)
        if not isinstance(v, list):
            rep.add(file, key, "missing" if key not in doc else f"expected a list, got {type(v).__name__}")
            v = []
        lists[key] = v

    images: Dict[Any, Dict[str, Any]] = {}
    names: Set[str] = set()
    for i, img in enumerate(lists["images"]):
        prefix = f"images[{i}]"
        if not isinstance(img, dict):
            rep.add(file, prefix, f"expected a mapping, got {type(img).__name__}", "image not a mapping")
            continue
        iid = img.get("id")
        if not _is_int(iid):
            rep.add(file, f"{prefix}.id", f"expected an int, got {short(iid)}", "image id not an int")
        elif iid in images:
            rep.add(file, f"{prefix}.id", f"duplicate image id {iid}", "duplicate image id")
        else:
            images[iid] = img
        fn = img.get("file_name")
        if not isinstance(fn, str) or not fn:
            rep.add(file, f"{prefix}.file_name", f"expected a basename, got {short(fn)}", "file_name missing")
        else:
            if fn != posixpath.basename(fn):
                rep.add(file, f"{prefix}.file_name", f"expected a basename, got {short(fn)}",
                        "file_name not a basename")
            names.add(posixpath.basename(fn))
        for k in ("height", "width"):
            if not (_is_int(img.get(k)) and img[k] > 0):
                rep.add(file, f"{prefix}.{k}", f"expected a positive int, got {short(img.get(k))}", f"image {k} bad")
    cands = read_candidates(env, rep)
    if cands is not None:
        compare_names(names, {posixpath.basename(p) for p in cands}, file, "images", "file_name(s)", rep)

    known = set(class_names) if class_names is not None else None
    cat_ids: Set[Any] = set()
    for i, cat in enumerate(lists["categories"]):
        prefix = f"categories[{i}]"
        if not isinstance(cat, dict):
            rep.add(file, prefix, f"expected a mapping, got {type(cat).__name__}", "category not a mapping")
            continue
        cid, name = cat.get("id"), cat.get("name")
        if not _is_int(cid):
            rep.add(file, f"{prefix}.id", f"expected an int, got {short(cid)}", "category id not an int")
        elif cid in cat_ids:
            rep.add(file, f"{prefix}.id", f"duplicate category id {cid}", "duplicate category id")
        else:
            cat_ids.add(cid)
        if not isinstance(name, str):
            rep.add(file, f"{prefix}.name", f"expected a class name, got {short(name)}", "category name missing")
        elif known is not None and name not in known:
            rep.add(file, f"{prefix}.name", f"{short(name)} not in config class_names", "unknown category name")

    for i, ann in enumerate(lists["annotations"]):
        prefix = f"annotations[{i}]"
        if not isinstance(ann, dict):
            rep.add(file, prefix, f"expected a mapping, got {type(ann).__name__}", "annotation not a mapping")
            continue
        iid = ann.get("image_id")
        image = images.get(iid) if _is_int(iid) else None
        if image is None:
            rep.add(file, f"{prefix}.image_id", f"{short(iid)} is not the id of an image", "unknown image_id")
        cid = ann.get("category_id")
        if not _is_int(cid) or cid not in cat_ids:
            rep.add(file, f"{prefix}.category_id", f"{short(cid)} is not the id of a category", "unknown category_id")
        bbox = ann.get("bbox")
        if "bbox" not in ann:
            # The platform's importer silently skips an annotation without bbox.
            rep.add(file, f"{prefix}.bbox", "missing (the platform skips the annotation)", "bbox missing")
        elif not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
            rep.add(file, f"{prefix}.bbox", f"expected [x, y, w, h] numbers, got {short(bbox)}", "bad bbox")
        elif bbox[2] <= 0 or bbox[3] <= 0:
            rep.add(file, f"{prefix}.bbox", f"w and h must be > 0, got {short(bbox)}", "bbox size not > 0")
        if "area" not in ann:
            # KeyError in the platform's importer ⇒ the whole infer task fails.
            rep.add(file, f"{prefix}.area", "missing (the platform's importer fails)", "area missing")
        elif not is_number(ann["area"]):
            rep.add(file, f"{prefix}.area", f"expected a number, got {short(ann['area'])}", "area not a number")
        if instances and "confidence" not in ann:
            rep.add(file, f"{prefix}.confidence", "missing (an instance's score; the platform stores -1)",
                    "confidence missing")
        if "confidence" in ann and not (is_number(ann["confidence"]) and 0 <= ann["confidence"] <= 1):
            rep.add(file, f"{prefix}.confidence", f"expected a number in [0, 1], got {short(ann['confidence'])}",
                    "confidence not in [0, 1]")
        if "segmentation" not in ann:
            rep.add(file, f"{prefix}.segmentation", "missing", "segmentation missing")
        else:
            _check_rle(ann["segmentation"], image, file, f"{prefix}.segmentation", rep)


# --------------------------------------------------------------------------- mining

def _check_mining(env: Env, rep: Report) -> None:
    file = env.output.mining_result_file
    if not os.path.isfile(file):
        rep.add(file, "", "file not found")
        return
    try:
        with open(file, "r", encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        rep.add(file, "", f"cannot read: {e}")
        return
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start a blank one
    paths: List[str] = []
    seen: Set[str] = set()
    prev: Optional[Tuple[int, float]] = None
    unsorted_reported = False
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        field = f"line {n}"
        if not line.strip():
            rep.add(file, field, "blank line", "blank line")
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            rep.add(file, field, f"expected exactly 2 TAB-separated fields (path, score), got {len(parts)}",
                    "not 2 TAB fields")
        if len(line.split()) != 2:
            # The verifier splits on any whitespace: spaces in a path or extra columns fail it.
            rep.add(file, field, f"expected exactly 2 whitespace-separated tokens, got {len(line.split())}",
                    "not 2 tokens")
        path = parts[0]
        if path in seen:
            rep.add(file, field, f"duplicate path {short(path)}", "duplicate path")
        seen.add(path)
        paths.append(path)
        score_text = parts[-1].strip() if len(parts) >= 2 else ""
        try:
            score = float(score_text)
            if not math.isfinite(score):
                raise ValueError
        except ValueError:
            rep.add(file, field, f"score {short(score_text)} is not a finite number", "bad score")
            continue
        if prev is not None and score > prev[1] and not unsorted_reported:
            rep.add(file, field, f"scores not sorted descending: {score} after {prev[1]} on line {prev[0]}")
            unsorted_reported = True
        prev = (n, score)

    cands = read_candidates(env, rep)
    if cands is None:
        return
    n_cand = len(cands)  # distinct candidates: a repeated row is used once
    n_lines = sum(1 for ln in lines if ln.strip())
    if n_lines != n_cand:
        rep.add(file, "", f"{n_lines} line(s) but candidate-index.tsv has {n_cand} distinct candidates")
    compare_names(set(paths), set(cands), file, "paths", "path(s)", rep)


# --------------------------------------------------------------------------- entry points

def _fallback_env(in_dir: str, out_dir: str) -> Env:
    """Default container paths, mapped, for when env.yaml itself cannot be read."""
    pm = PathMap(in_dir, out_dir)
    env = Env(path_map=pm, input=InputPaths(candidate_index_file="/in/candidate-index.tsv"), output=OutputPaths())
    for section in (env.input, env.output):
        for k, v in vars(section).items():
            setattr(section, k, pm(v))
    return env


def _read_config(env: Env, rep: Report) -> Dict[str, Any]:
    file = env.input.config_file
    ok, cfg = _load_yaml(file, rep)
    if not ok:
        return {}
    if not isinstance(cfg, dict):
        rep.add(file, "", f"expected a mapping at top level, got {type(cfg).__name__}")
        return {}
    return cfg


def _verify(in_dir: str, out_dir: str, tasks: Optional[List[str]],
            object_type: Optional[int]) -> Tuple[List[Problem], List[str]]:
    if tasks is not None:
        bad = [t for t in tasks if t not in TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad}, expected a subset of {list(TASKS)}")
    rep = Report()
    env_file = os.path.join(in_dir, "env.yaml")
    try:
        env = load_env(env_file, PathMap(in_dir, out_dir))
    except YmirError as e:
        rep.add(e.file or env_file, e.field or (f"line {e.line}" if e.line else ""), e.message)
        env = _fallback_env(in_dir, out_dir)
        env.source_file = env_file

    if tasks is None:
        tasks = [t for t in TASKS if getattr(env, f"run_{t}")]
        if not tasks:
            rep.add(env_file, "run_training", "no task to check: run_training, run_mining and run_infer are all false")
    else:
        tasks = [t for t in TASKS if t in tasks]  # canonical order, no duplicates

    cfg = _read_config(env, rep)
    if object_type is None:
        object_type = cfg.get("object_type", 2)
    known = main_metrics()
    if not _is_int(object_type) or object_type not in known:
        names = {**YMIR_OBJECT_TYPES, **{k.object_type: k.description for k in all_kinds()}}
        rep.add(env.input.config_file, "object_type",
                f"unsupported object_type {short(object_type)}, expected " +
                ", ".join(f"{t} ({names.get(t, '?')})" for t in sorted(known)))
        object_type = 2
    class_names: Optional[List[str]] = None
    if "infer" in tasks and cfg:
        cn = cfg.get("class_names")
        if isinstance(cn, list) and cn and all(isinstance(c, str) for c in cn):
            class_names = cn
        else:
            rep.add(env.input.config_file, "class_names", f"expected a non-empty list of names, got {short(cn)}")

    if "training" in tasks:
        _check_training(env, object_type, rep)
    if "mining" in tasks:
        _check_mining(env, rep)
    if "infer" in tasks:
        own = next((k.infer_check for k in all_kinds() if k.object_type == object_type and k.infer_check), None)
        if own:
            resolve(own)(env, class_names, rep)
        elif object_type == 2:
            _check_infer_detection(env, class_names, rep)
        else:
            _check_infer_segmentation(env, class_names, rep, instances=object_type == 4)
    if tasks:
        _check_monitor(env, rep)
    return rep.finish(), tasks


def verify_output(in_dir: str, out_dir: str, *, tasks: Optional[List[str]] = None,
                  object_type: Optional[int] = None) -> List[Problem]:
    """All contract problems of ``out_dir`` for the run described by ``in_dir/env.yaml``.

    ``tasks`` (subset of 'training', 'mining', 'infer') overrides env.yaml's run_* flags;
    ``object_type`` overrides config.yaml's (default 2, detection). Raises ValueError only for
    an unknown task name; defects of the files are returned, never raised.
    """
    return _verify(in_dir, out_dir, tasks, object_type)[0]


def main_verify(in_dir: str, out_dir: str, tasks: Optional[List[str]] = None,
                object_type: Optional[int] = None) -> int:
    """Print one line per problem and a summary; 1 if anything is wrong, else 0."""
    try:
        problems, ran = _verify(in_dir, out_dir, tasks, object_type)
    except ValueError as e:
        print(f"verify: {e}")
        return 1
    for p in problems:
        print(p)
    if problems:
        print(f"verify: {len(problems)} problem(s)")
        return 1
    print(f"verify: OK ({', '.join(ran)})")
    return 0
