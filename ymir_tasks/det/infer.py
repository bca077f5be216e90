"""Detection inference: batched, ``conf_threshold``, up to ``max_detections`` boxes per image,
integer boxes per the contract, every candidate present, streamed. Several processes shard the
candidates and rank 0 merges in candidate order."""
from __future__ import annotations

import logging

from executor.index import CandidateList
from executor.results import DetectionInferWriter

from ..common import runtime
from ..common.mmdet_infer import batches, detect, model_for
from ..common.mmdet_params import certain_score
from ..common.shards import CandidateShards
from .config import CONFIG

log = logging.getLogger(__name__)


@runtime.distributed_entry
def infer(ctx, launcher) -> None:
    model, stage = model_for(ctx, CONFIG, ctx.cfg["max_detections"], ctx.cfg["conf_threshold"])
    cands = CandidateList.read(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map)
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
            writer.add(cands.local(idx), boxes)
            n_boxes += len(boxes)
        writer.close()
        log.info("inference: wrote %s (%d images, %d boxes)", ctx.env.output.infer_result_file, len(cands), n_boxes)
    shards.finish()
