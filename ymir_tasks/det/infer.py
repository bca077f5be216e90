"""Detection inference: batched, ``conf_threshold``, up to ``max_detections`` boxes per image,
integer boxes per the contract, every candidate present, streamed. Several processes shard the
candidates (``[rank::world]``) and rank 0 merges in candidate order."""
from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from executor.images import load_image
from executor.index import iter_candidates
from executor.results import DetectionInferWriter

from ..common import runtime
from ..common.candidates import BrokenCandidates, candidate_batches
from ..common.shards import CandidateShards
from ..common.models import Stage, find_stage, load_weights, stage_config
from .config import CONFIG, apply_detection_cap
from .params import certain_score

log = logging.getLogger(__name__)


def find_model(ctx) -> Stage:
    return find_stage(ctx, CONFIG, required=("img_size",))


def inference_dataset(class_names: Sequence[str], size: int) -> Dict:
    """The dataset entry mmdet's inference API reads its pipeline and class names from."""
    from .config import test_pipeline

    return dict(type="CocoDataset", ann_file="", data_prefix=dict(img=""), test_mode=True, lazy_init=True,
                metainfo=dict(classes=tuple(class_names)), pipeline=test_pipeline(size, False))


def load_model(ctx, stage: Stage, device: str, size: int, max_detections: int, score_thr: Optional[float] = None):
    from mmdet.apis import init_detector

    from . import mm  # noqa: F401  (what the stage's config names: our metric and loading step)

    cfg = stage_config(ctx, stage, "mmdet")
    cfg.test_dataloader = dict(dataset=inference_dataset(stage.class_names, size))
    apply_detection_cap(cfg, max_detections, score_thr)
    model = init_detector(cfg, checkpoint=None, device=device)
    load_weights(model, stage.weights)
    return model.eval()


def _load_bgr(item: Tuple[int, str]):
    idx, path = item
    rgb = load_image(path)
    return idx, path, np.ascontiguousarray(rgb[:, :, ::-1])


def batches(items: Sequence[Tuple[int, str]], batch_size: int, workers: int,
            broken: BrokenCandidates) -> Iterator[List]:
    """(idx, path, BGR image) batches; unreadable candidates go to ``broken``."""
    yield from candidate_batches(items, _load_bgr, batch_size, workers, broken)


def detect(model, images: List[np.ndarray], fp16: bool = False):
    """Per image (boxes xyxy [N,4], scores [N], labels [N]) in original pixels."""
    import torch
    from mmdet.apis import inference_detector

    ctx = torch.autocast("cuda", dtype=torch.float16) if fp16 and torch.cuda.is_available() \
        else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        results = inference_detector(model, images)
    out = []
    for r in results:
        p = r.pred_instances
        out.append((p.bboxes.float().cpu().numpy(), p.scores.float().cpu().numpy(), p.labels.cpu().numpy()))
    return out


def model_for(ctx, max_detections: int, score_thr: Optional[float] = None):
    from ..common.options import parse_img_size
    from .config import square_size

    stage = find_model(ctx)
    trained = parse_img_size(stage.meta["img_size"], (640, 640), stage.meta_file)[0]
    size = square_size(ctx.cfg["img_size"], trained, ctx.cfg.source_file)
    return load_model(ctx, stage, runtime.device(), size, max_detections, score_thr), stage


@runtime.distributed_entry
def infer(ctx, launcher) -> None:
    model, stage = model_for(ctx, ctx.cfg["max_detections"], ctx.cfg["conf_threshold"])
    cands = [(i, c.image) for i, c in enumerate(iter_candidates(ctx.env.input.candidate_index_file,
                                                                  path_map=ctx.env.path_map))]
    shards = CandidateShards(ctx, launcher, "infer", cands, ctx.cfg["max_broken_ratio"])
    conf = ctx.cfg["conf_threshold"]
    if ctx.cfg["certain_only"]:
        conf = max(conf, certain_score(ctx.cfg.params, stage.meta))
        log.info("inference: certain boxes only (score >= %.3f), the pre-annotations of mining with prediction", conf)
    log.info("inference: %d of %d candidates here, batch %d, conf %.3f, up to %d boxes per image, model %s",
             len(shards.part), len(cands), ctx.cfg["samples_per_gpu"], conf, ctx.cfg["max_detections"], stage.dir)
    done = 0
    for batch in batches(shards.part, ctx.cfg["samples_per_gpu"], ctx.cfg["workers_per_gpu"], shards.broken):
        for (idx, path, _), (b, s, l) in zip(batch, detect(model, [img for *_, img in batch], ctx.cfg["fp16"])):
            keep = s >= conf
            shards.write(idx, [(int(c), float(sc), *map(float, bb)) for bb, sc, c in zip(b[keep], s[keep], l[keep])])
            done += 1
            if shards.rank == 0:
                ctx.progress(0.95 * shards.progress(done))
    if shards.gather(ctx):
        writer = DetectionInferWriter(ctx.env, stage.class_names)
        n_boxes = 0
        for idx, boxes in shards.every(missing=[]):
            writer.add(cands[idx][1], boxes)
            n_boxes += len(boxes)
        writer.close()
        log.info("inference: wrote %s (%d images, %d boxes)", ctx.env.output.infer_result_file, len(cands), n_boxes)
    shards.finish()
