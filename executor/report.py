"""``ymir-executor report OUT``: one self-contained HTML page of a finished ``/out``.

What ran and how it ended (monitor.txt, run-summary.json), the stages and their metrics
(result.yaml), the evaluation tables and pictures of the stages' attachments, the first lines of
result.tsv with the mining previews, and the counts of infer-result.json. Pictures are embedded
(JPEG, data URIs): the page opens from a file, with no server and no network.
"""
from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from .monitor import parse_monitor

# The files of /out beside the contract's that this page reads (one definition, the writers import them)
REPORT_FILE = "report.html"
PREVIEW_DIR = "mining-previews"  # the kinds' mining previews (ymir_tasks/common/previews.py)
CONTACT_SHEET = "contact-sheet.png"
RUN_SUMMARY = "run-summary.json"  # what ran and for how long (the runner)
STATES = {1: "pending", 2: "running", 3: "done", 4: "error"}
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1280px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.ok{color:#1a7f37;font-weight:600} .err{color:#cf222e;font-weight:600} .muted{color:#777}
.row{display:flex;gap:20px;align-items:flex-start;flex-wrap:wrap} .row img{max-width:610px} .grid{display:flex;flex-wrap:wrap;gap:8px} .grid figure{margin:0;width:300px}
.grid img{width:300px;border:1px solid #ccc} figcaption{font-size:12px;color:#555;word-break:break-all}
h2.part{font-size:20px;margin-top:40px;border-bottom:3px solid #444} img.wide{max-width:100%;border:1px solid #ccc} pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _img(path: Path, max_side: int = 1600, css: str = "") -> str:
    """``path`` as an embedded JPEG (scaled down to ``max_side``)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return f'<span class="muted">{_esc(path.name)}: not a picture</span>'
    scale = max_side / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    data = base64.b64encode(buf.tobytes()).decode() if ok else ""
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} alt="{_esc(path.name)}" src="data:image/jpeg;base64,{data}">'


def _table(header: List[str], rows: List[List[Any]]) -> str:
    span = len(rows[0]) if len(header) == 1 and rows else 1  # a title over a key / value table
    head = "".join(f"<th colspan=\"{span}\">{_esc(h)}</th>" if span > 1 else f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)):
        return _esc(", ".join(str(x) for x in v))
    return _esc(v)


def _read_yaml(path: Path) -> Optional[Dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _read_json(path: Path) -> Optional[Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _status(out: Path) -> str:
    parts = []
    summary = _read_json(out / RUN_SUMMARY) or {}
    try:
        rec = parse_monitor((out / "monitor.txt").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        rec = None
    if rec is not None:
        failed = rec["state"] == 4
        state = "finished" if int(rec["state"]) == 2 and float(rec["percent"]) >= 1.0 else \
            STATES.get(int(rec["state"]), rec["state"])
        word = f'<span class="err">failed ({rec.get("return_code")})</span>' if failed else \
            f'<span class="ok">{_esc(state)}</span>'
        parts.append(f"<p>task <b>{_esc(rec['task_id'])}</b>: {word}, {float(rec['percent']) * 100:.0f} %"
                     + (f" &mdash; {_esc(rec.get('message', ''))}" if failed else "") + "</p>")
        if failed and rec["details"]:
            parts.append("<pre>" + _esc("\n".join(rec["details"])) + "</pre>")
    else:
        parts.append('<p class="muted">no monitor.txt</p>')
    if summary:
        secs = summary.get("seconds", {})
        total = float(summary.get("finished", 0)) - float(summary.get("started", 0))
        rows = [[t, f"{float(s):.1f} s"] for t, s in secs.items()] + [["total", f"{total:.1f} s"]]
        parts.append(f"<p>kind <b>{_esc(summary.get('kind', '?'))}</b> (object_type "
                     f"{_esc(summary.get('object_type', '?'))})</p>" + _table(["task", "time"], rows))
    return "".join(parts)


def _stages(out: Path) -> str:
    doc = _read_yaml(out / "models" / "result.yaml")
    if not doc or not isinstance(doc.get("model_stages"), dict):
        return ""
    stages = doc["model_stages"]
    keys: List[str] = []
    for st in stages.values():
        keys += [k for k, v in st.items() if isinstance(v, (int, float)) and k != "timestamp" and k not in keys]
    rows = [[("&#9733; " if name == doc.get("best_stage_name") else "") + name] + [st.get(k, "") for k in keys]
            + [st.get("files", [])] for name, st in stages.items()]
    parts = ["<h2>Model stages</h2>", _table(["stage"] + keys + ["files"], rows).replace("&amp;#9733;", "&#9733;")]
    att_root = out / "models" / "attachments"
    shown: List[Any] = []
    for section, files in (doc.get("attachments") or {}).items():
        tables = [n for n in files or [] if n.endswith(".json")]
        pictures = [n for n in files or [] if n.lower().endswith((".png", ".jpg", ".jpeg"))]
        bodies = [b for b in (_read_json(att_root / section / n) for n in tables) if isinstance(b, dict)]
        if bodies and all(b in shown for b in bodies):  # 'last' is often 'best' again
            parts.append(f"<p class=\"muted\">{_esc(section)}: the same evaluation as above</p>")
            continue
        shown += bodies
        parts.append(f"<h3>{_esc(section)}</h3>" + "".join(_evaluation(b) for b in bodies))
        # the charts side by side, the rows of val images under them
        charts = [n for n in pictures if "predictions" not in n]
        parts.append('<div class="row">' + "".join(_img(att_root / section / n, 700) for n in charts) + "</div>")
        parts += [_img(att_root / section / n, css="wide") for n in pictures if n not in charts]
    return "".join(parts)


def _evaluation(body: Mapping[str, Any]) -> str:
    """Flat figures in one table, each nested table (per class, per IoU …) in its own."""
    flat = [[k, v] for k, v in body.items() if not isinstance(v, (dict, list))]
    parts = [_table(["figure", "value"], flat)] if flat else []
    for k, v in body.items():
        if isinstance(v, dict) and v and all(not isinstance(x, (dict, list)) for x in v.values()):
            parts.append(_table([k], [[a, b] for a, b in v.items()]))
    return '<div class="row">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>"


def _mining(out: Path, top: int = 30) -> str:
    tsv = out / "result.tsv"
    if not tsv.is_file():
        return ""
    rows = []
    with open(tsv, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n < top and line.strip():
                rows.append(line.rstrip("\n").split("\t")[:2])
    total = n + 1 if rows else 0
    parts = ["<h2>Mining</h2>", f"<p>{total} candidates ranked; the platform takes the first topk lines.</p>"]
    previews = out / PREVIEW_DIR
    sheet = previews / CONTACT_SHEET
    if sheet.is_file():
        parts.append(_img(sheet, css="wide"))
    pics = sorted(previews.glob("[0-9][0-9]-*.png")) if previews.is_dir() else []
    if pics:
        parts.append(f"<details><summary>the {len(pics)} previews one by one</summary><div class=\"grid\">"
                     + "".join(f"<figure>{_img(p, 600)}<figcaption>{_esc(p.name)}</figcaption></figure>" for p in pics)
                     + "</div></details>")
    others = sorted(p for p in previews.glob("*.png") if p not in pics and p != sheet) if previews.is_dir() else []
    for p in others:  # the kind's own pictures of the task (the 3D bank table)
        parts.append(f"<h3>{_esc(p.stem)}</h3>" + _img(p, css="wide"))
    parts.append(f"<p>result.tsv, first {len(rows)} lines</p>" + _table(["#", "candidate", "score"],
                                                                          [[i + 1, *r] for i, r in enumerate(rows)]))
    return "".join(parts)


def _infer(out: Path) -> str:
    doc = _read_json(out / "infer-result.json")
    if not isinstance(doc, dict):
        return ""
    rows = []
    for section, body in doc.items():
        if isinstance(body, dict):
            n_obj = sum(len(v.get("boxes", v.get("objects", []))) for v in body.values() if isinstance(v, dict))
            rows.append([section, len(body), n_obj])
        elif isinstance(body, list):
            rows.append([section, len(body), ""])
    return "<h2>Inference</h2>" + _table(["section", "entries", "objects"], rows) if rows else ""


def _sections(out: Path) -> str:
    return "".join([_status(out), _stages(out), _mining(out), _infer(out)])


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>{body}</body></html>")


def _write(path: str, page: str) -> str:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
    return path


def write_report(out_dir: str, dest: Optional[str] = None) -> str:
    """Write the page of one output folder (default ``OUT/report.html``); returns its path."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out_dir}: no such folder")
    return _write(dest or str(out / REPORT_FILE), _page(f"ymir-executor report: {out.resolve()}", _sections(out)))


def write_combined_report(parts: Sequence[Tuple[str, str]], dest: str, title: str) -> str:
    """One page over several output folders ((heading, out dir) each), e.g. every step of the demo."""
    body = "".join(f'<h2 class="part">{_esc(heading)}</h2><p class="muted">{_esc(out)}</p>{_sections(Path(out))}'
                   for heading, out in parts if Path(out).is_dir())
    return _write(dest, _page(title, body))
