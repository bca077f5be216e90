"""3D inference: batched PointPillars forward over the candidate scans (loaded in DataLoader
workers), boxes above ``conf_threshold``, up to ``max_detections`` per frame, streamed into
``infer-result.json`` (:class:`~.infer_result.Detection3DInferWriter`), every candidate present."""
from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from executor.index import CandidateList
from executor.pointcloud import Boxes3D, load_points

from ..common import runtime
from ..common.candidates import BrokenCandidates, candidate_batches
from ..common.shards import CandidateShards
from ..common.models import find_stage, load_weights, stage_config
from .geometry import Aug, augment_points, invert_boxes
from .infer_result import Detection3DInferWriter
from .config import CONFIG

log = logging.getLogger(__name__)


def load_model(ctx, max_detections: int, score_thr: Optional[float] = None):
    """The stage's model on this process's device, its ymir-model.yaml and the stage."""
    from mmdet3d.apis import init_model

    from . import mm  # noqa: F401  (registers the dataset)
    from .config import inference_dataset

    stage = find_stage(ctx, CONFIG, required=("point_cloud_range",))
    meta = stage.meta
    cfg = stage_config(ctx, stage, "mmdet3d")
    cfg.test_dataloader = dict(dataset=inference_dataset(meta["class_names"], meta["point_cloud_range"]))
    cfg.model.test_cfg.max_num = max_detections
    cfg.model.test_cfg.nms_pre = max(int(cfg.model.test_cfg.get("nms_pre", 100)), 2 * max_detections)
    if score_thr is not None:
        cfg.model.test_cfg.score_thr = min(float(cfg.model.test_cfg.get("score_thr", 0.1)), score_thr)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Don't suggest using CPU device": CPU is a supported path here
        model = init_model(cfg, checkpoint=None, device=runtime.device())
    load_weights(model, stage.weights)
    log.info("3D model %s (%s, classes %s)", stage.dir, meta.get("preset"), meta["class_names"])
    return model.eval(), meta, stage


def predict(model, clouds: Sequence[np.ndarray]) -> List[Boxes3D]:
    """One batched forward over point arrays (N×4 float32); boxes in each array's own frame."""
    import torch
    from mmdet3d.apis import inference_detector

    if not clouds:
        return []
    with torch.no_grad():
        results, _ = inference_detector(model, [np.ascontiguousarray(c, dtype=np.float32) for c in clouds])
    out = []
    for r in results:
        p = r.pred_instances_3d
        out.append(Boxes3D(p.bboxes_3d.tensor[:, :7].cpu().numpy().astype(np.float64),
                           p.labels_3d.cpu().numpy().astype(np.int64), p.scores_3d.cpu().numpy().astype(np.float64)))
    return out


class ModelPredictor:
    """:class:`~.bank.Predictor` over a real model: all views of a batch of frames in forwards of
    ``batch_size`` clouds; augmented views mapped back to the raw frame."""

    def __init__(self, model, batch_size: int, tap=None) -> None:
        self.model = model
        self.batch_size = max(1, batch_size)
        self.tap = tap  # a FeatureTap on the model: pooled features of each raw scan, by frame key
        self.features: Dict[str, np.ndarray] = {}

    def predict_views(self, frames: Sequence[Tuple[str, np.ndarray, List[Aug]]]) -> List[List[Boxes3D]]:
        clouds, owners = [], []
        for f, (_, pts, augs) in enumerate(frames):
            clouds.append(pts)
            owners.append((f, None))
            for a in augs:
                clouds.append(augment_points(pts, a))
                owners.append((f, a))
        preds: List[Boxes3D] = []
        for i in range(0, len(clouds), self.batch_size):
            chunk = clouds[i:i + self.batch_size]
            preds += predict(self.model, chunk)
            if self.tap is not None:
                for (f, a), row in zip(owners[i:i + len(chunk)], self.tap.take(len(chunk))):
                    if a is None:
                        self.features[frames[f][0]] = row
        out: List[List[Boxes3D]] = [[] for _ in frames]
        for (f, a), p in zip(owners, preds):
            out[f].append(p if a is None else Boxes3D(invert_boxes(p.boxes, a), p.labels, p.scores))
        return out


def _load_scan(item: Tuple):
    idx, path = item[:2]
    return idx, path, item[2] if len(item) > 2 else None, load_points(path)


def scan_batches(items: Sequence[Tuple], batch_size: int, workers: int,
                 broken: BrokenCandidates) -> Iterator[List]:
    """(idx, path, labels, points) batches from ``(idx, path[, labels])`` items; unreadable scans
    go to ``broken``."""
    yield from candidate_batches(items, _load_scan, batch_size, workers, broken)


@runtime.distributed_entry
def infer(ctx, launcher) -> None:
    conf = ctx.cfg["conf_threshold"]
    model, meta, _ = load_model(ctx, ctx.cfg["max_detections"], conf)
    cands = CandidateList.read(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map)
    shards = CandidateShards(ctx, launcher, "infer", cands, ctx.cfg["max_broken_ratio"])
    done = 0
    for batch in scan_batches(shards.part, ctx.cfg["samples_per_gpu"], ctx.cfg["workers_per_gpu"], shards.broken):
        for (idx, _, _, _), b in zip(batch, predict(model, [pts for *_, pts in batch])):
            keep = b.scores >= conf
            shards.write(idx, [(int(l), float(s), box) for box, l, s in
                               zip(b.boxes[keep], b.labels[keep], b.scores[keep])])
            done += 1
            if shards.rank == 0:
                ctx.progress(0.95 * shards.progress(done))
    if shards.gather(ctx):
        writer = Detection3DInferWriter(ctx.env, meta["class_names"])
        n_boxes = 0
        try:
            for idx, boxes in shards.every(missing=[]):
                writer.add(cands.raw[idx], boxes)
                n_boxes += len(boxes)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        log.info("3D inference: wrote %s (%d frames, %d boxes, conf %.2f)", ctx.env.output.infer_result_file,
                 len(cands), n_boxes, conf)
    shards.finish()
