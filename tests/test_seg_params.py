"""Each training hyper-parameter of the seed's table is accepted and has its effect."""
from __future__ import annotations

from pathlib import Path

import pytest

from ymir_tasks.common.safe_config import read_config_data
import torch
import yaml
from mmengine.config import Config

from executor.monitor import parse_monitor
from executor.verify import verify_output

from conftest import REPO
from seg_helpers import result, run_cli, train_ws


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """UI strings everywhere, save_least_file off, 2 checkpoints kept, a config path, options."""
    ws = train_ws(tmp_path_factory.mktemp("a") / "ws", n_train=12, n_val=4,
                  config_file=str(REPO / "configs" / "seg" / "tiny.py"), max_iters="8", interval="2",
                  max_keep_ckpts="2", save_least_file="False", samples_per_gpu="2", workers_per_gpu="1",
                  img_size="64,48", learning_rate="0.02", ignore_blank_area="true", fp16="true",
                  cfg_options="model.decode_head.dropout_ratio=0.3", args_options="--seed 7",
                  export_format="seg-mask:raw", shm_size="64G")
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    return ws, r.stdout


def _cfg(ws: Path, stage: str = "last") -> Config:
    return Config(read_config_data(str(ws / "out" / "models" / stage / "seg_config.yaml")))


def test_strings_from_the_ui_behave_like_typed_values(run_a):
    ws, log = run_a
    cfg = _cfg(ws)
    assert cfg.train_cfg.max_iters == 8 and cfg.train_cfg.val_interval == 2
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_dataloader.num_workers == 1
    assert log.count("evaluation at iteration") == 4  # interval 2 over 8 iterations
    assert verify_output(str(ws / "in"), str(ws / "out")) == []


def test_max_keep_ckpts_and_save_least_file_false(run_a):
    ws, _ = run_a
    kept = sorted(p.name for p in (ws / "out" / "work_dirs" / "seg").glob("iter_*.pth"))
    assert kept == ["iter_6.pth", "iter_8.pth"]
    last = result(ws)["model_stages"]["last"]["files"]
    assert last == ["model.pth", "seg_config.yaml", "ymir-model.yaml", "iter_6.pth", "iter_8.pth"]


def test_img_size_lr_cfg_and_args_options_and_config_path(run_a):
    ws, _ = run_a
    cfg = _cfg(ws)
    assert cfg.train_dataloader.dataset.pipeline[2]["scale"] == (64, 48)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.02)
    assert cfg.model.decode_head.dropout_ratio == pytest.approx(0.3)
    assert cfg.randomness.seed == 7
    assert cfg.optim_wrapper.type == "OptimWrapper"  # fp16 is ignored on CPU
    meta = yaml.safe_load((ws / "out" / "models" / "last" / "ymir-model.yaml").read_text())
    assert meta["img_size"] == [64, 48]


def test_ignore_blank_area_keeps_the_ymir_classes_only(run_a):
    ws, _ = run_a
    meta = yaml.safe_load((ws / "out" / "models" / "last" / "ymir-model.yaml").read_text())
    assert meta["with_background"] is False and meta["model_classes"] == ["disc", "square"]
    assert _cfg(ws).model.decode_head.num_classes == 2


def test_save_least_file_true_early_stopping_and_partial_pretrained(run_a, tmp_path):
    a, _ = run_a
    ws = train_ws(tmp_path / "ws", n_train=12, n_val=4, max_iters=12, interval=2, samples_per_gpu=2,
                  learning_rate=1e-12, early_stop_patience=1,
                  pretrained_model_params=["/in/models/a/model.pth"])
    (ws / "in" / "models" / "a").mkdir(parents=True)
    (ws / "in" / "models" / "a" / "model.pth").write_bytes((a / "out" / "models" / "last" / "model.pth").read_bytes())
    r = run_cli(ws)
    assert r.returncode == 0, r.stdout[-3000:]
    # run A had 2 classes (blank area ignored), this one 3: the heads' last layers do not fit
    line = next(l for l in r.stdout.splitlines() if "pretrained weights" in l)
    import re
    loaded, total = [int(x) for x in re.search(r"(\d+) of (\d+) model tensors loaded", line).groups()]
    assert 0 < loaded < total
    assert r.stdout.count("evaluation at iteration") == 2  # no improvement after the first: stopped
    assert result(ws)["model_stages"]["last"]["files"] == ["model.pth", "seg_config.yaml", "ymir-model.yaml"]
    assert list((ws / "out" / "work_dirs" / "seg").glob("*.pth")) == []


def test_pretrained_weights_that_fit_nothing_are_refused(tmp_path):
    ws = train_ws(tmp_path / "ws", n_train=4, n_val=2, max_iters=2, interval=2,
                  pretrained_model_params=["/in/models/x/other.pth"])
    (ws / "in" / "models" / "x").mkdir(parents=True)
    torch.save({"some.other.layer": torch.zeros(3, 3)}, ws / "in" / "models" / "x" / "other.pth")
    r = run_cli(ws)
    assert r.returncode == 1
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["return_code"] == 300004 and "other.pth" in rec["message"] and "fits" in rec["message"]


@pytest.mark.parametrize("key,value,code", [
    ("config_file", "no-such-preset", 300001),
    ("max_iters", "many", 300001),
    ("args_options", "--frobnicate", 300001),
    ("cfg_options", "no_equals_sign", 300001),
    ("img_size", "0,-3", 300001),
])
def test_bad_training_values_stop_with_a_clear_error(tmp_path, key, value, code):
    ws = train_ws(tmp_path / "ws", n_train=2, n_val=1, **dict({"max_iters": 2, "interval": 2}, **{key: value}))
    r = run_cli(ws)
    assert r.returncode == 1
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["return_code"] == code and f"'{key}'" in rec["message"]
    assert not (ws / "out" / "models" / "result.yaml").exists()
