"""Segmentation mining scoring: the reference fixtures of mining-algorithms.md §5.1, superpixel
counts, and ranking sanity on crafted probability maps."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from ymir_tasks.seg.mining.mine import rsal_image_scores
from ymir_tasks.seg.mining.scoring import (UNCERTAINTY_METHODS, class_weights, percentile_rank,
                                           pixel_uncertainty, region_scores, ripu_pick, ripu_score_map,
                                           select_regions)
from ymir_tasks.seg.mining.superpixels import METHODS, cap_labels, superpixels


def _p(*v):
    return torch.tensor(v, dtype=torch.float32).view(len(v), 1, 1)


@pytest.mark.parametrize("probs,expected", [((.5, .3, .2), .6), ((.9, .05, .05), .0555556),
                                            ((.4, .4, .2), 1.0), ((1, 0, 0), 0.0)])
def test_f1_bvsb_ratio(probs, expected):
    assert float(pixel_uncertainty(_p(*probs), "BvSB")) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("p,expected", [(.5, 1.0), (.9, .6), (.1, .6)])
def test_f1_binary_fallback(p, expected):
    assert float(pixel_uncertainty(torch.tensor([[[p]]]), "BvSB")) == pytest.approx(expected, abs=1e-6)


def test_f2_region_mean_dominant_class_and_class_weights():
    """F2 with the fixed P1: BOTH regions are scored (YMIR-exact skipped the last label)."""
    prob = torch.zeros(3, 4, 4)
    prob[:, :, :2] = torch.tensor([.6, .3, .1]).view(3, 1, 1)
    prob[:, 0, 0] = torch.tensor([.4, .35, .25])
    prob[:, :, 2:] = torch.tensor([.2, .5, .3]).view(3, 1, 1)
    sp = torch.zeros(4, 4, dtype=torch.long)
    sp[:, 2:] = 1
    mean, dominant = region_scores(pixel_uncertainty(prob), prob.argmax(0), sp, 3)
    assert mean.tolist() == pytest.approx([0.546875, 0.6], abs=1e-6)
    assert dominant.tolist() == [0, 1]
    assert class_weights([5, 3, 2]).tolist() == pytest.approx([0.606531, 0.740818, 0.818731], abs=1e-6)


@pytest.mark.parametrize("kept,k,n,pct", [(5000, 3, 100000, 85), (5000, 3, 1000000, 98), (100, 3, 1000, 80),
                                          (5000, 3, 10000, 80)])
def test_f3_ymir_percentile(kept, k, n, pct):
    assert percentile_rank(kept, k, n) == pct


def test_f4_ripu_fixed_variant():
    """F4 with the documented FIXED variant (P5): valid-pixel means at the borders (the
    'original-RIPU form' of §2.5), pure windows exactly 0, and (P6) non-overlapping picks."""
    p0 = torch.zeros(4, 4)
    p0[:, :2], p0[:, 2:] = .8, .3
    score, unc, imp = ripu_score_map(torch.stack([p0, 1 - p0]), radius=1)
    for row in range(4):  # no border attenuation: every row equals the inner rows
        assert imp[row].tolist() == pytest.approx([0.0, 0.918293, 0.918293, 0.0], abs=1e-6)
        assert unc[row].tolist() == pytest.approx([0.721925, 0.775046, 0.828167, 0.881288], abs=1e-6)
    assert float(imp.min()) == 0.0  # not -1e-6
    picks = ripu_pick(score, 3, radius=1)
    # every row of column 2 ties (no border attenuation); windows of radius 1 around two picks may
    # not overlap: rows 0 and 3 (windows {0, 1} and {2, 3}), no third
    assert [(y, x) for y, x, _ in picks] == [(0, 2), (3, 2)]
    assert [v for _, _, v in picks] == pytest.approx([0.918293 * 0.828167] * 2, abs=1e-6)


def test_ripu_constant_class_map_scores_zero_and_scores_are_bounded():
    prob = torch.softmax(torch.randn(3, 20, 20) * 0.1 + torch.tensor([5.0, 0, 0]).view(3, 1, 1), 0)
    score, _, _ = ripu_score_map(prob, 1)
    assert float(score.max()) == 0.0
    noisy = torch.softmax(torch.randn(3, 20, 20, generator=torch.Generator().manual_seed(0)), 0)
    s, u, i = ripu_score_map(noisy, 2)
    assert 0 <= float(s.min()) and float(s.max()) <= 1 and float(u.max()) <= 1 and float(i.max()) <= 1


def test_select_regions_top_k_then_threshold():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.2])
    assert select_regions(scores, 2, threshold=0.6).tolist() == [1, 3]
    assert select_regions(scores, 2, threshold=0.15).tolist() == [1, 3, 2, 4]


def _natural(h, w, seed=0):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([128 + 60 * np.sin(xx / 37.0) + 30 * np.cos(yy / 23.0), 128 + 50 * np.cos(xx / 19.0 + yy / 41.0),
                  128 + 60 * np.sin((xx + yy) / 29.0)], -1) + rng.randint(-20, 21, size=(h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [64, 256])
def test_superpixel_count_is_at_most_k_and_close_to_it(method, k):
    labels = superpixels(_natural(256, 384), method, k)
    n = len(np.unique(labels))
    assert labels.min() == 0 and labels.max() == n - 1  # contiguous labels from 0
    assert n <= k
    assert n >= 0.8 * k, (method, k, n)


def test_cap_merges_to_at_most_k():
    labels = np.arange(100 * 80).reshape(80, 100)  # one superpixel per pixel
    capped = cap_labels(labels, 50)
    n = len(np.unique(capped))
    assert 40 <= n <= 50 and capped.max() == n - 1


def _crafted(kind, h=32, w=32, seed=0):
    """CxHxW probabilities: 'certain' (one class, p=.98) or 'uncertain' (flipping classes near a tie)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "certain":
        logits = torch.tensor([6.0, 0.0, 0.0]).view(3, 1, 1) + 0.05 * torch.randn(3, h, w, generator=g)
    else:
        logits = 0.3 * torch.randn(3, h, w, generator=g)
    return torch.softmax(logits, 0)


@pytest.mark.parametrize("method", UNCERTAINTY_METHODS)
def test_rsal_ranks_uncertain_images_first_deterministically(method, tmp_path):
    kinds = ["certain", "uncertain", "certain", "uncertain", "certain"]
    grid = torch.arange(16).view(4, 4).repeat_interleave(8, 0).repeat_interleave(8, 1)
    records = []
    for i, kind in enumerate(kinds):
        prob = _crafted(kind, seed=i)
        mean, dom = region_scores(pixel_uncertainty(prob, method), prob.argmax(0), grid, 3)
        records.append((i, mean.tolist(), dom.tolist()))
    runs = [rsal_image_scores(lambda: iter(records), len(kinds), 3, kept=2, k=3, class_balance=True,
                              tmp_dir=str(tmp_path))[0] for _ in range(2)]
    assert runs[0] == runs[1]
    order = sorted(range(len(kinds)), key=lambda i: -runs[0][i])
    assert {kinds[i] for i in order[:2]} == {"uncertain"}


def test_ripu_ranks_uncertain_images_first_deterministically():
    kinds = ["certain", "uncertain", "certain", "uncertain"]
    scores = []
    for _ in range(2):
        run = []
        for i, kind in enumerate(kinds):
            s, _, _ = ripu_score_map(_crafted(kind, seed=i), 1)
            run.append(sum(v for *_, v in ripu_pick(s, 3, 1)))
        scores.append(run)
    assert scores[0] == scores[1]
    assert min(scores[0][1], scores[0][3]) > max(scores[0][0], scores[0][2])


@pytest.mark.parametrize("seed", range(4))
def test_streamed_percentile_is_numpys_exactly(seed, tmp_path):
    from ymir_tasks.seg.mining.scoring import streamed_percentile

    rng = np.random.RandomState(seed)
    n = int(rng.randint(1, 50000))
    # ties, a heavy atom at 0, and spread values: what class-weighted region scores look like
    values = np.where(rng.rand(n) < 0.3, 0.0, rng.beta(0.5, 3, n) * rng.choice([0.4, 0.9, 1.0], n))
    values.tofile(tmp_path / "v.f64")
    for pct in (0, 37, 80, 81, 93, 99, 100):  # small chunks and limit: the narrowing runs several rounds
        assert streamed_percentile(str(tmp_path / "v.f64"), n, pct, chunk=997, limit=50) == np.percentile(values, pct)
