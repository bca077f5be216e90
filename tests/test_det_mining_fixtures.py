"""Detection mining fixtures F5, F6, F7 (mining-algorithms.md §5.1) and ranking sanity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ymir_tasks.common.box_mining import (NO_DETECTION, CALD_AUGS, aldd_class_score, augment, binary_js,
                                   box_consistency, cald_consistency, class_weights, entropy_score, random_score)


def test_f7_entropy():
    assert entropy_score([0.9, 0.5, 0.1]) == pytest.approx(0.968996, abs=1e-6)
    assert entropy_score([]) == NO_DETECTION


@pytest.mark.parametrize("iou,cr,cp,expected", [(1, .9, .9, .6), (.9, .8, .6, .283090), (.5, .5, .3, .408402),
                                                (0, .6, .2, .934522), (1, .3, .3, 0.0)])
def test_f6_cald_box_consistency(iou, cr, cp, expected):
    assert box_consistency(iou, cr, cp) == pytest.approx(expected, abs=1e-6)


def test_f6_binary_js():
    assert binary_js(.8, .6) == pytest.approx(.024157, abs=1e-6)
    assert binary_js(.5, .3) == pytest.approx(.021006, abs=1e-6)
    assert binary_js(.6, .2) == pytest.approx(.086305, abs=1e-6)


def test_f5_aldd_yolov5_settings():
    """One 64x64 channel, 9x9 mean (padding excluded), 32x32 cells (yolov5's settings)."""
    flat = torch.full((1, 1, 64, 64), 0.01)
    assert float(aldd_class_score(flat)) == pytest.approx(0.0, abs=1e-7)
    blob = flat.clone()
    blob[..., 10:14, 10:14] = 0.9  # a 4x4 blob inside one cell
    assert float(aldd_class_score(blob)) == pytest.approx(0.092731, abs=1e-6)
    grid = flat.clone()
    grid[..., ::2, ::2] = 0.9  # every other pixel of every other row
    assert float(aldd_class_score(grid)) == pytest.approx(0.470323, abs=1e-6)


def test_entropy_and_cald_rank_ambiguous_above_single_confident():
    # image A: one confident detection, stable under augmentation
    a_ref = (np.array([[10, 10, 50, 50.]]), np.array([0.95]))
    a_aug = [(np.array([[10, 10, 50, 50.]]), np.array([0.95]))] * 4
    # image B: ambiguous detections that move and change confidence under augmentation
    b_ref = (np.array([[10, 10, 50, 50.], [60, 60, 90, 90.]]), np.array([0.45, 0.35]))
    b_aug = [(np.array([[14, 12, 56, 52.], [65, 58, 95, 92.]]), np.array([0.3, 0.2]))] * 4
    assert entropy_score(b_ref[1]) > entropy_score(a_ref[1])
    # the paper's direction: score = -consistency, least consistent first
    assert -cald_consistency(b_ref, b_aug) > -cald_consistency(a_ref, a_aug)
    assert cald_consistency((np.zeros((0, 4)), np.zeros(0)), a_aug) is None  # → NO_DETECTION, ranked last


@pytest.mark.parametrize("kind", CALD_AUGS)
def test_cald_augmentations_map_boxes_back(kind):
    img = np.zeros((100, 160, 3), np.uint8)
    _, back = augment(img, kind, np.random.RandomState(0))
    box = np.array([[30.0, 20.0, 70.0, 60.0]])
    if kind == "flip":
        assert back(np.array([[90.0, 20.0, 130.0, 60.0]])).tolist() == box.tolist()
    elif kind == "resize":
        assert back(box * 0.8) == pytest.approx(box)
    elif kind == "rotate":
        # a box rotated by 5° and mapped back contains the original
        import cv2
        m = cv2.getRotationMatrix2D((80, 50), 5.0, 1.0)
        pts = np.array([[30, 20], [70, 20], [30, 60], [70, 60]], float) @ m[:, :2].T + m[:, 2]
        rot = np.array([[pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]])
        out = back(rot)[0]
        assert out[0] <= 30.01 and out[1] <= 20.01 and out[2] >= 69.99 and out[3] >= 59.99
    else:
        assert back(box).tolist() == box.tolist()


def test_random_is_seeded_per_path_and_class_weights_are_checked():
    assert random_score(3, "/in/a.jpg") == random_score(3, "/in/a.jpg")
    assert random_score(3, "/in/a.jpg") != random_score(4, "/in/a.jpg")
    assert 0 <= random_score(0, "x") < 1
    assert class_weights("", 3).tolist() == [1, 1, 1]
    assert class_weights("1.0,0.5", 2).tolist() == [1.0, 0.5]
    with pytest.raises(Exception) as e:
        class_weights("1,2,3", 2)
    assert "class_distribution_scores" in str(e.value)


def test_asm_scores_the_share_of_boxes_a_human_must_fix():
    from ymir_tasks.common.box_mining import NO_DETECTION, asm_score

    assert asm_score(np.array([]), 0.5) == NO_DETECTION
    all_certain, half, none_certain = (asm_score(np.array(s), 0.5) for s in ([0.9, 0.8], [0.9, 0.3], [0.2, 0.3, 0.1]))
    assert all_certain < half < none_certain <= 1.0 + 1e-2
    assert asm_score(np.array([0.2] * 6), 0.5) > asm_score(np.array([0.2] * 2), 0.5)  # more to fix first


def test_the_certain_threshold_is_where_val_precision_reaches_90_percent():
    from ymir_tasks.common.coco_eval import certain_threshold

    gts = [{"boxes": np.array([[0, 0, 10, 10]] * 1, float), "labels": np.array([0])} for _ in range(20)]
    # per image one right box (score 0.6 + i/100) and one wrong one (score i/50)
    preds = [{"boxes": np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float), "labels": np.array([0, 0]),
              "scores": np.array([0.6 + i / 100, i / 50])} for i in range(20)]
    t = certain_threshold(gts, preds)
    right = np.array([0.6 + i / 100 for i in range(20)])
    wrong = np.array([i / 50 for i in range(20)])
    above = (right >= t).sum(), (wrong >= t).sum()
    assert above[0] / sum(above) >= 0.9 and t <= 0.6  # all right boxes certain, few wrong ones
    assert certain_threshold(gts, [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int),
                                    "scores": np.zeros(0)}] * 20) == 1.0


def test_the_labelling_cost_counts_boxes_to_draw_or_fix(tmp_path):
    from executor.records import IndexEntry
    from ymir_tasks.det.simulation import labelling_cost

    ann = tmp_path / "a.txt"
    ann.write_text("0, 0, 0, 9, 9\n1, 20, 20, 39, 39\n")
    e = IndexEntry(image=str(tmp_path / "a.jpg"), annotation=str(ann), line=1)
    names = ["box", "disc"]
    assert labelling_cost([e], names) == 2  # no pre-annotation: both drawn
    right = {"box": {"x": 0, "y": 0, "w": 10, "h": 10}, "class_name": "box", "score": 0.9}
    wrong = {"box": {"x": 60, "y": 60, "w": 10, "h": 10}, "class_name": "disc", "score": 0.9}
    assert labelling_cost([e], names, {"a.jpg": [right]}) == 1  # one kept, one drawn
    assert labelling_cost([e], names, {"a.jpg": [right, wrong]}) == 2  # one drawn, one deleted
