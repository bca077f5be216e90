"""A dense scene keeps all its objects at the default settings (one of the seeds lost a third of
its vehicles to a cap of 100 boxes per image)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from mmengine.config import Config

from executor.env import PathMap, load_env
from executor.results import DetectionInferWriter
from ymir_tasks.common.mmconfig import set_num_classes
from ymir_tasks.common import loading  # noqa: F401  (registers YmirLoadImage, as the infer path does)
from ymir_tasks.common.mmdet_config import apply_detection_cap
from ymir_tasks.det.config import preset_file
from ymir_tasks.common.mmdet_infer import inference_dataset
from ymir_tasks.det.params import INFER, TRAINING

from conftest import write_env


def test_400_objects_survive_nms_caps_and_the_writer(tmp_path):
    from mmdet.apis import init_detector

    defaults = INFER.defaults()
    cfg = Config.fromfile(str(preset_file(TRAINING.defaults()["config_file"])))  # the default preset
    set_num_classes(cfg.model, 1)
    cfg.test_dataloader = dict(dataset=inference_dataset(["car"], 640))
    apply_detection_cap(cfg, defaults["max_detections"])
    model = init_detector(cfg, checkpoint=None, device="cpu").eval()
    size, strides = 640, (8, 16, 32)
    cls_scores = [torch.full((1, 1, size // s, size // s), -10.0) for s in strides]
    bbox_preds = [torch.zeros((1, 4, size // s, size // s)) for s in strides]
    # 20 x 20 objects of 16 x 16 px, 32 px apart, detected confidently on the stride-8 level
    expected = []
    for r in range(20):
        for c in range(20):
            y, x = 2 + 4 * r, 2 + 4 * c  # stride-8 grid cells → centres at (16 + 32 c, 16 + 32 r)
            cls_scores[0][0, 0, y, x] = 4.0
            bbox_preds[0][0, :, y, x] = 8.0  # 8 px to each side
            expected.append((x * 8 - 8, y * 8 - 8, x * 8 + 8, y * 8 + 8))
    meta = dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0), pad_shape=(size, size))
    with torch.no_grad():
        res = model.bbox_head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=[meta], cfg=model.test_cfg,
                                              rescale=True)[0]
    keep = res.scores >= defaults["conf_threshold"]
    assert int(keep.sum()) == 400
    got = sorted(tuple(round(v) for v in b) for b in res.bboxes[keep].tolist())
    assert got == sorted(expected)
    write_env(tmp_path / "in", run_training=False, run_infer=True)
    env = load_env(str(tmp_path / "in" / "env.yaml"), PathMap(str(tmp_path / "in"), str(tmp_path / "out")))
    w = DetectionInferWriter(env, ["car"])
    w.add("/in/assets/aa/dense.jpg", [(int(l), float(s), *b) for b, s, l in
                                      zip(res.bboxes[keep].tolist(), res.scores[keep].tolist(), res.labels[keep])])
    w.close()
    boxes = json.loads(Path(env.output.infer_result_file).read_text())["detection"]["dense.jpg"]["boxes"]
    assert len(boxes) == 400 and {(b["box"]["w"], b["box"]["h"]) for b in boxes} == {(16, 16)}
