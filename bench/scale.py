"""Large pools: peak memory and throughput of inference and mining at 1k / 10k / 100k candidates.

Each kind's tiny preset is trained for a moment (the weights do not matter here), then a pool of N
candidates is built from the sample generator's few candidate files, hard-linked under N names
(one image's decode costs the same whichever name it has; the disk stays small). Every run is the
real task in its own process (``python -m executor infer|mine``, the kind's default miner and
order, DataLoader workers as configured); the figures are the process's own:

    peak RSS   ``ru_maxrss`` of the task's process (and, apart, of its largest child: the workers)
    rate       candidates per second over the whole run, model loading and writing included

    .venv/bin/python bench/scale.py [--kinds det,seg,iseg,det3d] [--counts 1000,10000,100000]
                                    [--tasks infer,mine] [--dir /tmp/bench-scale] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# A moment of training per kind: enough for a model stage, nothing more.
TRAIN = {
    "det": {"config_file": "tiny", "max_epochs": 1, "val_interval": 1, "samples_per_gpu": 4, "workers_per_gpu": 0},
    "seg": {"config_file": "tiny", "max_iters": 2, "interval": 2, "samples_per_gpu": 4, "workers_per_gpu": 0},
    "iseg": {"config_file": "tiny", "max_epochs": 1, "val_interval": 1, "samples_per_gpu": 4, "workers_per_gpu": 0},
    "det3d": {"config_file": "tiny", "max_epochs": 1, "val_interval": 1, "samples_per_gpu": 4, "workers_per_gpu": 0},
}
# What a user on 2 cores would set: batches of 16, two decoding workers, the default miner.
TASK = {"samples_per_gpu": 16, "workers_per_gpu": 2}
SOURCE_CANDIDATES = 16

RUNNER = ("import resource, sys\nfrom executor.runner import run\n"
          "rc = run(sys.argv[1], sys.argv[2], only=sys.argv[3])\n"
          "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
          "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(rc)\n")


def trained(kind: str, base: Path) -> Path:
    from executor.runner import run
    from executor.workspace import make_workspace

    ws = base / f"{kind}-train"
    if not (ws / "out" / "models" / "result.yaml").is_file():
        shutil.rmtree(ws, ignore_errors=True)
        make_workspace(str(ws), kind, "train", num_train=8, num_val=2, overrides=TRAIN[kind])
        with open(base / f"{kind}-train.log", "w") as log:
            sys.stdout, old = log, sys.stdout
            try:
                assert run(str(ws / "in"), str(ws / "out"), only="training") == 0, f"{kind} training failed"
            finally:
                sys.stdout = old
    return ws


def pool(kind: str, base: Path, n: int, train: Path) -> Path:
    """A mining + inference workspace whose candidate index has ``n`` names for a few files."""
    from executor.demo import _handoff_model
    from executor.workspace import make_workspace

    ws = base / f"{kind}-{n}"
    shutil.rmtree(ws, ignore_errors=True)
    make_workspace(str(ws), kind, "mine", num_candidates=SOURCE_CANDIDATES, seed=1, overrides=TASK)
    _handoff_model(train / "out", ws)
    in_dir = ws / "in"
    rows = [line.split("\t") for line in (in_dir / "candidate-index.tsv").read_text().splitlines() if line]
    links = in_dir / "pool"
    lines = []
    for i in range(n):
        cols = []
        for col in rows[i % len(rows)]:  # the asset, and for 3D its sparse-label file
            src = in_dir / col[len("/in/"):]
            name = f"{i // 1000:03d}/{i:07d}-{src.name}"
            dst = links / src.parent.name / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, dst)
            cols.append("/in/" + str(dst.relative_to(in_dir)))
        lines.append("\t".join(cols) + "\n")
    (in_dir / "candidate-index.tsv").write_text("".join(lines))
    return ws


def measure(ws: Path, task: str) -> Dict[str, Any]:
    out = ws / f"out-{task}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    only = {"infer": "infer", "mine": "mining"}[task]
    t0 = time.perf_counter()
    with open(ws / f"{task}.log", "w") as log:
        r = subprocess.run([sys.executable, "-c", RUNNER, str(ws / "in"), str(out), only], stdout=subprocess.PIPE,
                           stderr=log, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    peak = next((ln.split() for ln in r.stdout.splitlines() if ln.startswith("PEAK")), None)
    if r.returncode != 0 or peak is None:
        raise SystemExit(f"{ws.name} {task} failed ({r.returncode}); see {ws / (task + '.log')}")
    result = out / ("infer-result.json" if task == "infer" else "result.tsv")
    return {"wall_s": round(wall, 1), "rate": round(n_candidates(ws) / wall, 1),
            "rss_mib": round(int(peak[1]) / 1024), "child_rss_mib": round(int(peak[2]) / 1024),
            "result_mib": round(result.stat().st_size / 2 ** 20, 1)}


def n_candidates(ws: Path) -> int:
    return sum(1 for line in (ws / "in" / "candidate-index.tsv").read_text().splitlines() if line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="det,seg,iseg,det3d")
    ap.add_argument("--counts", default="1000,10000,100000")
    ap.add_argument("--tasks", default="infer,mine")
    ap.add_argument("--dir", default="/tmp/bench-scale")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, Any]] = []
    print(f"{'kind':6} {'task':5} {'candidates':>10} {'rate /s':>8} {'wall s':>7} {'peak RSS MiB':>12} "
          f"{'worker MiB':>10} {'result MiB':>10}", flush=True)
    for kind in args.kinds.split(","):
        train = trained(kind, base)
        for n in (int(c) for c in args.counts.split(",")):
            ws = pool(kind, base, n, train)
            for task in args.tasks.split(","):
                m = dict(kind=kind, task=task, candidates=n, **measure(ws, task))
                rows.append(m)
                print(f"{kind:6} {task:5} {n:10d} {m['rate']:8.1f} {m['wall_s']:7.1f} {m['rss_mib']:12d} "
                      f"{m['child_rss_mib']:10d} {m['result_mib']:10.1f}", flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps(rows, indent=1))
            shutil.rmtree(ws)
    for kind in args.kinds.split(","):  # flat memory: the largest pool against the smallest
        for task in args.tasks.split(","):
            mine = [r for r in rows if r["kind"] == kind and r["task"] == task]
            if len(mine) > 1:
                lo, hi = mine[0], mine[-1]
                print(f"{kind} {task}: peak RSS at {hi['candidates']} = {hi['rss_mib'] / lo['rss_mib']:.2f}x "
                      f"the {lo['candidates']} one; rate {hi['rate'] / lo['rate']:.2f}x")


if __name__ == "__main__":
    main()
