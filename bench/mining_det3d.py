"""3D instance-bank mining on synthetic scenes with the seeded simulated detector
(3d-mining.md §4): the bank table with calibrated thresholds against SS3D's fixed 0.9 / 0.9,
the Spearman correlation of the frame scores with the number of missing instances, and the time
per frame of the mining logic (detector excluded).

    .venv/bin/python bench/mining_det3d.py [--frames 64] [--seed 0] [--views 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ymir_tasks.det3d.scenes import CLASSES, make_scenes  # noqa: E402
from ymir_tasks.det3d.bank import BankEvaluator, MiningParams, spearman  # noqa: E402
from ymir_tasks.det3d.bank import Frame  # noqa: E402
from ymir_tasks.det3d.mining import mine_in_memory  # noqa: E402
from ymir_tasks.det3d.simulate import SimulatedDetector  # noqa: E402


def run(frames: int, seed: int, views: int, calibrate: bool) -> dict:
    scenes = make_scenes(seed, frames)
    keys = [f"/in/assets/frame{i:04d}.bin" for i in range(frames)]
    det = SimulatedDetector({k: s.full for k, s in zip(keys, scenes)}, seed=seed)
    items = [(Frame(k, k, s.sparse), s.points) for k, s in zip(keys, scenes)]
    params = MiningParams(calibrate=calibrate)
    t0 = time.perf_counter()
    th, results, _ = mine_in_memory(items, det, params, len(CLASSES), aug_views=views, aug_seed=seed)
    elapsed = time.perf_counter() - t0
    ev = BankEvaluator(CLASSES)
    for (f, _), s, r in zip(items, scenes, results):
        ev.add(f.key, s.full, f.known, r.pseudo)
    missing = [ev.missing_per_frame[k] for k in keys]
    return {"thresholds": th.table(CLASSES), "table": ev.table(), "rows": ev.rows(), "seconds": elapsed,
            "spearman_qa": spearman([r.qa for r in results], missing),
            "spearman_active": spearman([r.active for r in results], missing)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--views", type=int, default=1)
    a = ap.parse_args()
    for label, cal in (("fixed 0.9 / 0.9 (SS3D)", False), ("calibrated (20 % quantile)", True)):
        out = run(a.frames, a.seed, a.views, cal)
        allrow = out["rows"][-1]
        print(f"== {label}: {a.frames} frames, {a.views} augmented view(s)")
        for t in out["thresholds"]:
            print(f"   threshold {t['class']:<11} score {t['score']:.3f} consistency {t['consistency']:.3f} "
                  f"({'calibrated' if t['calibrated'] else 'fallback'}, {t['samples']} samples)")
        print(out["table"])
        print(f"   recall of missing @3D IoU>0.5 {allrow['recall@0.5']:.3f}, >0.7 {allrow['recall@0.7']:.3f}; "
              f"precision @0.5 {allrow['precision@0.5']:.3f}; pseudo {allrow['pseudo']} of {allrow['missing']} missing")
        print(f"   Spearman(score, missing per frame): qa {out['spearman_qa']:.3f}, active {out['spearman_active']:.3f}")
        print(f"   mining logic: {1000 * out['seconds'] / a.frames:.1f} ms per frame (simulated detector included)")


if __name__ == "__main__":
    main()
