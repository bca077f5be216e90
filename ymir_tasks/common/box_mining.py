"""Mining over an mmdet model's detections: random, entropy, cald, aldd, asm (see
mining-algorithms.md §4); the detection and instance-segmentation kinds mine with it, a kind
may add algorithms of its own (``extra``).

Decisions:

* **random** is seeded and per image (a hash of the seed and the candidate path), so scores
  are reproducible and do not depend on sharding.
* **entropy**: ``-Σ s·log2 s`` over the post-NMS detections above ``mining_conf_threshold``
  (P16, the older image's crash, cannot happen: scores are plain floats here).
* **cald** follows the PAPER's direction, not the older image's: the informative images are
  the least consistent ones, so the score is ``-consistency`` (highest = least consistent).
  Per reference box and augmentation (flip, cutout, resize 0.8, rotate 5°): the best-IoU
  prediction gives ``|IoU + 0.5·(c_ref + c_aug)·(1 - JS) - β|`` (binary JS of the two
  confidences, β = 1.3); an augmentation's consistency is the minimum over boxes (0 when it
  detects nothing); the image's is the mean over augmentations.
* **aldd** works for any dense detector: it takes the per-level class-score maps of the
  detection head (RTMDet here, not only YOLOX), sigmoid, resized to the input size, and per
  class computes ``EoM − MoE`` with a 9×9 mean (stride 1, padding excluded), the maximum over
  32×32 cells, then the mean; the image score is ``Σ_c w_c · s_c`` with
  ``class_distribution_scores`` as the weights.
* **No detection**: entropy and cald rank such images LAST (score −1, below every real
  score). Mined pools hold many true negatives, and empty predictions would otherwise fill the
  platform's top-k; aldd needs no detections (it reads dense maps) and random ignores them.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from executor.errors import config_error
from executor.index import CandidateList
from executor.results import UNREADABLE_SCORE

from .coco_eval import box_iou
from .diversity import (FeatureStore, FeatureTap, load_features, tap_module, wants_order,
                        write_ordered_mining_result)
from .mmdet_config import test_pipeline
from .mmdet_params import certain_score
from .mmdet_infer import batches, detect, input_side, model_for, predict
from .previews import banner, caption, draw_boxes, fit, previews_safely, score_colour, top_of_result
from .shards import CandidateShards

log = logging.getLogger(__name__)

NO_DETECTION = -1.0
BETA = 1.3


def random_score(seed: int, path: str) -> float:
    h = hashlib.sha256(f"{seed}:{path}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def entropy_score(scores: Sequence[float]) -> float:
    s = np.asarray(scores, np.float64)
    s = s[(s > 0) & (s < 1)]
    if len(scores) == 0:
        return NO_DETECTION
    return float(-(s * np.log2(s)).sum())


def binary_js(p: float, q: float) -> float:
    """Jensen-Shannon divergence (nats) between Bernoulli(p) and Bernoulli(q)."""
    def kl(a, b):
        out = 0.0
        for x, y in ((a, b), (1 - a, 1 - b)):
            if x > 0:
                out += x * math.log(x / max(y, 1e-12))
        return out
    m = (p + q) / 2
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def box_consistency(iou: float, conf_ref: float, conf_pred: float, beta: float = BETA) -> float:
    return abs(iou + 0.5 * (conf_ref + conf_pred) * (1 - binary_js(conf_ref, conf_pred)) - beta)


def cald_consistency(ref: Tuple[np.ndarray, np.ndarray], augs: Sequence[Tuple[np.ndarray, np.ndarray]]
                     ) -> Optional[float]:
    """ref/augs: (boxes xyxy [N,4] in the ORIGINAL frame, scores [N]). None without reference boxes."""
    rb, rs = ref
    if len(rb) == 0:
        return None
    per_aug = []
    for ab, as_ in augs:
        if len(ab) == 0:
            per_aug.append(0.0)
            continue
        ious = box_iou(rb, ab)
        j = ious.argmax(1)
        per_aug.append(min(box_consistency(float(ious[i, j[i]]), float(rs[i]), float(as_[j[i]]))
                           for i in range(len(rb))))
    return float(np.mean(per_aug))


# ---- augmentations with their exact inverse box maps, for CALD --------------------------------

def augment(img: np.ndarray, kind: str, rng: np.random.RandomState):
    """(augmented image, function mapping boxes predicted on it back to the original frame)."""
    import cv2

    h, w = img.shape[:2]
    if kind == "flip":
        def back(b):
            b = b.copy()
            b[:, [0, 2]] = w - b[:, [2, 0]]
            return b
        return img[:, ::-1].copy(), back
    if kind == "cutout":
        out = img.copy()
        for _ in range(2):
            ch, cw = int(h * rng.uniform(0.05, 0.2)), int(w * rng.uniform(0.05, 0.2))
            y, x = rng.randint(0, max(1, h - ch)), rng.randint(0, max(1, w - cw))
            out[y:y + ch, x:x + cw] = 0
        return out, lambda b: b
    if kind == "resize":
        small = cv2.resize(img, (max(1, int(w * 0.8)), max(1, int(h * 0.8))))
        canvas = np.zeros_like(img)
        canvas[:small.shape[0], :small.shape[1]] = small
        return canvas, lambda b: b / 0.8
    if kind == "rotate":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 5.0, 1.0)
        inv = cv2.invertAffineTransform(m)
        rotated = cv2.warpAffine(img, m, (w, h))

        def back(b):
            if len(b) == 0:
                return b
            pts = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1)  # N,4,2
            mapped = pts @ inv[:, :2].T + inv[:, 2]
            return np.concatenate([mapped.min(1), mapped.max(1)], 1)
        return rotated, back
    raise ValueError(kind)


CALD_AUGS = ("flip", "cutout", "resize", "rotate")


# ---- ALDD --------------------------------------------------------------------------------------

def aldd_class_score(maps, avg: int = 9, cell: int = 32):
    """ALDD score per image for one class: maps [B, ch, H, W] probabilities → [B]."""
    import torch
    import torch.nn.functional as F

    eps = 1e-12
    p = maps.double().clamp(eps, 1 - eps)

    def bce(x):
        return -(x * torch.log(x) + (1 - x) * torch.log(1 - x))
    pool = dict(kernel_size=avg, stride=1, padding=avg // 2, count_include_pad=False)
    moe = F.avg_pool2d(bce(p), **pool).sum(1, keepdim=True)
    mean = F.avg_pool2d(p, **pool).clamp(eps, 1 - eps)
    eom = bce(mean).sum(1, keepdim=True)
    u = eom - moe
    return F.max_pool2d(u, cell, cell, ceil_mode=True).mean(dim=(1, 2, 3))


def class_weights(text: str, n: int, file: str = "config.yaml") -> np.ndarray:
    if not text.strip():
        return np.ones(n)
    try:
        w = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        w = []
    if len(w) != n:
        raise config_error(f"expected {n} comma-separated numbers (one per class), got {text!r}", file=file,
                           field="class_distribution_scores")
    return np.asarray(w)


def aldd_scores(model, images: List[np.ndarray], weights: np.ndarray, size: int) -> List[float]:
    """Dense class maps of the detection head → ALDD per image (forward passes sized for the device)."""
    from mmdet.apis.inference import Compose  # noqa: F401  (mmdet's pipeline machinery)
    from mmcv.transforms import Compose as Pipeline

    from .forward import on_gpu, pass_ranges

    pipe = Pipeline([dict(type="LoadImageFromNDArray")] + test_pipeline(size, False)[1:])
    data = [pipe(dict(img=img, img_id=0)) for img in images]
    scores: List[float] = []
    peaks: List[int] = []
    for a, b in pass_ranges([tuple(d["inputs"].shape[-2:]) for d in data], on_gpu(model)):
        s, p = _aldd_pass(model, data[a:b], weights, size)
        scores += s
        peaks += p
    LAST_PEAKS[:] = peaks
    return scores


def _aldd_pass(model, data: List[Dict], weights: np.ndarray, size: int) -> Tuple[List[float], List[int]]:
    import torch
    import torch.nn.functional as F

    batch = model.data_preprocessor({"inputs": [d["inputs"] for d in data],
                                     "data_samples": [d["data_samples"] for d in data]}, False)
    with torch.no_grad():
        feats = model.extract_feat(batch["inputs"])
        cls_scores = model.bbox_head(feats)[0]  # per level [B, C, h, w], before sigmoid
    b, c = cls_scores[0].shape[:2]
    peaks = torch.stack([lvl.detach().sigmoid().float().amax(dim=(2, 3)) for lvl in cls_scores]).amax(0)  # [B, C]
    total = torch.zeros(b, dtype=torch.float64)
    for k in range(c):
        maps = torch.cat([F.interpolate(lvl[:, k:k + 1].sigmoid().float(), size=(size, size), mode="bilinear",
                                        align_corners=False) for lvl in cls_scores], 1)
        total += float(weights[k]) * aldd_class_score(maps).cpu()
    return total.tolist(), peaks.argmax(1).cpu().tolist()


LAST_PEAKS: List[int] = []  # set by aldd_scores: the class peaking highest per image of the last batch


def asm_score(scores: np.ndarray, certain: float) -> float:
    """Seed 003's box-level split: the share of an image's boxes a human must still draw or fix
    (those under the certain threshold), more uncertain boxes first among equal shares; an image
    with no box ranks last, as with entropy."""
    n = len(scores)
    if n == 0:
        return NO_DETECTION
    uncertain = int((np.asarray(scores) < certain).sum())
    return uncertain / n + 1e-3 * min(uncertain, 100) / 100


def dominant_class(scores: np.ndarray, labels: np.ndarray) -> int:
    """The class of an image's most confident detection, -1 without one."""
    return int(labels[int(np.argmax(scores))]) if len(scores) else -1


# An algorithm of a kind's own: (model, BGR images) -> (one score per image, the class of each
# image's most confident object or -1).
Scorer = Callable[[Any, List[np.ndarray]], Tuple[List[float], List[int]]]


def mine_candidates(ctx, launcher, config_name: str, extra: Optional[Dict[str, Scorer]] = None) -> None:
    """Score every candidate with ``mining_algorithm`` (sharded over the processes), rank 0
    writes result.tsv (diversity-ordered when asked)."""
    p = ctx.cfg.params
    algorithm = p["mining_algorithm"]
    extra = extra or {}
    cands = CandidateList.read(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map)
    shards = CandidateShards(ctx, launcher, "mining", cands, p["max_broken_ratio"])
    if algorithm != "random":
        # aldd reads dense maps, not boxes; entropy and cald ignore boxes under the mining threshold.
        model, stage = model_for(ctx, config_name, p["max_detections"],
                                 None if algorithm == "aldd" else p["mining_conf_threshold"])
        weights = class_weights(p["class_distribution_scores"], len(stage.class_names), ctx.cfg.source_file)
        size = input_side(model)
        conf = p["mining_conf_threshold"]
        certain = certain_score(p, stage.meta)
        if algorithm == "asm":
            log.info("asm: boxes from %.3f are certain, %.3f to it a human checks", certain, conf)
    done = 0
    ordered = wants_order(p) and algorithm != "random"  # random has no model, hence no features
    feats = FeatureStore(len(cands)) if ordered else None
    tap = FeatureTap(tap_module(model)) if ordered else None

    # random reads the images too, so an unreadable candidate ranks last with every algorithm
    with tap if tap is not None else contextlib.nullcontext():
        for batch in batches(shards.part, p["samples_per_gpu"], p["workers_per_gpu"], shards.broken):
            imgs = [img for *_, img in batch]
            peaks: List[int] = [-1] * len(batch)
            if algorithm == "random":
                vals = [random_score(p["seed"], cands.raw[idx]) for idx, _, _ in batch]
            elif algorithm == "aldd":
                vals = aldd_scores(model, imgs, weights, size)
                peaks = list(LAST_PEAKS)
            elif algorithm in extra:
                vals, peaks = extra[algorithm](model, imgs)
            elif algorithm in ("entropy", "asm"):
                dets = detect(model, imgs)
                if algorithm == "entropy":
                    vals = [entropy_score(s[s >= conf]) for _, s, _ in dets]
                else:
                    vals = [asm_score(s[s >= conf], certain) for _, s, _ in dets]
                peaks = [dominant_class(s[s >= conf], lab[s >= conf]) for _, s, lab in dets]
            else:
                vals = []
                for (idx, path, img), (b, s, lab) in zip(batch, detect(model, imgs)):
                    keep = s >= conf
                    peaks[len(vals)] = dominant_class(s[keep], lab[keep])
                    rng = np.random.RandomState(int(random_score(p["seed"], cands.raw[idx]) * 2 ** 31))
                    views = [augment(img, a, rng) for a in CALD_AUGS]
                    if tap is not None:
                        tap.enabled = False  # the augmented views are not the image
                    outs = detect(model, [v for v, _ in views])
                    if tap is not None:
                        tap.enabled = True
                    augs = []
                    for (_, back), (ab, as_, _) in zip(views, outs):
                        k = as_ >= conf
                        augs.append((back(ab[k]), as_[k]))
                    c = cald_consistency((b[keep], s[keep]), augs)
                    vals.append(NO_DETECTION if c is None else -c)
            for (idx, _, _), v in zip(batch, vals):
                shards.write(idx, float(v))
            if feats is not None:
                for (idx, _, _), row, cl in zip(batch, tap.take(len(batch)), peaks):
                    feats.put(idx, row, int(cl))
            done += len(batch)
            if shards.rank == 0:
                ctx.progress(0.95 * shards.progress(done))
    if feats is not None:
        feats.save(shards.dir, shards.rank)
    if shards.gather(ctx):
        # an unreadable candidate has no score: it ranks after every scored one
        all_scores = [v for _, v in shards.every(missing=UNREADABLE_SCORE)]
        feat_mat, cls_arr = load_features(shards.dir, shards.world, len(cands)) if ordered else (None, None)
        write_ordered_mining_result(ctx.env, cands.raw, all_scores, feat_mat, cls_arr,
                                    p if ordered else {})
        del feat_mat, cls_arr, all_scores  # not needed by the previews
        log.info("mining %s: wrote %s (%d candidates)", algorithm, ctx.env.output.mining_result_file, len(cands))
        if algorithm == "random":
            previews_safely(ctx, lambda: box_previews(ctx, None, [], algorithm, 0.0, 1.0))
        else:
            previews_safely(ctx, lambda: box_previews(ctx, model, stage.class_names, algorithm, conf, certain,
                                                      float(stage.meta.get("conf_threshold", conf))))
    shards.finish()


def box_previews(ctx, model, class_names: Sequence[str], algorithm: str, conf: float,
                 certain: float, shown_from: float = 0.0) -> List[Tuple[str, np.ndarray]]:
    """result.tsv's first images with the model's boxes (and masks): green from the certain
    score, orange and red below it (what a human must check or draw). Boxes under ``shown_from``
    (the stage's infer threshold) are counted, not drawn: at the mining threshold they bury the image."""
    import cv2

    shown_from = max(conf, float(shown_from))
    pictures = []
    for rank, (path, score) in enumerate(top_of_result(ctx.env, ctx.cfg.params["preview_images"])):
        img = cv2.imread(ctx.env.path_map(path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        pic, scale = fit(img)
        extra = ""
        if model is not None:
            d = predict(model, [img], min_score=conf)[0]
            keep = d["scores"] >= shown_from
            masks = d["masks"][keep] if "masks" in d else None
            draw_boxes(pic, d["boxes"][keep], d["labels"][keep], d["scores"][keep], class_names,
                       lambda s: score_colour(s, certain, shown_from), scale, masks)
            unsure = int((d["scores"][keep] < certain).sum())
            extra = (f"{len(d['scores'])} objects >= {conf:.2f}; {int(keep.sum())} drawn (>= {shown_from:.2f}), "
                     f"{unsure} uncertain (< {certain:.2f})")
        pictures.append((path, banner(pic, caption(rank, path, score, algorithm, extra))))
    return pictures
