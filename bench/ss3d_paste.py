"""SS3D with and without pasting bank instances into the cut background (seed 000, step 2).

Trains the tiny PointPillars on the sparse labels (one labelled object per frame, SS3D's setting),
then ``--rounds`` SS3D rounds, once with ``ss3d_paste=0`` and once with ``ss3d_paste=N``, per seed;
prints the val 3D mAP after the rounds (strict, KITTI's IoU, and loose, 0.5 / 0.25: the tiny model's
strict AP stays near 0) and the bank's pseudo-label count.

    .venv/bin/python bench/ss3d_paste.py [--seeds 0,1] [--paste 2] [--out build/ss3d-paste]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from executor.workspace import make_workspace  # noqa: E402


def run_one(dest: Path, seed: int, paste: int, a) -> dict:
    done = dest / "RESULT.json"
    if done.is_file():
        return json.loads(done.read_text())
    make_workspace(str(dest), "det3d", "train", seed=seed, num_train=a.train, num_val=a.val,
                   overrides=dict(config_file="tiny", max_epochs=a.epochs, val_interval=a.epochs, samples_per_gpu=4,
                                  workers_per_gpu=0, ss3d_iterations=a.rounds, ss3d_epochs=a.ss3d_epochs,
                                  ss3d_paste=paste, pretrained_weights="none"))
    env_path = dest / "in" / "env.yaml"
    env = yaml.safe_load(env_path.read_text())
    env["input"]["training_index_file"] = "/in/train-index-sparse.tsv"
    env_path.write_text(yaml.safe_dump(env))
    t0 = time.time()
    with open(dest / "train.log", "w") as f:
        rc = subprocess.run([sys.executable, "-m", "executor", "run", "--in", str(dest / "in"), "--out",
                             str(dest / "out")], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if rc:
        raise SystemExit(f"{dest}: training failed (exit {rc}), see {dest / 'train.log'}")
    res = yaml.safe_load((dest / "out" / "models" / "result.yaml").read_text())
    rounds = sorted((dest / "out" / "ss3d").glob("round*.json"))
    last = json.loads(rounds[-1].read_text()) if rounds else {}
    best = res["best_stage_name"]
    evaluation = json.loads((dest / "out" / "models" / "attachments" / best / "evaluation.json").read_text())
    r = {"seed": seed, "paste": paste, "mAP": float(res["model_stages"][best]["mAP"]),
         "mAP_loose": float(evaluation["mAP_loose"]), "bank_pseudo": last.get("bank_pseudo", 0),
         "seconds": round(time.time() - t0, 1)}
    done.write_text(json.dumps(r))
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--paste", type=int, default=2)
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--val", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ss3d-epochs", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "build" / "ss3d-paste"))
    a = ap.parse_args()
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        for paste in (0, a.paste):
            r = run_one(Path(a.out) / f"seed{seed}-paste{paste}", seed, paste, a)
            print(f"[ss3d-paste] seed {seed} paste {paste}: val 3D mAP {r['mAP']:.3f} (loose {r['mAP_loose']:.3f}), bank {r['bank_pseudo']} pseudo "
                  f"labels ({r['seconds']:.0f} s)", flush=True)
            rows.append(r)
    n = len(rows) // 2
    print(f"\n| ss3d_paste | val 3D mAP (strict) mean ± std, {n} seeds | loose mean ± std | loose per seed | "
          f"bank pseudo labels |\n| --- | --- | --- | --- | --- |")
    for paste in (0, a.paste):
        sel = [r for r in rows if r["paste"] == paste]
        m, lo = [r["mAP"] for r in sel], [r["mAP_loose"] for r in sel]
        print(f"| {paste} | {np.mean(m):.3f} ± {np.std(m):.3f} | {np.mean(lo):.3f} ± {np.std(lo):.3f} | "
              f"{', '.join(f'{x:.3f}' for x in lo)} | {np.mean([r['bank_pseudo'] for r in sel]):.0f} |")


if __name__ == "__main__":
    main()
