"""Detection inference speed: images per second at batch 1 and at batch N, same model and
images (random weights: speed does not depend on them).

    .venv/bin/python bench/infer_det.py [--preset rtmdet_tiny|tiny] [--images 32] [--batch 8]
        [--size 640x480] [--workers 2]
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
    ap.add_argument("--preset", default="rtmdet_tiny")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    import torch
    from mmengine.config import Config
    from mmdet.apis import init_detector
    from PIL import Image

    from ymir_tasks.common.runtime import device
    from ymir_tasks.det.config import preset_file
    from ymir_tasks.common.mmdet_config import apply_detection_cap
    from ymir_tasks.common.mmdet_infer import batches, detect, inference_dataset
    from ymir_tasks.common.mmconfig import set_num_classes

    rng = np.random.RandomState(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-det-"))
    items = []
    for i in range(args.images):
        p = tmp / f"{i:05d}.jpg"
        Image.fromarray(rng.randint(0, 255, size=(h, w, 3), dtype=np.uint8)).save(p, quality=90)
        items.append((i, str(p)))
    cfg = Config.fromfile(str(preset_file(args.preset)))
    size = int(cfg.ymir_preset["img_size"])
    set_num_classes(cfg.model, 2)
    cfg.test_dataloader = dict(dataset=inference_dataset(["a", "b"], size))
    apply_detection_cap(cfg, 1000, 0.2)  # the default conf_threshold
    dev = device()
    model = init_detector(cfg, checkpoint=None, device=dev).eval()
    print(f"preset {args.preset} ({size} px input), {args.images} images of {w}x{h}, device {dev}, "
          f"torch threads {torch.get_num_threads()}, loader workers {args.workers}")
    for batch in batches(items[:2], 2, 0):  # warm-up
        detect(model, [img for *_, img in batch])
    rates = {}
    for bs in (1, args.batch):
        t0 = time.perf_counter()
        n = 0
        for batch in batches(items, bs, args.workers):
            n += len(detect(model, [img for *_, img in batch]))
        dt = time.perf_counter() - t0
        rates[bs] = n / dt
        print(f"batch {bs:3d}: {n / dt:7.2f} images/s  ({dt:.2f} s for {n} images)")
    print(f"speed-up of batch {args.batch} over batch 1: {rates[args.batch] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
