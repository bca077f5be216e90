"""Helpers of the bad-input and bounds tests: tiny stages trained at the lower bounds of each
kind's schema, mining / infer workspaces that receive them as the platform hands models over,
and the ways candidates and training data get broken in real pools."""
from __future__ import annotations

import functools
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import yaml

from executor.demo import _handoff_model
from executor.monitor import parse_monitor
from executor.workspace import make_workspace

KINDS = ("det", "seg", "det3d")

# Each kind trained at the lower bound of every knob that has one (the smallest batch that can
# train, one epoch / iteration, an evaluation every step, no checkpoint kept, early stopping
# after one evaluation, the strictest count threshold, one detection per image, one SS3D round).
LOWER_BOUNDS: Dict[str, Dict[str, Any]] = {
    "det": {"config_file": "tiny", "max_epochs": 1, "val_interval": 1, "samples_per_gpu": 1, "workers_per_gpu": 0,
            "max_keep_checkpoints": -1, "early_stop_patience": 1, "conf_threshold": 1.0, "max_detections": 1,
            "learning_rate": 0.0},
    "seg": {"config_file": "tiny", "max_iters": 1, "interval": 1, "samples_per_gpu": 2, "workers_per_gpu": 0,
            "max_keep_ckpts": -1, "early_stop_patience": 1},
    "det3d": {"config_file": "tiny", "max_epochs": 1, "val_interval": 1, "samples_per_gpu": 1, "workers_per_gpu": 0,
              "max_keep_checkpoints": -1, "early_stop_patience": 1, "conf_threshold": 1.0, "max_detections": 1,
              "ss3d_iterations": 1, "ss3d_epochs": 1},
}
# Enough data for each kind to learn a little in the few steps above.
DATA = {"det": dict(num_train=24, num_val=8), "seg": dict(num_train=16, num_val=8),
        "det3d": dict(num_train=16, num_val=8)}


def run_cli(ws: Path, *extra: str, timeout: int = 600, env: Dict[str, str] = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "executor", "run", "--in", str(ws / "in"), "--out",
                           str(ws / "out"), *extra], capture_output=True, text=True, timeout=timeout, env=env)


def train_stage(kind: str, ws: Path, **overrides: Any) -> Path:
    make_workspace(str(ws), kind, "train", overrides=dict(LOWER_BOUNDS[kind], **overrides), **DATA[kind])
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-4000:]
    return ws


def monitor(ws: Path) -> Dict[str, Any]:
    return parse_monitor((ws / "out" / "monitor.txt").read_text())


def task_ws(stage_ws: Path, dest: Path, kind: str, task: str = "mine", n: int = 12, ws_seed: int = 5,
            **cfg: Any) -> Path:
    """A mining (+ infer) or infer workspace of ``n`` new candidates with ``stage_ws``'s best stage."""
    make_workspace(str(dest), kind, task, num_candidates=n, seed=ws_seed,
                   overrides=dict({"samples_per_gpu": 4, "workers_per_gpu": 0}, **cfg))
    _handoff_model(stage_ws / "out", dest)
    return dest


def set_config(ws: Path, **values: Any) -> None:
    path = ws / "in" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.update(values)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def candidates(ws: Path) -> List[str]:
    """Candidate paths as written in the index (container paths)."""
    return [ln.split("\t")[0] for ln in (ws / "in" / "candidate-index.tsv").read_text().splitlines() if ln.strip()]


def local(ws: Path, path: str) -> Path:
    return ws / "in" / path[len("/in/"):]


@functools.lru_cache(maxsize=None)
def png_bomb(w: int = 30000, h: int = 30000) -> bytes:
    """A valid grey PNG of ``w`` x ``h`` zeros: about 1 MB on disk, ``w * h`` bytes once decoded."""
    def chunk(t: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
    z = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    body = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _cut(data: bytes) -> bytes:
    return data[:len(data) // 2]


# The ways an image in a real pool is broken.
IMAGE_BREAKS = {
    "truncated": _cut,
    "header_only": lambda d: d[:64],
    "text": lambda d: b"this is not an image, it only has the name of one\n",
    "html": lambda d: b"<!DOCTYPE html><html><body>403 Forbidden</body></html>\n",
    "empty": lambda d: b"",
    "garbage": lambda d: bytes(np.random.RandomState(len(d)).randint(0, 256, 4096, dtype=np.uint8)),
    "bomb": lambda d: png_bomb(),
    "cut_early": lambda d: d[:len(d) // 10],
}


def _scan_break(kind: str):
    def f(data: bytes) -> bytes:
        pts = np.frombuffer(data, dtype=np.float32).reshape(-1, 4).copy()
        if kind == "nan":
            pts[len(pts) // 2, 1] = np.nan
        elif kind == "inf":
            pts[0, 0] = np.inf
        return pts.tobytes()
    return f


SCAN_BREAKS = {
    "cut": lambda d: d[:1001],
    "empty": lambda d: b"",
    "text": lambda d: b"x y z intensity\n1 2 3\n",
    "nan": _scan_break("nan"),
    "inf": _scan_break("inf"),
}


def break_files(ws: Path, paths: List[str], kind: str) -> Dict[str, str]:
    """Break each candidate (container path) in turn with the kind's breaks; returns path -> break."""
    breaks = SCAN_BREAKS if kind == "det3d" else IMAGE_BREAKS
    names = list(breaks)
    done = {}
    for i, p in enumerate(paths):
        name = names[i % len(names)]
        f = local(ws, p)
        data = f.read_bytes()
        f.chmod(0o644)
        f.write_bytes(breaks[name](data))
        done[p] = name
    return done


ARBITRARY_UID = 4321  # no passwd entry, as the uid the platform passes with --user usually has none


def run_as_arbitrary_uid(ws: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``ymir-executor run`` on ``ws`` the way the platform starts the container: uid 4321 (no
    passwd entry), no environment at all (no HOME), a read-only /in and a writable /out. ``ws``
    must lie in a folder every user may enter.

    On this machine the interpreter lives under root's private home and CI clones into a private
    folder, neither of which another uid may enter; a mount namespace shows both at readable
    places for this one command (inside the image everything is readable anyway).
    """
    import shlex
    import shutil

    q = shlex.quote
    repo = Path(__file__).resolve().parent.parent
    base = Path(sys.base_prefix).resolve()
    for p in [ws / "in", *(ws / "in").rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o555 if p.is_dir() else 0o444)
    if (ws / "out").exists():
        shutil.rmtree(ws / "out")
    (ws / "out").mkdir()
    (ws / "out").chmod(0o777)
    ns = ws / "ns"
    bound_repo, bound_base = ns / "repo", ns / "python"
    for d in (bound_repo, bound_base):
        d.mkdir(parents=True, exist_ok=True)
    steps = [f"mount --bind {q(str(repo))} {bound_repo}", f"mount --bind {q(str(base))} {bound_base}"]
    # the venv's interpreter and stdlib are under ``base``: if a folder above it is private,
    # cover that folder with an empty public one holding only ``base``
    private = [p for p in reversed(base.parents) if p != Path("/") and p.stat().st_mode & 0o001 == 0]
    if private:
        steps += [f"mount -t tmpfs -o mode=755 tmpfs {q(str(private[0]))}", f"mkdir -p {q(str(base))}",
                  f"mount --bind {bound_base} {q(str(base))}"]
    steps.append(f"exec setpriv --reuid={ARBITRARY_UID} --regid={ARBITRARY_UID} --clear-groups "
                 f"env -i PATH=/usr/bin:/bin PYTHONPATH={bound_repo} {bound_repo}/.venv/bin/python -m executor run "
                 f"--in {q(str(ws / 'in'))} --out {q(str(ws / 'out'))}")
    return subprocess.run(["unshare", "-m", "sh", "-c", " && ".join(steps)], capture_output=True, text=True,
                          timeout=timeout)
