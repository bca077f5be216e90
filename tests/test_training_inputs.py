"""Training inputs are checked before the Runner starts, with the readers inference and mining use
(300003 for an unreadable image or scan, naming it); errors raised inside training loader workers
keep their code; every reader and loader takes the stored pixels, whatever EXIF orientation says."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from executor.errors import YmirError
from executor.images import check_image, image_size, load_image
from executor.runner import run
from executor.workspace import make_workspace

from stages import IMAGE_BREAKS, LOWER_BOUNDS, SCAN_BREAKS, local, monitor

SMALL = {"det": dict(num_train=8, num_val=4), "seg": dict(num_train=8, num_val=4),
         "det3d": dict(num_train=6, num_val=3)}


def _train_ws(tmp_path, kind, **cfg):
    ws = tmp_path / "train"
    make_workspace(str(ws), kind, "train", overrides=dict(LOWER_BOUNDS[kind], **cfg), **SMALL[kind])
    return ws


def _index_images(ws, split="train"):
    return [ln.split("\t")[0] for ln in (ws / "in" / f"{split}-index.tsv").read_text().splitlines() if ln]


CASES = [("det", "truncated", "train"), ("det", "text", "val"), ("det", "bomb", "train"),
         ("seg", "truncated", "train"), ("seg", "cut_early", "val"), ("seg", "empty", "train"),
         ("det3d", "empty", "train"), ("det3d", "nan", "train"), ("det3d", "cut", "val")]


@pytest.mark.parametrize("kind,how,split", CASES)
def test_a_broken_training_input_stops_training_before_it_starts(tmp_path, kind, how, split):
    ws = _train_ws(tmp_path, kind)
    path = _index_images(ws, split)[1]
    f = local(ws, path)
    f.write_bytes((SCAN_BREAKS if kind == "det3d" else IMAGE_BREAKS)[how](f.read_bytes()))
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["state"] == 4 and rec["return_code"] == 300003, rec
    assert f.name in rec["message"]
    assert not (ws / "out" / "models" / "result.yaml").exists()
    assert not list((ws / "out").rglob("*.pth"))  # the Runner never started


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["det", "seg", "det3d"])
def test_an_error_in_a_training_loader_worker_keeps_its_code_and_file(tmp_path, monkeypatch, kind, workers):
    """An input that breaks after the check (a file replaced mid-run) fails in the loader's worker."""
    ws = _train_ws(tmp_path, kind, workers_per_gpu=workers, samples_per_gpu=2)
    path = _index_images(ws)[0]
    f = local(ws, path)
    f.write_bytes((SCAN_BREAKS["nan"] if kind == "det3d" else IMAGE_BREAKS["truncated"])(f.read_bytes()))
    # skip the check before training, so that the broken input reaches the training loader
    if kind == "det":
        from executor.images import image_size as header_only
        monkeypatch.setattr("ymir_tasks.det.data.check_images", lambda paths, w=0: [header_only(p) for p in paths])
    elif kind == "seg":
        monkeypatch.setattr("ymir_tasks.seg.data.check_images", lambda paths, w=0: None)
    else:
        from executor.pointcloud import check_scan_size
        monkeypatch.setattr("ymir_tasks.det3d.data.load_points", check_scan_size)
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["state"] == 4 and rec["return_code"] == 300003, rec
    assert f.name in rec["message"] and "Caught" not in rec["message"]


# ---------------------------------------------------------------- EXIF orientation

def _jpeg(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_readers_and_loaders_take_the_stored_pixels_whatever_the_orientation(tmp_path, orientation):
    from ymir_tasks.common.loading import YmirLoadImage

    rng = np.random.RandomState(orientation)
    pixels = rng.randint(0, 255, (48, 80, 3)).astype(np.uint8)
    plain, tagged = tmp_path / "plain.jpg", tmp_path / "tagged.jpg"
    plain.write_bytes(_jpeg(pixels, 1))
    tagged.write_bytes(_jpeg(pixels, orientation))
    assert Image.open(tagged).getexif()[0x0112] == orientation
    assert image_size(str(tagged)) == check_image(str(tagged)) == (80, 48)
    assert np.array_equal(load_image(str(tagged)), load_image(str(plain)))
    out = YmirLoadImage().transform({"img_path": str(tagged)})
    assert out["img_shape"] == out["ori_shape"] == (48, 80)
    assert np.array_equal(out["img"], load_image(str(plain))[:, :, ::-1])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_detection_pipeline_gives_the_same_sample_with_and_without_the_tag(tmp_path, orientation):
    """The real training and evaluation pipelines: boxes stay on the pixels they were drawn on."""
    from mmcv.transforms import Compose

    from ymir_tasks.common import loading  # noqa: F401  (registers the loading step)
    from ymir_tasks.common.mmdet_config import test_pipeline, train_pipeline

    import mmdet.utils
    mmdet.utils.register_all_modules(init_default_scope=True)
    pixels = np.random.RandomState(0).randint(0, 255, (96, 160, 3)).astype(np.uint8)
    box = np.array([[20.0, 10.0, 100.0, 50.0]], dtype=np.float32)
    out = {}
    for name, o in (("plain", 1), ("tagged", orientation)):
        (tmp_path / f"{name}.jpg").write_bytes(_jpeg(pixels, o))
        sample = dict(img_path=str(tmp_path / f"{name}.jpg"), img_id=0, instances=[
            dict(bbox=box[0].tolist(), bbox_label=0, ignore_flag=0)])
        deterministic = [t for t in train_pipeline(160, "light") if t["type"] != "RandomFlip"]
        for which, steps in (("val", test_pipeline(160, True)), ("train", deterministic)):
            out[name, which] = Compose(steps)(dict(sample))
    for which in ("val", "train"):
        a, b = out["plain", which], out["tagged", which]
        assert np.array_equal(a["inputs"].numpy(), b["inputs"].numpy())
        assert np.allclose(a["data_samples"].gt_instances.bboxes.tensor.numpy(),
                           b["data_samples"].gt_instances.bboxes.tensor.numpy())


def test_segmentation_trains_on_rotated_tagged_images(tmp_path):
    """Labels are in the stored frame; images tagged to turn 90° used to fail to stack (160004)."""
    ws = _train_ws(tmp_path, "seg", max_iters=2, samples_per_gpu=4)
    for path in _index_images(ws)[::2] + _index_images(ws, "val")[::2]:
        f = local(ws, path)
        f.write_bytes(_jpeg(load_image(str(f)), 6))  # same pixels, orientation 6: "rotate 90° to view"
    assert run(str(ws / "in"), str(ws / "out")) == 0, monitor(ws)
    assert (ws / "out" / "models" / "best" / "model.pth").is_file()


def test_a_png_with_an_exif_orientation_is_read_as_stored(tmp_path):
    pixels = np.random.RandomState(1).randint(0, 255, (30, 50, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "t.png", exif=exif.tobytes())
    assert np.array_equal(load_image(str(tmp_path / "t.png")), pixels)
    with pytest.raises(YmirError):
        check_image(str(tmp_path / "missing.png"))
