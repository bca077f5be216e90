"""Segmentation mining end to end on the synthetic workspace: both algorithms with every
superpixel method, masks, and 2 processes giving the single-process result.tsv."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from executor.demo import _handoff_model
from executor.runner import run
from executor.verify import verify_output
from executor.workspace import make_workspace
from ymir_tasks.seg.mining.superpixels import METHODS

from seg_helpers import assert_previews, run_cli, train_ws

MINE = {"samples_per_gpu": 4, "workers_per_gpu": 1, "max_superpixel_per_image": 48, "max_kept_mining_image": 4}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    ws = train_ws(tmp_path_factory.mktemp("segm") / "train", n_train=24, n_val=8, max_iters=120, interval=60)
    assert run(str(ws / "in"), str(ws / "out")) == 0
    return ws


def _mine_ws(model_ws: Path, dest: Path, **cfg) -> Path:
    make_workspace(str(dest), "seg", "mine", num_candidates=12, seed=5, overrides=dict(MINE, **cfg))
    _handoff_model(model_ws / "out", dest)
    return dest


def _tsv(ws: Path):
    return [l.split("\t") for l in (ws / "out" / "result.tsv").read_text().splitlines()]


@pytest.mark.parametrize("algorithm", ["RSAL", "RIPU"])
@pytest.mark.parametrize("method", METHODS)
def test_every_algorithm_and_superpixel_method_passes_verify(model_dir, tmp_path, algorithm, method):
    ws = _mine_ws(model_dir, tmp_path / "mine", mining_algorithm=algorithm, superpixel_algorithm=method)
    assert run(str(ws / "in"), str(ws / "out")) == 0
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    rows = _tsv(ws)
    assert len(rows) == 12 and len({r[0] for r in rows}) == 12
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    masks = sorted((ws / "out" / "masks").glob("*.png"))
    assert [m.stem for m in masks] == sorted(Path(r[0]).stem for r in rows[:4])  # the top 4 images
    for m in masks:
        a = np.array(Image.open(m))
        assert set(np.unique(a)) <= {0, 255} and (a == 255).any()
    assert not (ws / "out" / "mining-tmp").exists()
    if method == "slico":
        _assert_regions_drawn(ws, rows, masks)


def _assert_regions_drawn(ws: Path, rows, masks) -> None:
    """Every candidate has a preview; the regions to label are tinted exactly where the masks
    are, and images without a kept mask are shown as they are."""
    import cv2

    from ymir_tasks.common.previews import fit

    pictures = assert_previews(ws, 12)
    for k, (row, pic) in enumerate(zip(rows, pictures)):
        img, _ = fit(cv2.imread(str(ws / "in" / row[0][len("/in/"):]), cv2.IMREAD_COLOR))
        body = pic[pic.shape[0] - img.shape[0]:].astype(int)  # under the caption band
        diff = np.abs(body - img.astype(int)).sum(2)
        if k < 4:
            mask = cv2.resize(np.array(Image.open(masks[[m.stem for m in masks].index(Path(row[0]).stem)])),
                              (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
            inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            outer = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
            assert diff[inner].mean() > 60 and diff[outer].mean() < 8, (k, diff[inner].mean(), diff[outer].mean())
        else:
            assert diff.mean() < 8, (k, diff.mean())


def test_mining_is_deterministic(model_dir, tmp_path):
    a = _mine_ws(model_dir, tmp_path / "a", mining_algorithm="RSAL")
    b = _mine_ws(model_dir, tmp_path / "b", mining_algorithm="RSAL")
    assert run(str(a / "in"), str(a / "out")) == 0 and run(str(b / "in"), str(b / "out")) == 0
    assert _tsv(a) == _tsv(b)


@pytest.mark.parametrize("algorithm", ["RSAL", "RIPU"])
def test_two_processes_give_the_single_process_result(model_dir, tmp_path, algorithm):
    one = _mine_ws(model_dir, tmp_path / "one", mining_algorithm=algorithm, samples_per_gpu=1, workers_per_gpu=0)
    two = _mine_ws(model_dir, tmp_path / "two", mining_algorithm=algorithm, samples_per_gpu=1, workers_per_gpu=0,
                   gpu_count=2)
    assert run(str(one / "in"), str(one / "out")) == 0
    r = run_cli(two)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "--nproc_per_node=2" in r.stdout + r.stderr
    assert verify_output(str(two / "in"), str(two / "out")) == []
    assert (one / "out" / "result.tsv").read_text() == (two / "out" / "result.tsv").read_text()
