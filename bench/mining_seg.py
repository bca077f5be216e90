"""Segmentation mining costs, printed (no assertions on time).

1. Per image at 512x1024 and 1024x2048 (HxW): decode, superpixels (each method), forward
   (Fast-SCNN, 19 classes, random weights), scoring (BvSB + region aggregation; RIPU map).
2. Region aggregation (bincount) against a per-region loop like the older image's, on the same
   inputs: asserts equal region scores and dominant classes, prints the speed ratio.
3. Peak memory of a whole mining run on 200 and on 2000 candidates (tiny model, 128x96 images).

    .venv/bin/python bench/mining_seg.py [--sizes 512x1024,1024x2048] [--memory 200,2000] [--skip-memory]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def natural(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([128 + 60 * np.sin(xx / 37.0) + 30 * np.cos(yy / 23.0), 128 + 50 * np.cos(xx / 19.0 + yy / 41.0),
                  128 + 60 * np.sin((xx + yy) / 29.0)], -1) + rng.randint(-20, 21, size=(h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def timed(fn, repeat=2):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def loop_regions(u: np.ndarray, pred: np.ndarray, sp: np.ndarray, c: int):
    """The older image's aggregation: one full-image scan per region (all labels, P1 fixed)."""
    n = int(sp.max()) + 1
    mean, dom = np.zeros(n), np.zeros(n, np.int64)
    for idx in range(n):
        pix = sp == idx
        mean[idx] = u[pix].mean()
        dom[idx] = np.bincount(pred[pix], minlength=c).argmax()
    return mean, dom


def per_image(sizes, k: int) -> None:
    import torch
    from mmengine.config import Config
    from mmseg.apis import init_model
    from PIL import Image

    from executor.images import load_image
    from ymir_tasks.common.mmconfig import set_num_classes
    from ymir_tasks.seg.config import preset_file, test_pipeline
    from ymir_tasks.seg.mining.mine import _forward
    from ymir_tasks.seg.mining.scoring import (pixel_uncertainty, probabilities, region_scores, ripu_pick,
                                               ripu_score_map)
    from ymir_tasks.seg.mining.superpixels import METHODS, superpixels

    classes = 19
    print(f"torch threads {torch.get_num_threads()}, K = {k}, {classes} classes, Fast-SCNN, CPU")
    for h, w in sizes:
        rgb = natural(h, w)
        path = Path(tempfile.mkdtemp()) / "img.jpg"
        Image.fromarray(rgb).save(path, quality=92)
        t_dec, img = timed(lambda: load_image(str(path)))
        cfg = Config.fromfile(str(preset_file("fastscnn")))
        set_num_classes(cfg.model, classes)
        cfg.test_pipeline = test_pipeline((w, h), False)
        model = init_model(cfg, checkpoint=None, device="cpu").eval()
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        t_fwd, logits = timed(lambda: _forward(model, [bgr], False)[0])
        sp_times, sp = {}, None
        for m in METHODS:
            t, labels = timed(lambda: superpixels(img, m, k), repeat=1)
            sp_times[m] = (t, int(labels.max()) + 1)
            if m == "slico":
                sp = labels

        def rsal():
            prob = probabilities(logits)
            u = pixel_uncertainty(prob, "BvSB")
            return region_scores(u, prob.argmax(0), torch.from_numpy(sp), classes)

        def ripu():
            s, _, _ = ripu_score_map(probabilities(logits), 1)
            return ripu_pick(s, 3, 1)
        t_rsal, _ = timed(rsal)
        t_ripu, _ = timed(ripu)
        print(f"\n{h}x{w}: decode {t_dec * 1000:.0f} ms, forward {t_fwd * 1000:.0f} ms, "
              f"RSAL scoring {t_rsal * 1000:.0f} ms, RIPU scoring {t_ripu * 1000:.0f} ms")
        for m, (t, n) in sp_times.items():
            print(f"  superpixels {m:6s}: {t * 1000:7.0f} ms ({n} superpixels)")
        # aggregation: vectorised against a per-region loop, same inputs
        prob = probabilities(logits)
        u = pixel_uncertainty(prob, "BvSB")
        pred = prob.argmax(0)
        t_vec, (mean, dom) = timed(lambda: region_scores(u, pred, torch.from_numpy(sp), classes))
        t_loop, (mean2, dom2) = timed(lambda: loop_regions(u.double().numpy(), pred.numpy(), sp, classes), repeat=1)
        assert np.allclose(mean.numpy(), mean2, rtol=1e-9, atol=1e-12), "region scores differ"
        assert (dom.numpy() == dom2).all(), "dominant classes differ"
        print(f"  aggregation over {len(mean)} regions: bincount {t_vec * 1000:.1f} ms, per-region loop "
              f"{t_loop * 1000:.0f} ms: {t_loop / t_vec:.0f}x faster, equal scores and classes")


def memory(counts) -> None:
    from executor.demo import _handoff_model
    from executor.runner import run
    from executor.workspace import make_workspace

    base = Path(tempfile.mkdtemp(prefix="bench-mine-"))
    train = base / "train"
    make_workspace(str(train), "seg", "train", num_train=8, num_val=2,
                   overrides={"config_file": "tiny", "max_iters": 2, "interval": 2, "workers_per_gpu": 0})
    assert run(str(train / "in"), str(train / "out")) == 0
    print()
    for n in counts:
        ws = base / f"mine{n}"
        make_workspace(str(ws), "seg", "mine", num_candidates=n, seed=1,
                       overrides={"samples_per_gpu": 16, "workers_per_gpu": 2, "max_superpixel_per_image": 256,
                                  "max_kept_mining_image": 50})
        _handoff_model(train / "out", ws)
        code = ("import resource,sys; from executor.runner import run; "
                f"rc=run('{ws}/in','{ws}/out', only='mining'); "
                "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        dt = time.perf_counter() - t0
        peak = next(l for l in r.stdout.splitlines() if l.startswith("PEAK")).split()
        lines = (ws / "out" / "result.tsv").read_text().count("\n")
        print(f"mining {n:5d} candidates (RSAL, slico, K=256): peak RSS main {int(peak[1]) / 1024:.0f} MiB, "
              f"largest worker {int(peak[2]) / 1024:.0f} MiB, {dt:.0f} s ({n / dt:.1f} images/s), "
              f"{lines} lines in result.tsv")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512x1024,1024x2048")
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--memory", default="200,2000")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    per_image(sizes, args.k)
    if not args.skip_memory:
        memory([int(n) for n in args.memory.split(",")])


if __name__ == "__main__":
    main()
