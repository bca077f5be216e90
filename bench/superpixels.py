"""Superpixels: speed, region quality and what they do to the RSAL ranking, for every way to them.

Methods: every ``superpixel_algorithm`` (the older image's slico, slic, mslic, seeds from OpenCV,
and fast_slic, the fast-slic package), SLICO on the image downscaled 2x and 4x with the labels
upsampled (nearest), and the vectorised torch SLIC (``ymir_tasks/seg/mining/torch_slic.py``; on
the GPU when there is one).

1. Speed: milliseconds per image at 512x1024 and 1024x2048 (HxW), K = 1024, median of 3.
2. Quality against the ground-truth masks of the sample generator's segmentation scenes (at
   256x512, K = 256: the same ~22 px grid step as K = 1024 at 512x1024): boundary recall (ground-
   truth boundary pixels within 2 px of a superpixel boundary; higher is better) and
   under-segmentation error (Neubert & Protzel: pixels a superpixel leaks across ground-truth
   regions, over all pixels; lower is better), means over 40 scenes.
3. Ranking: RSAL image scores (BvSB, class balance, the real pool step) of 200 sample-workspace
   candidates with a briefly trained tiny model, each method against slico: Spearman's rho of
   the scores and the overlap of the top 20.

    .venv/bin/python bench/superpixels.py [--skip-speed] [--skip-quality] [--skip-ranking]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _downscaled(factor: int) -> Callable[[np.ndarray, int], np.ndarray]:
    def run(rgb: np.ndarray, k: int) -> np.ndarray:
        import cv2

        from ymir_tasks.seg.mining.superpixels import superpixels
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
        labels = superpixels(small, "slico", k)
        return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return run


def methods() -> Dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    from ymir_tasks.seg.mining.superpixels import METHODS, superpixels
    from ymir_tasks.seg.mining.torch_slic import torch_slic

    table: Dict[str, Callable] = {m: (lambda rgb, k, m=m: superpixels(rgb, m, k)) for m in METHODS}
    table["slico 1/2"] = _downscaled(2)
    table["slico 1/4"] = _downscaled(4)
    table["torch slic"] = lambda rgb, k: torch_slic(rgb, k)
    table["torch slic 10 it"] = lambda rgb, k: torch_slic(rgb, k, iterations=10)
    return table


def speed(table) -> None:
    from mining_seg import natural

    print("\n1. speed, K = 1024 (ms per image, median of 3; superpixel count)")
    for h, w in ((512, 1024), (1024, 2048)):
        rgb = natural(h, w)
        for name, fn in table.items():
            fn(rgb, 1024)  # warm-up (torch's first call, OpenCV's pools)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                labels = fn(rgb, 1024)
                times.append(time.perf_counter() - t0)
            print(f"  {h}x{w} {name:16s} {statistics.median(times) * 1000:7.0f} ms  {int(labels.max()) + 1:5d} regions",
                  flush=True)


def boundary(labels: np.ndarray) -> np.ndarray:
    b = np.zeros(labels.shape, bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def boundary_recall(sp: np.ndarray, gt: np.ndarray, tolerance: int = 2) -> float:
    import cv2

    g = boundary(gt)
    near = cv2.dilate(boundary(sp).astype(np.uint8), np.ones((2 * tolerance + 1,) * 2, np.uint8)) > 0
    return float((g & near).sum() / max(1, g.sum()))


def undersegmentation_error(sp: np.ndarray, gt: np.ndarray) -> float:
    s = sp.ravel().astype(np.int64)
    _, g = np.unique(gt.ravel(), return_inverse=True)
    ng = int(g.max()) + 1
    joint = np.bincount(s * ng + g, minlength=(int(s.max()) + 1) * ng).reshape(-1, ng)
    size = joint.sum(1, keepdims=True)
    return float(np.minimum(joint, size - joint)[joint > 0].sum() / s.size)


def quality(table) -> None:
    from ymir_tasks.seg.workspace import make_seg_sample

    print("\n2. quality at 256x512, K = 256, 40 scenes of the sample generator (mean)")
    rng = np.random.RandomState(0)
    scenes = []
    for _ in range(40):
        s = make_seg_sample(rng, width=512, height=256, max_objects=8)
        import cv2
        rgb = cv2.imdecode(np.frombuffer(s.image_bytes, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        scenes.append((np.ascontiguousarray(rgb), s.mask))
    for name, fn in table.items():
        br, ue, n = [], [], []
        for rgb, gt in scenes:
            sp = fn(rgb, 256)
            br.append(boundary_recall(sp, gt))
            ue.append(undersegmentation_error(sp, gt))
            n.append(int(sp.max()) + 1)
        print(f"  {name:16s} boundary recall {np.mean(br):.3f}  under-segmentation error {np.mean(ue):.4f}  "
              f"{np.mean(n):.0f} regions", flush=True)


def ranking(table) -> None:
    """The real mining run (in this process, no workers) with each method put in place of the
    superpixel call; diversity and balance off, so result.tsv holds the RSAL scores."""
    from executor.demo import _handoff_model
    from executor.runner import run
    from executor.workspace import make_workspace
    from ymir_tasks.seg.mining import mine as mine_module

    base = Path(tempfile.mkdtemp(prefix="bench-sp-"))
    train = base / "train"
    make_workspace(str(train), "seg", "train", num_train=24, num_val=4,
                   overrides={"config_file": "tiny", "max_iters": 60, "interval": 60, "workers_per_gpu": 0})
    assert run(str(train / "in"), str(train / "out")) == 0
    scores: Dict[str, Dict[str, float]] = {}
    original = mine_module.superpixels
    try:
        for name, fn in table.items():
            ws = base / f"mine-{len(scores)}"
            make_workspace(str(ws), "seg", "mine", num_candidates=200, seed=5,
                           overrides={"workers_per_gpu": 0, "diversity": 0.0, "balance_classes": False,
                                      "max_kept_mining_image": 0})
            _handoff_model(train / "out", ws)
            mine_module.superpixels = lambda rgb, method, k, fn=fn: fn(rgb, k)
            assert run(str(ws / "in"), str(ws / "out"), only="mining") == 0
            rows = [ln.split("\t") for ln in (ws / "out" / "result.tsv").read_text().splitlines() if ln]
            scores[name] = {r[0]: float(r[1]) for r in rows}
    finally:
        mine_module.superpixels = original
    from scipy.stats import spearmanr
    keys = sorted(scores["slico"])
    ref = np.asarray([scores["slico"][k] for k in keys])
    top = set(np.argsort(-ref, kind="stable")[:20])
    print(f"\n3. RSAL ranking of {len(keys)} candidates against slico's (K = 1024, a 60-iteration tiny model)")
    for name, sc in scores.items():
        s = np.asarray([sc[k] for k in keys])
        overlap = len(top & set(np.argsort(-s, kind="stable")[:20]))
        print(f"  {name:16s} Spearman {spearmanr(ref, s).statistic:.3f}  top-20 overlap {overlap:2d}/20", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-ranking", action="store_true")
    args = ap.parse_args()
    import torch
    table = methods()
    print(f"torch threads {torch.get_num_threads()}, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    if not args.skip_speed:
        speed(table)
    if not args.skip_quality:
        quality(table)
    if not args.skip_ranking:
        ranking(table)


if __name__ == "__main__":
    main()
