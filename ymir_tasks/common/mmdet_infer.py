"""Inference over an mmdet model of a stage (detection, instance segmentation): the model at the
stage's input side with the detection cap, BGR batches of the candidates, and per image the
boxes, scores, labels (and masks) in original pixels."""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from executor.images import load_image

from . import runtime
from .candidates import BrokenCandidates, candidate_batches
from .forward import test_step_in_passes
from .mmdet_config import apply_detection_cap, model_pads, square_size, test_pipeline
from .models import Stage, find_stage, load_weights, stage_config
from .options import parse_img_size


def inference_dataset(class_names: Sequence[str], size: int, pad: bool = True) -> Dict:
    """The dataset entry mmdet's inference API reads its pipeline and class names from."""
    return dict(type="CocoDataset", ann_file="", data_prefix=dict(img=""), test_mode=True, lazy_init=True,
                metainfo=dict(classes=tuple(class_names)), pipeline=test_pipeline(size, False, pad=pad))


def load_model(ctx, stage: Stage, device: str, size: int, max_detections: int, score_thr: Optional[float] = None):
    from mmdet.apis import init_detector

    from . import mmdet_metric  # noqa: F401  (what the stage's config names: our metrics and loading step)

    cfg = stage_config(ctx, stage, "mmdet")
    cfg.test_dataloader = dict(dataset=inference_dataset(stage.class_names, size, not model_pads(cfg.model)))
    apply_detection_cap(cfg, max_detections, score_thr)
    model = init_detector(cfg, checkpoint=None, device=device)
    load_weights(model, stage.weights)
    return model.eval()


def model_for(ctx, config_name: str, max_detections: int, score_thr: Optional[float] = None):
    """(model, stage) of the run's model stage, at ``img_size`` or the side it was trained at."""
    stage = find_stage(ctx, config_name, required=("img_size",))
    trained = parse_img_size(stage.meta["img_size"], (640, 640), stage.meta_file)[0]
    size = square_size(ctx.cfg["img_size"], trained, ctx.cfg.source_file)
    return load_model(ctx, stage, runtime.device(), size, max_detections, score_thr), stage


def input_side(model) -> int:
    """The square side the model's test pipeline resizes to."""
    return int(model.cfg.test_dataloader.dataset.pipeline[1]["scale"][0])


def _load_bgr(item: Tuple[int, str]):
    idx, path = item
    rgb = load_image(path)
    return idx, path, np.ascontiguousarray(rgb[:, :, ::-1])


def batches(items: Sequence[Tuple[int, str]], batch_size: int, workers: int,
            broken: BrokenCandidates) -> Iterator[List]:
    """(idx, path, BGR image) batches; unreadable candidates go to ``broken``."""
    yield from candidate_batches(items, _load_bgr, batch_size, workers, broken)


def test_pipeline_of(model):
    """The model's test pipeline over decoded BGR arrays, built once per model."""
    pipe = getattr(model, "_ymir_array_pipeline", None)
    if pipe is None:
        import copy

        from mmcv.transforms import Compose
        from mmdet.utils import get_test_pipeline_cfg

        steps = copy.deepcopy(get_test_pipeline_cfg(model.cfg))
        steps[0] = dict(type="mmdet.LoadImageFromNDArray")  # the loader workers decoded the files
        pipe = Compose(steps)
        model._ymir_array_pipeline = pipe
    return pipe


def predict(model, images: List[np.ndarray], fp16: bool = False, min_score: float = 0.0) -> List[Dict[str, np.ndarray]]:
    """Per image {'boxes' xyxy [N,4], 'scores' [N], 'labels' [N], and 'masks' bool [N,H,W] when the
    model predicts them}, in original pixels, objects from ``min_score``. Forward passes sized for
    the device (:mod:`.forward`; mmdet's ``inference_detector`` runs the images one at a time)."""
    import torch

    pipe = test_pipeline_of(model)
    data = [pipe(dict(img=img, img_id=i)) for i, img in enumerate(images)]
    ctx = torch.autocast("cuda", dtype=torch.float16) if fp16 and torch.cuda.is_available() \
        else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        results = test_step_in_passes(model, data)
    out = []
    for r in results:
        p = r.pred_instances
        keep = p.scores >= min_score
        item = {"boxes": p.bboxes[keep].float().cpu().numpy(), "scores": p.scores[keep].float().cpu().numpy(),
                "labels": p.labels[keep].cpu().numpy()}
        if "masks" in p:
            item["masks"] = p.masks[keep].cpu().numpy().astype(bool)
        out.append(item)
    return out


def detect(model, images: List[np.ndarray], fp16: bool = False):
    """Per image (boxes xyxy [N,4], scores [N], labels [N]) in original pixels."""
    return [(d["boxes"], d["scores"], d["labels"]) for d in predict(model, images, fp16)]
