"""``ymir-executor demo``: one full round per task kind on the bundled sample workspace.

For an installed kind: make a training workspace, train, verify; hand the best
stage to a mining+infer workspace as the platform would (``/in/models/<stage>/``,
``model_params_path``), mine and infer, verify; print a summary. For a kind with
no implementation yet it builds the workspace, reads its inputs back with the
contract readers and says so plainly.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from .annotations import CocoSegReader, detect_annotation_format, read_ark
from .env import PathMap, load_env
from .images import image_size
from .index import iter_candidates, read_index
from .progress import StepBar, quiet_output
from .report import PREVIEW_DIR, REPORT_FILE, write_combined_report
from .registry import TaskKind, all_kinds, kind_for_object_type
from .runner import run
from .verify import verify_output
from .workspace import make_workspace


def check_inputs(ws: Path) -> Dict[str, int]:
    """Read a workspace back with the contract readers; return what was found."""
    pm = PathMap(str(ws / "in"), str(ws / "out"))
    env = load_env(str(ws / "in" / "env.yaml"), pm)
    with open(env.input.config_file, "r", encoding="utf-8") as f:
        config = yaml.safe_load(f)
    class_names = config["class_names"]
    read_back = kind_for_object_type(config.get("object_type", 2)).hook("read_back")
    if read_back is not None:  # a kind with assets of its own (point clouds)
        return read_back(env, pm, class_names)
    found = {"images": 0, "objects": 0}
    for index in (env.input.training_index_file, env.input.val_index_file):
        if not index:
            continue
        coco: Optional[CocoSegReader] = None
        for entry in read_index(index, path_map=pm):
            image_size(entry.image)
            found["images"] += 1
            fmt = detect_annotation_format(entry.annotation)
            if fmt == "ark":
                found["objects"] += len(read_ark(entry.annotation, class_names))
            elif fmt == "coco":
                coco = coco or CocoSegReader(entry.annotation, class_names)
                found["objects"] += len(set(coco.mask(entry.image).ravel()) - {255})
    if env.input.candidate_index_file:
        for entry in iter_candidates(env.input.candidate_index_file, path_map=pm):
            image_size(entry.image)
            found["images"] += 1
    return found


def _handoff_model(train_out: Path, mine_ws: Path) -> List[str]:
    """Copy the trained model into the mining workspace as the platform extracts it."""
    with open(train_out / "models" / "result.yaml", "r", encoding="utf-8") as f:
        result = yaml.safe_load(f)
    best = result["best_stage_name"]
    files = result["model_stages"][best]["files"]
    dest = mine_ws / "in" / "models" / best
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        src = train_out / "models" / best / name
        if not src.is_file():
            src = train_out / "models" / name
        shutil.copyfile(src, dest / name)
    info = {"executor_config": {}, "stages": result["model_stages"], "best_stage_name": best,
            "package_version": "2.0.0"}
    (mine_ws / "in" / "models" / "ymir-info.yaml").write_text(yaml.safe_dump(info, sort_keys=False))
    cfg_path = mine_ws / "in" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model_params_path"] = [f"/in/models/{best}/{name}" for name in files]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return files


def _step(label: str, log_file: Path, in_dir: Path, out_dir: Path) -> Tuple[int, List[str], float]:
    """One ``run`` with its output in ``log_file`` and a progress bar on the terminal; on failure
    the log's last lines are shown under the bar."""
    t0 = time.time()
    with quiet_output(str(log_file)) as term:
        bar = StepBar(label, term)
        rc = run(str(in_dir), str(out_dir), on_progress=bar.update)
        problems = verify_output(str(in_dir), str(out_dir))
        bar.close("verify OK" if rc == 0 and not problems else f"FAILED (exit {rc}, {len(problems)} problem(s))")
        for p in problems:
            term.write(f"    {p}\n")
        if rc != 0:
            term.write(f"    the log ends ({log_file}):\n")
            for line in _log_tail(log_file):
                term.write(f"    | {line}\n")
    return rc, problems, time.time() - t0


def _log_tail(path: Path, n: int = 12) -> List[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ln[:160] for ln in lines if ln.strip()][-n:]


def demo_kind(kind: TaskKind, root: Path) -> Dict[str, str]:
    row: Dict[str, str] = {"kind": kind.name}
    train_ws = root / kind.name / "train"
    logs = root / kind.name
    t0 = time.time()
    with quiet_output(str(logs / "prepare.log")):
        make_workspace(str(train_ws), kind.name, "train", overrides=kind.demo_overrides.get("training"))
        found = check_inputs(train_ws)
    row["inputs"] = f"{found['images']} images, {found['objects']} objects"
    if not kind.implemented:
        row["result"] = "not installed (inputs verified only)"
        return row
    rc, problems, took = _step(f"{kind.name} · train", logs / "train.log", train_ws / "in", train_ws / "out")
    row["train"] = f"{took:.0f} s"
    if rc != 0 or problems:
        row["result"] = "training FAILED"
        return row
    # A mining+infer round where the kind mines, else an infer round, as the platform would.
    task = "mine" if kind.supports("mining") else "infer"
    mine_ws = root / kind.name / task
    overrides = dict(kind.demo_overrides.get("infer", {}), **kind.demo_overrides.get("mining", {}))
    label = "mine+infer" if task == "mine" else "infer"
    with quiet_output(str(logs / "prepare.log")):
        make_workspace(str(mine_ws), kind.name, task, overrides=overrides)
        _handoff_model(train_ws / "out", mine_ws)
    rc, problems, took = _step(f"{kind.name} · {label}", logs / f"{task}.log", mine_ws / "in", mine_ws / "out")
    row[label] = f"{took:.0f} s"
    if rc == 0:
        with open(train_ws / "out" / "models" / "result.yaml", encoding="utf-8") as f:
            result = yaml.safe_load(f)
        row[f"val {kind.main_metric}"] = f"{result['model_stages'][result['best_stage_name']][kind.main_metric]:.3f}"
        summary = kind.hook("demo_summary")
        if summary is not None:  # the kind's own figures of the round (against ground truth, the bank)
            with quiet_output(str(logs / "prepare.log")):
                row.update(summary(train_ws, mine_ws))
    row["result"] = "OK" if rc == 0 and not problems else f"{label} FAILED"
    row["time"] = f"{time.time() - t0:.0f} s"
    return row


# The summary table's columns; every other figure of a row goes on the line under it.
COLUMNS = ("kind", "result", "train", "mine+infer", "time")


def _summary(rows: List[Dict[str, str]]) -> List[str]:
    widths = {c: max([len(c)] + [len(r.get(c, "-")) for r in rows]) for c in COLUMNS}
    lines = ["  " + "  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    for r in rows:
        lines.append("  " + "  ".join(r.get(c, "-").ljust(widths[c]) for c in COLUMNS))
        extra = [f"{k} {v}" for k, v in r.items() if k not in COLUMNS]
        if extra:
            lines.append("      " + "; ".join(extra))
    return lines


def demo(root: str = "workspace/demo", kinds: Optional[List[str]] = None) -> int:
    root_path = Path(root)
    selected = [k for k in all_kinds() if not kinds or k.name in kinds]
    print(f"ymir-executor demo: per kind, train on a sample workspace, then mine + infer with the trained "
          f"model, as the platform runs them; full logs in {root_path}/<kind>/*.log", flush=True)
    rows = [demo_kind(kind, root_path) for kind in selected]
    print("\nsummary")
    for line in _summary(rows):
        print(line)
    parts = [(f"{k.name} · {task}", str(root_path / k.name / task / "out")) for k in selected
             for task in ("train", "mine", "infer")]
    report = write_combined_report(parts, str(root_path / REPORT_FILE), "ymir-executor demo")
    print(f"outputs: {root_path}/<kind>/<task>/out; mining pictures in .../mine/out/{PREVIEW_DIR}")
    print(f"report: {report}", flush=True)
    failed = [r for r in rows if r.get("result") != "OK" and any(k.name == r["kind"] and k.implemented
                                                                 for k in selected)]
    return 1 if failed else 0
