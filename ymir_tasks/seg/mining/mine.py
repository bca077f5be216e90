"""Segmentation mining (RSAL / RIPU, semi-image-level) over large pools.

Pipeline: candidates are decoded (and, for RSAL, cut into superpixels) in DataLoader workers
while the model runs batched forward passes; per image only small arrays leave the scorer
(region scores and classes for RSAL, picked windows for RIPU) and go to a per-process file
under ``/out/mining-tmp``, so memory stays flat with the pool size. Processes share the
candidates through :class:`~ymir_tasks.common.shards.CandidateShards`, so the merged
``result.tsv`` equals the single-process one. Then: class-balance weights and the
percentile threshold over all regions (RSAL), image scores, ``result.tsv``, and lossless PNG
masks (255 = label this region) of the first ``max_kept_mining_image`` images in
``/out/masks/<image stem>.png``.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from executor.images import load_image
from executor.index import CandidateList
from executor.results import UNREADABLE_SCORE

from ...common import runtime
from ...common.candidates import candidate_batches
from ...common.diversity import (FeatureStore, FeatureTap, load_features, mining_order, tap_module, wants_order,
                                 write_ordered_mining_result)
from ...common.previews import REGION, banner, caption, fit, previews_safely, tint
from ...common.shards import CandidateShards
from ..infer import find_model, load_model, segment
from .scoring import (class_weights, percentile_rank, pixel_uncertainty, probabilities, region_scores,
                      ripu_pick, ripu_score_map, select_regions, streamed_percentile)
from .superpixels import superpixels

log = logging.getLogger(__name__)


class _LoadWithSuperpixels:
    """Decodes an image and computes its superpixels, in a DataLoader worker."""

    def __init__(self, method: Optional[str], k: int) -> None:
        self.method = method
        self.k = k

    def __call__(self, item: Tuple[int, str]):
        # No cv2.setNumThreads here: changing OpenCV's pool in a forked child can deadlock; the
        # parent sets 0 (no pool) before forking, the workers are the parallelism.
        idx, path = item
        rgb = load_image(path)
        sp = superpixels(rgb, self.method, self.k) if self.method else None
        return idx, path, np.ascontiguousarray(rgb[:, :, ::-1]), sp


def _forward(model, images: List[np.ndarray], fp16: bool):
    """Per-image CxHxW logits at the original size (mmseg's postprocess), fp16 on GPU if asked."""
    return [r.seg_logits.data for r in segment(model, images, fp16)]


@runtime.distributed_entry
def mine(ctx, launcher) -> None:
    import torch

    from ...common.options import parse_img_size

    p = ctx.cfg.params
    algorithm = p["mining_algorithm"]
    k_regions = p["topk_superpixel_score"]
    stage = find_model(ctx)
    meta = stage.meta
    model = load_model(ctx, stage, runtime.device(), parse_img_size(meta["img_size"], (512, 512), stage.meta_file))
    dev = next(model.parameters()).device
    num_classes = len(meta["model_classes"])
    cands = CandidateList.read(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map)
    shards = CandidateShards(ctx, launcher, "mining", cands, p["max_broken_ratio"])
    tmp = shards.dir
    os.makedirs(os.path.join(tmp, "superpixels"), exist_ok=True)
    method = p["superpixel_algorithm"] if algorithm == "RSAL" else None
    loader = candidate_batches(shards.part, _LoadWithSuperpixels(method, p["max_superpixel_per_image"]),
                               p["samples_per_gpu"], p["workers_per_gpu"], shards.broken)
    log.info("mining %s (%s): %d of %d candidates in this process, batch %d, %d workers, device %s", algorithm,
             method or "windows", len(shards.part), len(cands), p["samples_per_gpu"], p["workers_per_gpu"], dev)
    done = 0
    ordered = wants_order(p)
    feats = FeatureStore(len(cands)) if ordered else None
    first_real = 1 if meta.get("with_background") else 0  # the learnt background is no class to balance
    tap = FeatureTap(tap_module(model)) if ordered else None
    with tap if tap is not None else contextlib.nullcontext():
        for batch in loader:
            logits = _forward(model, [img for _, _, img, _ in batch], p["fp16"])
            rows = tap.take(len(batch)) if tap is not None else [None] * len(batch)
            for (idx, path, _, sp), lg, row in zip(batch, logits, rows):
                prob = probabilities(lg.to(dev))
                if algorithm == "RSAL":
                    u = pixel_uncertainty(prob, p["uncertainty_method"])
                    labels = torch.from_numpy(sp).to(dev)
                    mean, dominant = region_scores(u, prob.argmax(0), labels, num_classes)
                    shards.write(idx, (mean.cpu().tolist(), dominant.cpu().tolist()))
                    _save_labels(os.path.join(tmp, "superpixels", f"{idx}.png"), sp)
                else:
                    score, _, _ = ripu_score_map(prob, p["ripu_region_radius"])
                    picks = ripu_pick(score, k_regions, p["ripu_region_radius"])
                    shards.write(idx, (sum(v for _, _, v in picks), [[y, x] for y, x, _ in picks] +
                                       [list(prob.shape[1:])]))
                if feats is not None:
                    hist = torch.bincount(prob.argmax(0).flatten(), minlength=num_classes)[first_real:]
                    feats.put(idx, row, int(hist.argmax()) + first_real if int(hist.sum()) else -1)
                done += 1
                if shards.rank == 0:
                    ctx.progress(0.9 * shards.progress(done))
    if feats is not None:
        feats.save(tmp, shards.rank)
    if shards.gather(ctx):
        if algorithm == "RSAL":
            scores, selected = rsal_image_scores(lambda: ((i, a, b) for i, (a, b) in shards.records()), len(cands),
                                                 num_classes, p["max_kept_mining_image"], k_regions,
                                                 p["class_balance"], tmp)
        else:
            scores, selected = _ripu_image_scores(shards.records, len(cands))
        feat_mat, cls_arr = load_features(tmp, shards.world, len(cands)) if ordered else (None, None)
        order = mining_order(scores, feat_mat, cls_arr, p)
        write_ordered_mining_result(ctx.env, cands.raw, scores, feat_mat, cls_arr, p, order)
        del feat_mat, cls_arr  # 256 bytes a candidate, not needed by the masks and previews
        _write_masks(ctx, cands, order, selected(order[:max(0, p["max_kept_mining_image"])]), algorithm, p, tmp)
        log.info("mining: wrote %s (%d candidates)", ctx.env.output.mining_result_file, len(cands))
        previews_safely(ctx, lambda: region_previews(ctx, cands, order, scores, algorithm))
    shards.finish()


def region_previews(ctx, cands: CandidateList, order: Sequence[int], scores: Sequence[float],
                    algorithm: str) -> List[Tuple[str, np.ndarray]]:
    """result.tsv's first images with their regions to label (the PNG masks) tinted over them."""
    import cv2

    masks_dir = os.path.join(ctx.env.output.root_dir, "masks")
    pictures = []
    for rank, i in enumerate(order[:max(0, ctx.cfg.params["preview_images"])]):
        path, shown, score = cands.local(i), cands.raw[i], scores[i]
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            continue
        pic, _ = fit(img)
        mask_file = os.path.join(masks_dir, Path(path).stem + ".png")
        # no file: OpenCV would warn on stderr for each
        mask = cv2.imread(mask_file, cv2.IMREAD_GRAYSCALE) if os.path.isfile(mask_file) else None
        extra = "no mask kept (max_kept_mining_image)"
        if mask is not None:
            tint(pic, mask, REGION, 0.45)
            extra = f"regions to label (pink): {100.0 * float((mask > 0).mean()):.1f} % of the image"
        pictures.append((shown, banner(pic, caption(rank, shown, score, algorithm, extra))))
    return pictures


def _save_labels(path: str, labels: np.ndarray) -> None:
    import cv2
    cv2.imwrite(path, labels.astype(np.uint16))  # K <= 65535; lossless


def rsal_image_scores(records: Callable[[], Iterable], n: int, num_classes: int, kept: int, k: int,
                      class_balance: bool, tmp_dir: str) -> Tuple[List[float], Callable[[Iterable[int]], Dict]]:
    """RSAL's pool step over per-image ``(index, region scores, dominant classes)`` records,
    read again on each pass (``records()`` gives a fresh iterator): class counts, the percentile
    threshold over all regions (on disk, exact, in flat memory), each image's score; and a
    function giving the selected regions of the images asked for (the few whose masks are
    written: a pool of 10^5 images selects some 10^7 regions, kept nowhere)."""
    counts = np.zeros(num_classes, np.int64)
    total = 0
    for _, scores, classes in records():
        counts += np.bincount(np.asarray(classes, np.int64), minlength=num_classes)
        total += len(scores)
    weights = class_weights(counts) if class_balance else np.ones(num_classes)
    # All weighted region scores, on disk: the pool may hold millions of regions. A plain file,
    # not a memmap: mapped pages would count in the process's memory.
    pool_path = os.path.join(tmp_dir, "regions.f64")
    with open(pool_path, "wb") as f:
        for _, scores, classes in records():
            f.write((np.asarray(scores, np.float64) * weights[np.asarray(classes, np.int64)]).tobytes())
    pct = percentile_rank(kept, k, total)
    threshold = streamed_percentile(pool_path, total, pct) if total else 0.0
    os.remove(pool_path)
    log.info("RSAL: %d regions, class weights %s, percentile %d → threshold %.6f", total,
             np.round(weights, 4).tolist(), pct, threshold)
    image_scores = [UNREADABLE_SCORE] * n  # a candidate without a record could not be read
    for idx, scores, classes in records():
        w = np.asarray(scores, np.float64) * weights[np.asarray(classes, np.int64)]
        image_scores[idx] = float(w[select_regions(w, k, threshold)].sum())

    def selected(wanted: Iterable[int]) -> Dict[int, List[int]]:
        want = set(wanted)
        out: Dict[int, List[int]] = {}
        for idx, scores, classes in records():
            if idx in want:
                w = np.asarray(scores, np.float64) * weights[np.asarray(classes, np.int64)]
                out[idx] = select_regions(w, k, threshold).tolist()
        return out
    return image_scores, selected


def _ripu_image_scores(records: Callable[[], Iterable], n: int) -> Tuple[List[float], Callable[[Iterable[int]], Dict]]:
    image_scores = [UNREADABLE_SCORE] * n  # a candidate without a record could not be read
    for idx, (score, _) in records():
        image_scores[idx] = float(score)

    def selected(wanted: Iterable[int]) -> Dict[int, List]:
        want = set(wanted)
        return {idx: picks for idx, (_, picks) in records() if idx in want}
    return image_scores, selected


def _write_masks(ctx, cands, order: List[int], selected, algorithm: str, p: Dict, tmp: str) -> None:
    """The regions to label of the first ``max_kept_mining_image`` images of result.tsv (its
    order: what the platform takes)."""
    import cv2

    kept = p["max_kept_mining_image"]
    if kept <= 0:
        return
    masks_dir = os.path.join(ctx.env.output.root_dir, "masks")
    os.makedirs(masks_dir, exist_ok=True)
    order = [i for i in order[:kept] if i in selected]
    r = p["ripu_region_radius"]
    for i in order:
        if algorithm == "RSAL":
            labels = cv2.imread(os.path.join(tmp, "superpixels", f"{i}.png"), cv2.IMREAD_UNCHANGED)
            mask = np.isin(labels, np.asarray(selected[i], labels.dtype)).astype(np.uint8) * 255
        else:
            *picks, (h, w) = selected[i]
            mask = np.zeros((h, w), np.uint8)
            for y, x in picks:
                mask[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = 255
        cv2.imwrite(os.path.join(masks_dir, Path(cands.local(i)).stem + ".png"), mask)
