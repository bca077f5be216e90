"""The presets' pretrained checkpoints: installed only when their sha256 matches their OpenMMLab
name, kept as plain state dicts, and the weights training starts from when the platform gives
none. No network here: checkpoints are made locally in OpenMMLab's format (the download itself is
the same code reading a URL instead of a folder)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from executor.workspace import make_workspace
from ymir_tasks.common import preset_weights
from ymir_tasks.common.preset_weights import checkpoint_name, install, preset_checkpoints, sha256_of

from conftest import REPO
from stages import monitor

RTMDET_URL = dict((p, u) for _, p, u in preset_checkpoints())["rtmdet_tiny"]


def _openmmlab_checkpoint(path, n_classes=80):
    """A checkpoint as OpenMMLab publishes them: meta (with the config text) and the state dict of
    the preset's model, here with COCO's 80 classes."""
    from mmengine.config import Config
    from mmengine.registry import MODELS
    import mmdet.utils

    mmdet.utils.register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(REPO / "configs" / "det" / "rtmdet_tiny.py"))
    cfg.model.bbox_head.num_classes = n_classes
    model = MODELS.build(cfg.model)
    torch.save({"meta": {"mmengine_version": "0.7.0", "epoch": 300, "config": cfg.pretty_text[:200]},
                "state_dict": model.state_dict()}, path)
    return model.state_dict()


def test_every_real_preset_names_an_openmmlab_checkpoint():
    named = {p for _, p, _ in preset_checkpoints()}
    assert named == {"rtmdet_tiny", "fastscnn", "deeplabv3plus", "pointpillars", "rtmdet_ins_tiny", "mask_rcnn_r50"}
    for _, _, url in preset_checkpoints():
        assert url.startswith("https://download.openmmlab.com/") and len(preset_weights.expected_prefix(
            checkpoint_name(url))) == 8


def test_a_checkpoint_whose_sha256_matches_its_name_is_kept_as_a_plain_state_dict(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    made = tmp_path / "made.pth"
    state = _openmmlab_checkpoint(made)
    name = f"rtmdet_tiny_local-{sha256_of(made)[:8]}.pth"
    made.rename(src / name)
    row = install(f"https://example.invalid/x/{name}", tmp_path / "weights", source=src)
    assert row["name"] == name and row["tensors"] == len(state)
    kept = torch.load(tmp_path / "weights" / name, weights_only=True)
    assert set(kept) == set(state) and all(torch.equal(kept[k], state[k]) for k in state)


def test_a_wrong_checksum_fails_the_install(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for _, _, url in preset_checkpoints():  # the real names, other content
        _openmmlab_checkpoint(src / checkpoint_name(url), n_classes=3)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "fetch-weights.py"), str(tmp_path / "w"), "--source",
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "does not match" in r.stderr
    assert not [p for p in (tmp_path / "w").glob("*.pth")]  # nothing unverified is kept


def _train(tmp_path, weights_dir, **cfg):
    ws = tmp_path / "train"
    make_workspace(str(ws), "det", "train", num_train=4, num_val=2,
                   overrides=dict({"config_file": "rtmdet_tiny", "img_size": 64, "max_epochs": 1, "samples_per_gpu": 4,
                                   "workers_per_gpu": 0}, **cfg))
    env = dict(os.environ, YMIR_WEIGHTS_DIR=str(weights_dir))
    r = subprocess.run([sys.executable, "-m", "executor", "run", "--in", str(ws / "in"), "--out", str(ws / "out")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:]
    return ws, r.stdout


def test_training_starts_from_the_presets_checkpoint_when_the_image_has_it(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    state = _openmmlab_checkpoint(tmp_path / "c.pth")
    torch.save(state, weights / checkpoint_name(RTMDET_URL))  # as tools/fetch-weights.py keeps it
    ws, log = _train(tmp_path, weights)
    line = next(ln for ln in log.splitlines() if "pretrained weights" in ln)
    assert checkpoint_name(RTMDET_URL) in line and "the preset's checkpoint" in line
    # COCO's 80-class head does not fit the 2 classes: those tensors are skipped and counted
    loaded, own, skipped, total = map(int, re.search(r"(\d+) of (\d+) model tensors loaded \((\d+) of the file's "
                                                     r"(\d+) skipped", line).groups())
    assert total == len(state) and 0 < skipped and loaded + skipped == total and loaded <= own
    assert monitor(ws)["state"] == 2


def test_without_the_checkpoint_training_says_so_and_starts_from_random_weights(tmp_path):
    _, log = _train(tmp_path, tmp_path / "empty")
    assert "is not in" in log and "training from random weights" in log


def test_pretrained_weights_none_switches_the_preset_checkpoint_off(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(_openmmlab_checkpoint(tmp_path / "c.pth"), weights / checkpoint_name(RTMDET_URL))
    _, log = _train(tmp_path, weights, pretrained_weights="none")
    assert "training from random weights: pretrained_weights is none" in log
    assert "pretrained weights" not in log


@pytest.mark.parametrize("value", ["/in/no-such.pth"])
def test_a_pretrained_weights_path_that_does_not_exist_is_300001(tmp_path, value):
    ws = tmp_path / "train"
    make_workspace(str(ws), "det", "train", num_train=4, num_val=2,
                   overrides={"config_file": "tiny", "max_epochs": 1, "pretrained_weights": value})
    from executor.runner import run
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["return_code"] == 300001 and "pretrained_weights" in rec["message"]
