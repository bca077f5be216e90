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
from typing import Dict, Sequence, Tuple

import numpy as np
import yaml

from executor.errors import model_error
from executor.images import load_image
from executor.index import count_lines, iter_candidates
from executor.results import SegmentationInferWriter

from ..common import runtime
from .data import IGNORE, LabelSpace
from ..common.models import find_stage
from .train import CONFIG

log = logging.getLogger(__name__)


def find_model(ctx) -> Dict[str, str]:
    return find_stage(ctx, "segmentation", CONFIG)


def load_model(paths: Dict[str, str], device: str, img_size: Tuple[int, int]):
    from mmengine.config import Config
    from mmseg.apis import init_model

    from . import mm  # noqa: F401
    from .config import test_pipeline

    cfg = Config.fromfile(paths["config"])
    cfg.test_pipeline = test_pipeline(img_size, False)
    cfg.model.pop("pretrained", None)
    model = init_model(cfg, checkpoint=None, device=device)
    state = runtime.load_state_dict_file(paths["weights"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise model_error(f"weights do not fit the stage's config ({len(missing)} tensors missing, e.g. "
                          f"{missing[0]})", file=paths["weights"])
    model.eval()
    return model


class _Images:
    """Map-style dataset of the candidate images, decoded by content in loader workers."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        rgb = load_image(self.paths[i])
        return self.paths[i], np.ascontiguousarray(rgb[:, :, ::-1])  # mmseg pipelines take BGR


def predict_batches(model, paths: Sequence[str], batch_size: int, workers: int, fp16: bool = False):
    """Yield (path, HxW predicted model class ids) in candidate order."""
    import torch
    from mmseg.apis import inference_model
    from torch.utils.data import DataLoader

    runtime.fork_safe_loader_setup()
    loader = DataLoader(_Images(paths), batch_size=batch_size, num_workers=workers,
                        collate_fn=lambda batch: batch)
    autocast = torch.autocast("cuda", dtype=torch.float16) if fp16 and torch.cuda.is_available() \
        else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), autocast:
        for batch in loader:
            results = inference_model(model, [img for _, img in batch])
            for (path, _), res in zip(batch, results):
                yield path, res.pred_sem_seg.data[0].cpu().numpy()


def infer(ctx) -> None:
    paths = find_model(ctx)
    with open(paths["meta"], encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    labels = LabelSpace(list(meta["class_names"]), bool(meta["with_background"]))
    if list(ctx.class_names) != labels.class_names:
        log.warning("config class_names %s differ from the model's %s: the model's are used",
                    ctx.class_names, labels.class_names)
    from ..common.options import parse_img_size

    img_size = parse_img_size(ctx.cfg["img_size"], tuple(meta["img_size"]), ctx.cfg.source_file)
    model = load_model(paths, runtime.device(), img_size)
    index = ctx.env.input.candidate_index_file
    total = count_lines(index)
    cands = [c.image for c in iter_candidates(index, path_map=ctx.env.path_map)]
    writer = SegmentationInferWriter(ctx.env, labels.class_names)
    masks_dir = os.path.join(ctx.env.output.root_dir, "masks") if ctx.cfg["save_color_mask"] else None
    if masks_dir:
        os.makedirs(masks_dir, exist_ok=True)
    from .config import palette

    colours = np.array(palette(len(labels.class_names) + 1)[1:] + [[0, 0, 0]] * (256 - len(labels.class_names)),
                       dtype=np.uint8)
    log.info("inference: %d candidates, batch %d, model %s", total, ctx.cfg["samples_per_gpu"], paths["dir"])
    done = 0
    for path, pred in predict_batches(model, cands, ctx.cfg["samples_per_gpu"], ctx.cfg["workers_per_gpu"],
                                      ctx.cfg["fp16"]):
        label = labels.to_ymir(pred)
        writer.add(path, label, ignore_index=IGNORE)
        if masks_dir:
            from PIL import Image
            Image.fromarray(colours[label]).save(os.path.join(masks_dir, Path(path).stem + ".png"))
        done += 1
        ctx.progress(done / max(total, 1))
    writer.close()
    log.info("inference: wrote %s (%d images, %d annotations)", ctx.env.output.infer_result_file,
             writer.n_images, writer.n_anns)
