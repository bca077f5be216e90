"""RSAL / RIPU post-processing: the older YMIR image's against ours, on the same probability maps,
in one run.

The older post-processing is written here from its description (``mining-algorithms.md`` §2.3,
§2.5): per image, BvSB by a full sort over classes, then one full-image scan per superpixel for
its mean uncertainty and dominant class (the last label skipped, P1); over the pool, class-balance
weights, ``np.percentile`` over every region, per image a sort of its regions and a walk down it.
RIPU: entropy, ``AvgPool2d`` with zero padding counted, a one-hot window count, the sum of the
top-k pixels. Ours: :mod:`ymir_tasks.seg.mining.scoring` and the pool step of the mining task
(``rsal_image_scores``, which streams the pool's regions through a file).

Inputs shared by both sides: C x H x W probability maps (smooth random class fields, softmax) and
the SLICO superpixels of an image painted from them (so regions follow the class boundaries);
computing the superpixels is the same call on both sides and is not timed.

Printed: the time of each side and the ratio; where the results must be equal (RSAL with P1 fixed
in the older code: every region score, dominant class, image score, the selected regions of the
kept images and the image order; RIPU: the score map away from the border, where zero padding
does not enter) whether they are, and where ours differs by design (P1, P5, P6) how much the
ranking moves (Spearman).

    .venv/bin/python bench/postprocess_seg.py [--images 16] [--size 512x1024] [--classes 19] [--k 1024]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOPK = 3  # topk_superpixel_score
KEPT = 4  # max_kept_mining_image (sets the percentile and how many masks)
RADIUS = 1  # ripu_region_radius


def probability_maps(n: int, h: int, w: int, c: int, seed: int = 0):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        coarse = torch.randn((1, c, max(2, h // 48), max(2, w // 48)), generator=g) * 4.0
        logits = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
        logits += 0.3 * torch.randn((c, h, w), generator=g)
        yield torch.softmax(logits, 0)


def painted(prob, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    palette = rng.randint(0, 255, size=(prob.shape[0], 3))
    img = palette[prob.argmax(0).numpy()] + rng.randint(-12, 13, size=prob.shape[1:] + (3,))
    return np.clip(img, 0, 255).astype(np.uint8)


# ---- the older image's post-processing, as described (per-region loop) ----

def old_rsal_regions(prob, sp: np.ndarray, last: bool = False) -> List[Tuple[int, float, int]]:
    import torch

    s = torch.sort(prob, dim=0, descending=True).values  # YMIR sorts every class to get the top two
    u = (s[1] / s[0]).numpy()
    pred = prob.argmax(0).numpy()
    regions = []
    for idx in range(int(sp.max()) + (1 if last else 0)):  # P1: sp.max() itself is skipped
        pix = sp == idx  # a full-image scan per region (P9)
        if not pix.any():
            continue
        regions.append((idx, float(u[pix].mean()), int(np.bincount(pred[pix]).argmax())))
    return regions


def old_rsal_pool(per_image: List[List[Tuple[int, float, int]]], c: int):
    counts = np.zeros(c)
    for regions in per_image:
        for _, _, cls in regions:
            counts[cls] += 1
    weights = np.exp(-counts / counts.sum())
    weighted = [[(idx, score * weights[cls]) for idx, score, cls in regions] for regions in per_image]
    every = [s for regions in weighted for _, s in regions]
    pct = round(100 * max(0.8, 1 - KEPT * TOPK / len(every)))
    thr = np.percentile(every, pct)
    scores, taken = [], []
    for regions in weighted:
        ranked = sorted(regions, key=lambda r: -r[1])
        take = ranked[:TOPK] + [r for r in ranked[TOPK:] if r[1] >= thr]  # sorted: the walk stops at thr
        scores.append(sum(s for _, s in take))
        taken.append(sorted(i for i, _ in take))
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return scores, order, taken


def old_ripu(prob, c: int) -> Tuple[np.ndarray, float]:
    import torch
    import torch.nn.functional as F

    p = prob[None]
    s = 2 * RADIUS + 1
    ent = (-(p * torch.log(p + 1e-6)).sum(1, keepdim=True)) / math.log(c)
    unc = F.avg_pool2d(ent, s, stride=1, padding=RADIUS, count_include_pad=True)
    onehot = F.one_hot(p.argmax(1), c).permute(0, 3, 1, 2).float()
    cnt = F.conv2d(onehot, torch.ones((c, 1, s, s)), padding=RADIUS, groups=c)
    q = cnt / cnt.sum(1, keepdim=True)
    imp = (-(q * torch.log(q + 1e-6)).sum(1, keepdim=True)) / math.log(c)
    score = (unc * imp)[0, 0]
    return score.numpy(), float(score.flatten().topk(TOPK).values.sum())


# ---- ours ----

def our_rsal(maps, sps, c: int, tmp: str):
    import torch

    from ymir_tasks.seg.mining.mine import rsal_image_scores
    from ymir_tasks.seg.mining.scoring import pixel_uncertainty, region_scores

    records = []
    for i, (prob, sp) in enumerate(zip(maps, sps)):
        mean, dom = region_scores(pixel_uncertainty(prob, "BvSB"), prob.argmax(0), torch.from_numpy(sp), c)
        records.append((i, mean.tolist(), dom.tolist()))
    scores, selected = rsal_image_scores(lambda: iter(records), len(maps), c, KEPT, TOPK, True, tmp)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return scores, order, selected(order[:KEPT]), records


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", default="512x1024", help="HxW")
    ap.add_argument("--classes", type=int, default=19)
    ap.add_argument("--k", type=int, default=1024, help="max_superpixel_per_image")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    c = args.classes
    import torch

    from ymir_tasks.seg.mining.scoring import ripu_pick, ripu_score_map
    from ymir_tasks.seg.mining.superpixels import superpixels

    maps = list(probability_maps(args.images, h, w, c))
    sps = [superpixels(painted(p, i), "slico", args.k) for i, p in enumerate(maps)]
    print(f"{args.images} probability maps {c}x{h}x{w}, SLICO K={args.k} ({np.mean([s.max() + 1 for s in sps]):.0f} "
          f"regions per image), topk_superpixel_score {TOPK}, max_kept_mining_image {KEPT}, class balance on, "
          f"CPU, torch threads {torch.get_num_threads()}")

    # RSAL
    t0 = time.perf_counter()
    old_regions = [old_rsal_regions(p, s) for p, s in zip(maps, sps)]
    old_scores, old_order, _ = old_rsal_pool(old_regions, c)
    t_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scores, order, selected, records = our_rsal(maps, sps, c, tmp)
    t_ours = time.perf_counter() - t0
    print(f"RSAL: older {t_old:.2f} s ({1000 * t_old / len(maps):.0f} ms per image), ours {t_ours:.3f} s "
          f"({1000 * t_ours / len(maps):.1f} ms per image): {t_old / t_ours:.0f}x")
    # equality with the older code where it must hold: the same loop over every label (P1 fixed)
    fixed = [r + [x for x in old_rsal_regions(p, s, last=True) if x[0] == int(s.max())]
             for r, p, s in zip(old_regions, maps, sps)]
    f_scores, f_order, f_taken = old_rsal_pool(fixed, c)
    d_region = max(abs(m - x[1]) for (_, means, _), regs in zip(records, fixed) for m, x in zip(means, regs))
    same_cls = all(d == x[2] for (_, _, doms), regs in zip(records, fixed) for d, x in zip(doms, regs))
    same_count = all(len(means) == len(regs) for (_, means, _), regs in zip(records, fixed))
    d_image = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(scores, f_scores))
    same_sel = all(sorted(selected[i]) == f_taken[i] for i in order[:KEPT])
    print(f"  against the older code with P1 fixed: region counts equal {same_count}, max |region score diff| "
          f"{d_region:.1e} (fp32 mean against fp64 sums), dominant classes equal {same_cls}, max relative image "
          f"score diff {d_image:.1e}, image order equal {order == f_order}, selected regions of the kept images "
          f"equal {same_sel}")
    print(f"  against the older code as it is (P1: last region never scored): Spearman of image scores "
          f"{spearman(scores, old_scores):.4f}, top-{KEPT} equal {order[:KEPT] == old_order[:KEPT]}")

    # RIPU
    t0 = time.perf_counter()
    old = [old_ripu(p, c) for p in maps]
    t_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours: List[Dict] = []
    for p in maps:
        score, _, _ = ripu_score_map(p, RADIUS)
        ours.append({"map": score, "score": sum(v for _, _, v in ripu_pick(score, TOPK, RADIUS))})
    t_ours = time.perf_counter() - t0
    print(f"RIPU: older {t_old:.2f} s ({1000 * t_old / len(maps):.0f} ms per image), ours {t_ours:.2f} s "
          f"({1000 * t_ours / len(maps):.0f} ms per image): {t_old / t_ours:.2f}x")
    r = 2 * RADIUS  # away from the border no window touches the zero padding
    d_map = max(float(np.abs(o[0][r:-r, r:-r] - x["map"].numpy()[r:-r, r:-r]).max()) for o, x in zip(old, ours))
    print(f"  score maps away from the border: max |diff| {d_map:.1e} (pure windows: older -1e-6, ours 0); "
          f"image scores by design not equal (P5 border, P6 three windows instead of three adjacent pixels): "
          f"Spearman {spearman([x['score'] for x in ours], [o[1] for o in old]):.4f}")


if __name__ == "__main__":
    main()
