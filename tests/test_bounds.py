"""Every value inside a schema's range works: each numeric knob at its bounds (and the choices
beside them) on the tiny presets, for training, mining and inference of every kind."""
from __future__ import annotations

import pytest
import yaml

from executor.runner import run
from executor.verify import verify_output
from executor.workspace import make_workspace

from stages import KINDS, LOWER_BOUNDS, run_cli, task_ws


def _result(ws):
    return yaml.safe_load((ws / "out" / "models" / "result.yaml").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_training_at_the_lower_bounds_writes_verified_stages(stage_of, kind):
    """The shared stages are these trainings: max_epochs / max_iters 1 (the LR schedules used to
    end before they began), the smallest batch, an evaluation every step, one SS3D round."""
    ws = stage_of(kind)
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    doc = _result(ws)
    assert doc["best_stage_name"] == "best" and {"best", "last"} <= set(doc["model_stages"])


OTHER_BOUNDS = {
    # an evaluation interval beyond the run, every count threshold at 0, checkpoints 0 and all
    "det": dict(max_epochs=2, val_interval=5, conf_threshold=0.0, max_keep_checkpoints=0, early_stop_patience=0,
                max_detections=100000, samples_per_gpu=8, learning_rate=1e-4),
    "seg": dict(max_iters=3, interval=10, max_keep_ckpts=0, save_least_file=False, ignore_blank_area=True,
                samples_per_gpu=4, learning_rate=1e-3),
    "det3d": dict(max_epochs=2, val_interval=9, conf_threshold=0.0, max_keep_checkpoints=0, max_detections=100000,
                  samples_per_gpu=4, ss3d_iterations=0, eval_iou="1.0"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_training_at_the_other_bounds_writes_verified_stages(tmp_path, kind):
    ws = tmp_path / "train"
    make_workspace(str(ws), kind, "train", num_train=8, num_val=4,
                   overrides=dict(LOWER_BOUNDS[kind], **OTHER_BOUNDS[kind]))
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    assert "best" in _result(ws)["model_stages"]


TASKS = [
    ("det", "mine", dict(mining_algorithm="cald", mining_conf_threshold=0.0, samples_per_gpu=1, max_detections=1)),
    ("det", "mine", dict(mining_algorithm="cald", mining_conf_threshold=1.0)),
    ("det", "mine", dict(mining_algorithm="entropy", mining_conf_threshold=0.0, max_broken_ratio=1.0)),
    ("det", "mine", dict(mining_algorithm="entropy", mining_conf_threshold=1.0, max_detections=100000)),
    ("det", "mine", dict(mining_algorithm="aldd", class_distribution_scores="0,0", samples_per_gpu=1)),
    ("det", "mine", dict(mining_algorithm="random", seed=-7, img_size="16")),
    ("det", "infer", dict(conf_threshold=0.0, max_detections=1, samples_per_gpu=1)),
    # (img_size's upper bound, 8192, works too but costs minutes per image on a CPU: not run here)
    ("det", "infer", dict(conf_threshold=1.0, max_broken_ratio=0.0, img_size="33")),
    ("seg", "mine", dict(mining_algorithm="RSAL", superpixel_algorithm="slico", max_superpixel_per_image=1,
                         topk_superpixel_score=1, max_kept_mining_image=0)),
    ("seg", "mine", dict(mining_algorithm="RSAL", superpixel_algorithm="slic", max_superpixel_per_image=1,
                         topk_superpixel_score=100000, uncertainty_method="entropy", class_balance=False)),
    ("seg", "mine", dict(mining_algorithm="RSAL", superpixel_algorithm="mslic", max_superpixel_per_image=1,
                         uncertainty_method="margin", samples_per_gpu=1)),
    ("seg", "mine", dict(mining_algorithm="RSAL", superpixel_algorithm="seeds", max_superpixel_per_image=1,
                         max_kept_mining_image=1)),
    ("seg", "mine", dict(mining_algorithm="RSAL", superpixel_algorithm="seeds", max_superpixel_per_image=100000)),
    ("seg", "mine", dict(mining_algorithm="RIPU", ripu_region_radius=1, topk_superpixel_score=1)),
    ("seg", "mine", dict(mining_algorithm="RIPU", ripu_region_radius=100000, topk_superpixel_score=100000)),
    ("seg", "infer", dict(samples_per_gpu=1, save_color_mask=True, img_size="16")),
    ("det3d", "mine", dict(_n=2, aug_views=8, score_low=0.0, score_high=0.0, consistency_iou=0.0, calib_quantile=0.0,
                           min_calib_samples=1, min_points=0, collision_iou=0.0, samples_per_gpu=1)),
    ("det3d", "mine", dict(aug_views=1, score_low=1.0, score_high=1.0, consistency_iou=1.0, calib_quantile=1.0,
                           collision_iou=1.0, calibrate_thresholds=False, write_bank=False, mining_score="active",
                           max_detections=1)),
    ("det3d", "infer", dict(conf_threshold=0.0, max_detections=1, samples_per_gpu=1)),
    ("det3d", "infer", dict(conf_threshold=1.0, max_detections=100000)),
]


@pytest.mark.parametrize("kind,task,cfg", TASKS, ids=[f"{k}-{t}-{i}" for i, (k, t, _) in enumerate(TASKS)])
def test_mining_and_inference_knobs_at_their_bounds(stage_of, tmp_path, kind, task, cfg):
    cfg = dict(cfg)
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, task, n=cfg.pop("_n", 5), **cfg)
    assert run(str(ws / "in"), str(ws / "out")) == 0, (ws / "out" / "monitor.txt").read_text()
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
