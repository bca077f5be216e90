"""Instance-segmentation inference: per object a compressed RLE (string ``counts``), ``bbox``,
``area``, ``category_id`` of the model's classes and ``confidence`` in COCO ``infer-result.json``
(contract §5.5, type 4); every candidate present, batched, several processes shard the candidates
and rank 0 merges in candidate order."""
from __future__ import annotations

import logging
from typing import Any, Dict, List

import numpy as np

from executor.index import CandidateList

from ..common import runtime
from ..common.mmdet_infer import batches, model_for, predict
from ..common.shards import CandidateShards, write_coco_infer_result
from .config import CONFIG

log = logging.getLogger(__name__)


def encode_instances(pred: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
    """The COCO annotations (without ids) of one image's predictions; empty masks are left out."""
    from pycocotools import mask as mask_utils

    out = []
    for m, s, lab in zip(pred["masks"], pred["scores"], pred["labels"]):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        area = int(mask_utils.area(rle))
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        if area <= 0 or bbox[2] <= 0 or bbox[3] <= 0:
            continue
        out.append({"category_id": int(lab), "iscrowd": 0, "bbox": bbox, "area": area,
                    "segmentation": {"size": [int(m.shape[0]), int(m.shape[1])], "counts": rle["counts"].decode("ascii")},
                    "confidence": float(min(max(s, 0.0), 1.0))})
    return out


@runtime.distributed_entry
def infer(ctx, launcher) -> None:
    conf = ctx.cfg["conf_threshold"]
    model, stage = model_for(ctx, CONFIG, ctx.cfg["max_detections"], conf)
    cands = CandidateList.read(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map)
    shards = CandidateShards(ctx, launcher, "infer", cands, ctx.cfg["max_broken_ratio"])
    log.info("inference: %d of %d candidates here, batch %d, conf %.3f, up to %d objects per image, model %s",
             len(shards.part), len(cands), ctx.cfg["samples_per_gpu"], conf, ctx.cfg["max_detections"], stage.dir)
    done = 0
    for batch in batches(shards.part, ctx.cfg["samples_per_gpu"], ctx.cfg["workers_per_gpu"], shards.broken):
        imgs = [img for *_, img in batch]
        for (idx, _, img), pred in zip(batch, predict(model, imgs, ctx.cfg["fp16"], min_score=conf)):
            shards.write(idx, (img.shape[0], img.shape[1], encode_instances(pred)))
            done += 1
            if shards.rank == 0:
                ctx.progress(0.95 * shards.progress(done))
    write_coco_infer_result(ctx, shards, cands, stage.class_names)
