"""Segmentation inference speed: images per second at batch 1 and at batch N, same
model and images (random weights: speed does not depend on them).

    .venv/bin/python bench/infer_seg.py [--preset tiny|fastscnn] [--images 32] [--batch 8]
        [--size 512x256] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fastscnn")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", default="512x256")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    import torch
    from mmengine.config import Config
    from mmseg.apis import init_model
    from PIL import Image

    from ymir_tasks.common.runtime import device
    from ymir_tasks.common.mmconfig import set_num_classes
    from ymir_tasks.seg.config import preset_file, test_pipeline
    from ymir_tasks.seg.infer import predict_batches

    rng = np.random.RandomState(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    paths = []
    for i in range(args.images):
        img = rng.randint(0, 255, size=(h, w, 3), dtype=np.uint8)
        p = tmp / f"{i:05d}.jpg"
        Image.fromarray(img).save(p, quality=90)
        paths.append(str(p))
    cfg = Config.fromfile(str(preset_file(args.preset)))
    set_num_classes(cfg.model, 3)
    cfg.test_pipeline = test_pipeline((w, h), False)
    dev = device()
    model = init_model(cfg, checkpoint=None, device=dev)
    model.eval()
    print(f"preset {args.preset}, {args.images} images of {w}x{h}, device {dev}, torch threads "
          f"{torch.get_num_threads()}, loader workers {args.workers}")
    list(predict_batches(model, paths[:2], 2, 0))  # warm-up
    rates = {}
    for batch in (1, args.batch):
        t0 = time.perf_counter()
        n = sum(1 for _ in predict_batches(model, paths, batch, args.workers))
        dt = time.perf_counter() - t0
        rates[batch] = n / dt
        print(f"batch {batch:3d}: {n / dt:7.2f} images/s  ({dt:.2f} s for {n} images)")
    print(f"speed-up of batch {args.batch} over batch 1: {rates[args.batch] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
