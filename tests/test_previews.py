"""The drawing behind the mining previews: where boxes, regions and bird's-eye boxes land."""
from __future__ import annotations

import numpy as np
import pytest

from executor.pointcloud import Boxes3D
from ymir_tasks.common import previews as pv
from ymir_tasks.det3d import bev


def test_boxes_land_at_their_scaled_place_in_their_score_colour():
    img = np.full((100, 200, 3), 128, np.uint8)
    boxes = np.array([[20, 10, 60, 50], [100, 40, 180, 90]], float)
    out = pv.draw_boxes(img, boxes * 2.0, [0, 1], [0.9, 0.1], ["a", "b"],
                        lambda s: pv.score_colour(s, certain=0.5, low=0.05), scale=0.5)
    assert tuple(out[30, 20]) == pv.CERTAIN and tuple(out[70, 100]) == pv.DOUBT  # left edges
    assert tuple(out[30, 40]) == (128, 128, 128)  # inside a box without a mask: untouched
    assert pv.score_colour(0.3, 0.5, 0.05) == pv.UNSURE


def test_masks_are_tinted_under_their_box():
    img = np.zeros((40, 40, 3), np.uint8)
    mask = np.zeros((1, 80, 80), bool)
    mask[0, 20:60, 20:60] = True  # the original is twice the picture's size
    pv.draw_boxes(img, np.array([[20, 20, 60, 60]], float), [0], [0.9], ["a"], lambda s: pv.CERTAIN, 0.5, mask)
    assert img[20, 20].sum() > 0 and img[5, 5].sum() == 0


def test_regions_tint_only_the_mask():
    img = np.full((50, 50, 3), 100, np.uint8)
    mask = np.zeros((25, 25), np.uint8)
    mask[5:15, 5:15] = 255
    pv.tint(img, mask, pv.REGION, 0.5)
    assert (img[15:25, 15:25] != 100).any(axis=2).all() and (img[40:, 40:] == 100).all()


def test_contact_sheet_keeps_the_order_row_by_row():
    cells = [np.full((50, 100, 3), 30 * k, np.uint8) for k in range(1, 8)]
    sheet = pv.contact_sheet(cells, cols=3, cell=100)
    assert sheet.shape == (3 * 104 + 4, 3 * 104 + 4, 3)
    assert sheet[4 + 10, 4 + 104 + 10, 0] == 60 and sheet[4 + 2 * 104 + 10, 4 + 10, 0] == 210


def test_top_of_result_reads_the_miner_scores_of_a_diverse_order(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "result.tsv").write_text("/in/b.jpg\t1\n/in/a.jpg\t0.5\n/in/c.jpg\t0\n")
    (tmp_path / "mining-scores.tsv").write_text("/in/b.jpg\t0.2\n/in/a.jpg\t0.9\n/in/c.jpg\t0.1\n")
    env = SimpleNamespace(output=SimpleNamespace(mining_result_file=str(tmp_path / "result.tsv"),
                                                 root_dir=str(tmp_path)))
    assert pv.top_of_result(env, 2) == [("/in/b.jpg", 0.2), ("/in/a.jpg", 0.9)]
    assert pv.top_of_result(env, 0) == []


@pytest.mark.parametrize("yaw", [0.0, np.pi / 2])
def test_a_bev_box_lands_ahead_of_the_ego_car(yaw):
    pts = np.array([[10.0, 0.0, -1.0, 0.0], [30.0, 20.0, 0.5, 0.0]], np.float32)
    box = Boxes3D(np.array([[10.0, 0.0, -1.0, 4.0, 2.0, 1.5, yaw]]), np.array([0]), np.array([0.8]))
    r = bev.view_range([-10.0, -40.0, -3.0, 70.0, 40.0, 1.0])  # 80 m square: 6.4 px a metre
    ppm = bev.pixels_per_metre(r)
    assert ppm == 6.4
    img = bev.bev(pts, [(box, bev.PSEUDO, True)], ["Car"], r)
    col, row = (r[3] - 0.0) * ppm, (r[1] - 10.0) * ppm
    half_x, half_y = (2.0, 1.0) if yaw == 0 else (1.0, 2.0)  # along x (up), along y (left)
    edge_row = int(round(row - half_x * ppm))
    assert tuple(img[edge_row, int(col)]) == bev.PSEUDO  # the box's far edge, straight ahead
    far = (r[3] - 20.0) * ppm, (r[1] - 30.0) * ppm
    assert img[int(far[1]), int(far[0])].sum() > 0  # the second point, 30 m ahead and 20 m to the left
    side_col = int(round(col - half_y * ppm))
    assert tuple(img[int(row), side_col]) == bev.PSEUDO  # its left side


def test_evaluation_pictures_are_pictures(tmp_path):
    import cv2

    from ymir_tasks.common import training_pictures as tp

    pr = tp.pr_curves({"a": [1.0] * 60 + [0.0] * 41, "b": [-1.0] * 101}, "pr")
    ap = tp.ap_by_iou({"box": {0.5: 0.9, 0.75: 0.5}, "mask": {0.5: 0.8, 0.75: 0.3}}, "ap")
    cm = tp.confusion(np.array([[90, 10], [0, 50]]), ["bg", "a"], "confusion")
    for pic in (pr, ap, cm):
        assert pic.ndim == 3 and min(pic.shape[:2]) > 200 and pic.std() > 10
    path = tmp_path / "v.png"
    cv2.imwrite(str(path), np.full((100, 100, 3), 100, np.uint8))
    pred = {"boxes": np.array([[10, 10, 50, 50], [60, 60, 90, 90]], float), "scores": np.array([0.9, 0.1]),
            "labels": np.array([0, 0]), "truth": np.array([[20, 30, 80, 95]], float)}
    row = tp.predictions_row([(str(path), pred)], ["a"], conf=0.2, side=100)
    band = row.shape[0] - 100
    assert tuple(row[band + 30, 10]) == pv.score_colour(0.9, 0.5, 0.2)  # the kept box's left edge
    assert tuple(row[band + 75, 60]) == (100, 100, 100)  # the box under conf is not drawn
    assert tuple(row[band + 60, 20]) == (255, 255, 255)  # the ground truth, thin white
    files = tp.write(str(tmp_path), str(tmp_path / "tb"), 7, {"pr-curves": pr})
    assert files == [str(tmp_path / "pr-curves.png")] and cv2.imread(files[0]) is not None
