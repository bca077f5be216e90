"""Segmentation inference: the stage from ``model_params_path`` → COCO RLE per
(image, class present), every candidate present, batched and streamed.

When ``model_params_path`` lists only top-level files (as the public verifier
does), the weights are found through ``/in/models/result.yaml`` or
``ymir-info.yaml`` (best stage), then by scanning ``/in/models``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

from executor.images import load_image
from executor.index import CandidateList
from executor.results import encode_label_map

from ..common import runtime
from ..common.candidates import BrokenCandidates, candidate_batches
from ..common.shards import CandidateShards, write_coco_infer_result
from ..common.models import Stage, find_stage, load_weights, stage_config
from .data import IGNORE, LabelSpace
from .config import CONFIG

log = logging.getLogger(__name__)

META_FIELDS = ("model_classes", "with_background", "img_size")


def find_model(ctx) -> Stage:
    return find_stage(ctx, CONFIG, required=META_FIELDS)


def load_model(ctx, stage: Stage, device: str, img_size: Tuple[int, int]):
    from mmseg.apis import init_model

    from . import mm  # noqa: F401
    from .config import test_pipeline

    cfg = stage_config(ctx, stage, "mmseg")
    cfg.test_pipeline = test_pipeline(img_size, False)
    model = init_model(cfg, checkpoint=None, device=device)
    load_weights(model, stage.weights)
    model.eval()
    return model


def _load_bgr(item: Tuple[int, str]):
    idx, path = item
    rgb = load_image(path)
    return idx, path, np.ascontiguousarray(rgb[:, :, ::-1])  # mmseg pipelines take BGR


def _array_pipeline(model):
    """The model's test pipeline over decoded BGR arrays, built once per model."""
    pipe = getattr(model, "_ymir_array_pipeline", None)
    if pipe is None:
        from mmcv.transforms import Compose

        steps = [dict(s) for s in model.cfg.test_pipeline if s.get("type") != "LoadAnnotations"]
        steps[0] = dict(type="mmseg.LoadImageFromNDArray")  # the loader workers decoded the files
        pipe = Compose(steps)
        model._ymir_array_pipeline = pipe
    return pipe


def segment(model, images: Sequence[np.ndarray], fp16: bool = False) -> list:
    """mmseg's ``SegDataSample`` per BGR image (``seg_logits`` and ``pred_sem_seg`` at the
    original size), as ``inference_model`` gives, in forward passes sized for the device
    (:mod:`..common.forward`), fp16 on a GPU if asked."""
    import torch

    from ..common.forward import test_step_in_passes

    pipe = _array_pipeline(model)
    data = [pipe(dict(img=img)) for img in images]
    autocast = torch.autocast("cuda", dtype=torch.float16) if fp16 and torch.cuda.is_available() \
        else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), autocast:
        return test_step_in_passes(model, data)


def predict_batches(model, items: Sequence[Tuple[int, str]], batch_size: int, workers: int,
                    broken: BrokenCandidates, fp16: bool = False):
    """Yield (idx, path, HxW predicted model class ids) in candidate order; unreadable candidates
    go to ``broken``."""
    for batch in candidate_batches(items, _load_bgr, batch_size, workers, broken):
        for (idx, path, _), res in zip(batch, segment(model, [img for *_, img in batch], fp16)):
            yield idx, path, res.pred_sem_seg.data[0].cpu().numpy()


@runtime.distributed_entry
def infer(ctx, launcher) -> None:
    stage = find_model(ctx)
    meta = stage.meta
    labels = LabelSpace(list(meta["class_names"]), bool(meta["with_background"]))
    if list(ctx.class_names) != labels.class_names:
        log.warning("config class_names %s differ from the model's %s: the model's are used",
                    ctx.class_names, labels.class_names)
    from ..common.options import parse_img_size

    img_size = parse_img_size(ctx.cfg["img_size"], parse_img_size(meta["img_size"], (512, 512), stage.meta_file),
                              ctx.cfg.source_file)
    model = load_model(ctx, stage, runtime.device(), img_size)
    index = ctx.env.input.candidate_index_file
    cands = CandidateList.read(index, path_map=ctx.env.path_map)
    shards = CandidateShards(ctx, launcher, "infer", cands, ctx.cfg["max_broken_ratio"])
    masks_dir = os.path.join(ctx.env.output.root_dir, "masks") if ctx.cfg["save_color_mask"] else None
    if masks_dir:
        os.makedirs(masks_dir, exist_ok=True)
    from .config import palette

    colours = np.array(palette(len(labels.class_names) + 1)[1:] + [[0, 0, 0]] * (256 - len(labels.class_names)),
                       dtype=np.uint8)
    log.info("inference: %d of %d candidates here, batch %d, model %s", len(shards.part), len(cands),
             ctx.cfg["samples_per_gpu"], stage.dir)
    done = 0
    for idx, path, pred in predict_batches(model, shards.part, ctx.cfg["samples_per_gpu"],
                                           ctx.cfg["workers_per_gpu"], shards.broken, ctx.cfg["fp16"]):
        label = labels.to_ymir(pred)
        shards.write(idx, encode_label_map(label, len(labels.class_names), ignore_index=IGNORE))
        if masks_dir:
            from PIL import Image
            Image.fromarray(colours[label]).save(os.path.join(masks_dir, Path(path).stem + ".png"))
        done += 1
        if shards.rank == 0:
            ctx.progress(0.95 * shards.progress(done))
    write_coco_infer_result(ctx, shards, cands, labels.class_names)
