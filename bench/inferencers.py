"""Plain OpenMMLab inference against ours, same model, weights and images, in one run.

What a user would run instead of the image: mmdet's ``DetInferencer`` (detection, instance
segmentation) and mmseg's ``MMSegInferencer`` (semantic segmentation), one image at a time (their
default ``batch_size=1``), reading the files themselves. Ours: the candidates decoded in DataLoader
workers and one forward pass per batch (``samples_per_gpu``), the code the infer task runs.

Each kind's model is trained on the sample workspace (the tiny detection presets to AP 1.0, so
there are objects to compare; Fast-SCNN for a moment), its stage loaded as the infer task loads it, and both sides get the same
weights (saved once as a checkpoint for the inferencer) and the same PNG images (lossless: no
JPEG decoder differences). Printed: images per second of each side, the ratio, and the equality
of the predictions (detections: same objects, labels equal, boxes and scores within float noise;
segmentation: the fraction of equal pixels).

    .venv/bin/python bench/inferencers.py [--kinds det,seg,iseg] [--images 64] [--batch 16] [--workers 2]
                                  [--repeat 3] [--dir DIR]
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN = {  # the tiny presets the tests train to AP 1.0 (objects to compare), Fast-SCNN briefly
    "det": {"config_file": "tiny", "max_epochs": 40, "val_interval": 40, "samples_per_gpu": 8, "workers_per_gpu": 0},
    "iseg": {"config_file": "tiny", "max_epochs": 60, "val_interval": 60, "samples_per_gpu": 8, "workers_per_gpu": 0},
    "seg": {"config_file": "fastscnn", "max_iters": 4, "interval": 4, "samples_per_gpu": 4, "workers_per_gpu": 0},
}
SCORE_THR = 0.05  # both sides keep the objects from this score (the inferencer keeps all, we filter after)


def trained_stage(kind: str, base: Path):
    from executor.runner import run
    from executor.workspace import make_workspace
    from ymir_tasks.common.models import MODEL_META, Stage, _stage_dir_from_results

    ws = base / f"{kind}-train"
    if not (ws / "out" / "models" / "result.yaml").is_file():
        shutil.rmtree(ws, ignore_errors=True)
        make_workspace(str(ws), kind, "train", overrides=TRAIN[kind])
        log = open(base / f"{kind}-train.log", "w")  # left open: the task's log handler keeps it
        sys.stdout, old = log, sys.stdout
        try:
            assert run(str(ws / "in"), str(ws / "out"), only="training") == 0, f"{kind} training failed"
        finally:
            sys.stdout = old
    d = _stage_dir_from_results(str(ws / "out" / "models"))
    meta = yaml.safe_load(open(os.path.join(d, MODEL_META)))
    return Stage(dir=d, meta_file=os.path.join(d, MODEL_META), meta=meta,
                 config=os.path.join(d, meta["config"]), weights=os.path.join(d, meta["weights"]))


def images(kind: str, base: Path, n: int) -> List[str]:
    """``n`` PNG copies of the sample workspace's candidates (different images, lossless)."""
    from PIL import Image

    from executor.workspace import make_workspace

    ws = base / f"{kind}-pool"
    shutil.rmtree(ws, ignore_errors=True)
    make_workspace(str(ws), kind, "mine", num_candidates=n, seed=3)
    rows = [ln.split("\t")[0] for ln in (ws / "in" / "candidate-index.tsv").read_text().splitlines() if ln]
    out = []
    for i, row in enumerate(rows):
        dst = base / f"{kind}-png" / f"{i:05d}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.open(ws / "in" / row[len("/in/"):]).convert("RGB").save(dst)
        out.append(str(dst))
    return out


def checkpoint(model, classes, path: Path) -> str:
    import torch
    torch.save({"state_dict": model.state_dict(), "meta": {"dataset_meta": {"classes": tuple(classes)}}}, path)
    return str(path)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare_objects(a: List[Dict], b: List[Dict]) -> Tuple[int, int, float, float]:
    """(images with the same objects, objects, max |box diff| px, max |score diff|) of two sides."""
    same, objects, dbox, dscore = 0, 0, 0.0, 0.0
    for x, y in zip(a, b):
        objects += len(x["scores"])
        if len(x["scores"]) != len(y["scores"]) or not (x["labels"] == y["labels"]).all():
            continue
        if len(x["scores"]):
            dbox = max(dbox, float(np.abs(x["boxes"] - y["boxes"]).max()))
            dscore = max(dscore, float(np.abs(x["scores"] - y["scores"]).max()))
            if "masks" in x:
                same += int((x["masks"] == y["masks"]).mean() > 0.999)
                continue
        same += 1
    return same, objects, dbox, dscore


def det_like(kind: str, stage, paths: List[str], args, base: Path) -> None:
    from mmdet.apis import DetInferencer

    from ymir_tasks.common.candidates import BrokenCandidates
    from ymir_tasks.common.mmdet_infer import batches, input_side, load_model, predict

    from ymir_tasks.common.options import parse_img_size

    side = parse_img_size(stage.meta["img_size"], (640, 640), stage.meta_file)[0]
    model = load_model(SimpleNamespace(cfg={}), stage, "cpu", side, 100, SCORE_THR)
    cfg = copy.deepcopy(model.cfg)
    cfg.test_dataloader.dataset.pipeline[0] = dict(type="LoadImageFromFile")  # the inferencer reads files
    inferencer = DetInferencer(model=cfg, weights=checkpoint(model, stage.class_names, base / f"{kind}.pth"),
                               device="cpu", show_progress=False)

    def plain(paths):
        res = inferencer(paths, batch_size=1, return_datasamples=True, no_save_vis=True, no_save_pred=True)
        out = []
        for r in res["predictions"]:
            p = r.pred_instances
            keep = p.scores >= SCORE_THR
            item = {"boxes": p.bboxes[keep].numpy(), "scores": p.scores[keep].numpy(),
                    "labels": p.labels[keep].numpy()}
            if "masks" in p:
                item["masks"] = p.masks[keep].numpy().astype(bool)
            out.append(item)
        return out

    def ours(paths):
        out = []
        for batch in batches(list(enumerate(paths)), args.batch, args.workers, BrokenCandidates(1.0, len(paths), "infer")):
            out += predict(model, [img for *_, img in batch], min_score=SCORE_THR)
        return out

    report(kind, f"{stage.meta.get('config_file', '')} at {input_side(model)} px", "DetInferencer", plain, ours,
           lambda a, b: "{} of {} images with the same objects ({} objects), max |box diff| {:.2g} px, "
                        "max |score diff| {:.2g}".format(compare_objects(a, b)[0], len(a), *compare_objects(a, b)[1:]),
           paths, args)


def seg(stage, paths: List[str], args, base: Path) -> None:
    from mmseg.apis import MMSegInferencer

    from ymir_tasks.common.candidates import BrokenCandidates
    from ymir_tasks.seg.infer import load_model, predict_batches

    from ymir_tasks.common.options import parse_img_size

    size = parse_img_size(stage.meta["img_size"], (512, 512), stage.meta_file)
    model = load_model(SimpleNamespace(cfg={}), stage, "cpu", size)
    cfg = copy.deepcopy(model.cfg)
    cfg.test_dataloader = dict(dataset=dict(pipeline=[dict(type="LoadImageFromFile")] + list(cfg.test_pipeline[1:])))
    inferencer = MMSegInferencer(model=cfg, weights=checkpoint(model, stage.meta["model_classes"], base / "seg.pth"),
                                 device="cpu")

    def plain(paths):
        res = inferencer(paths, batch_size=1, return_datasamples=True)
        return [r.pred_sem_seg.data[0].numpy() for r in res]

    def ours(paths):
        return [pred for _, _, pred in predict_batches(model, list(enumerate(paths)), args.batch, args.workers,
                                                        BrokenCandidates(1.0, len(paths), "infer"))]

    def equal(a, b):
        px = sum(int((x == y).sum()) for x, y in zip(a, b))
        total = sum(x.size for x in a)
        return f"{sum(int((x == y).all()) for x, y in zip(a, b))} of {len(a)} images equal, {px / total:.6f} of pixels"

    report("seg", f"{stage.meta.get('config_file', '')} at {size}", "MMSegInferencer", plain, ours, equal,
           paths, args)


def report(kind, model_name, plain_name, plain, ours, compare, paths, args) -> None:
    """Both sides in turn ``--repeat`` times (the machine's drift hits both); medians and the
    median of the paired ratios."""
    plain(paths[:2]), ours(paths[:2])  # warm-up (first calls allocate)
    n = len(paths)
    runs = []
    for _ in range(args.repeat):
        t_plain, a = timed(lambda: plain(paths))
        t_ours, b = timed(lambda: ours(paths))
        runs.append((t_plain, t_ours))
    tp, to = (float(np.median([r[i] for r in runs])) for i in (0, 1))
    ratio = float(np.median([p / o for p, o in runs]))
    print(f"{kind:5} {model_name}: {plain_name} batch 1 {n / tp:6.2f} img/s, ours batch {args.batch} with "
          f"{args.workers} workers {n / to:6.2f} img/s: {ratio:.2f}x (median of {args.repeat}); {compare(a, b)}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="det,seg,iseg")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="")
    args = ap.parse_args()
    import torch
    base = Path(args.dir or tempfile.mkdtemp(prefix="bench-inferencers-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"{args.images} images per kind, CPU, torch threads {torch.get_num_threads()}", flush=True)
    for kind in args.kinds.split(","):
        stage = trained_stage(kind, base)
        paths = images(kind, base, args.images)
        if kind == "seg":
            seg(stage, paths, args, base)
        else:
            det_like(kind, stage, paths, args, base)


if __name__ == "__main__":
    main()
