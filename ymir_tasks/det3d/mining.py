"""3D mining task: instance-bank mining (:mod:`.bank`) over the candidate scans.

Pass 1 predicts every frame on the raw scan and ``aug_views`` augmented copies (batched, scans
loaded in DataLoader workers), reduces the predictions to per-box features and streams them to
``/out/mining-tmp`` (several processes share the frames: :mod:`..common.shards`). Rank 0 reads
them back for the calibration samples (predictions matching annotated boxes); pass 2, there too,
applies the calibrated thresholds frame by frame: bank inserts, frame scores, the bank files and,
when ``eval_index_file`` names full labels, the bank table.

Outputs: ``/out/result.tsv`` (contract); with ``write_bank``: ``/out/bank/bank_dbinfos.pkl`` +
``/out/bank/database/*.bin`` (mmdet3d dbinfos: ``DataBaseSampler(info_path=..., data_root=/out/bank)``
samples from it; annotated instances carry score −1, pseudo ones their score),
``/out/bank/pseudo_labels/<frame>.txt`` (annotated + pseudo boxes, 9 columns with the score),
``/out/bank/mining-report.json`` (thresholds, per-frame components, bank table) and
``bank-table.txt``.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from executor.errors import config_error
from executor.fileio import atomic_write_json, atomic_write_text
from executor.index import iter_candidates_with_labels, read_index
from executor.pointcloud import load_points, read_boxes3d
from executor.results import UNREADABLE_SCORE

from ..common import runtime
from ..common.diversity import FeatureTap, tap_module, wants_order, write_ordered_mining_result
from ..common.previews import banner, caption, previews_safely, text_picture, top_of_result
from ..common.shards import CandidateShards
from .bev import ANNOTATED, METRES, PSEUDO, UNCERTAIN, bev, legend, view_range
from .bank import (BankEvaluator, BankWriter, Frame, FrameFeatures, FrameResult, MiningParams, Predictor, Thresholds,
                   add_samples, calibrate, collect_features, select, spearman)

log = logging.getLogger(__name__)


def _eval_labels(ctx) -> Optional[Dict[str, str]]:
    index = ctx.cfg["eval_index_file"]
    if not index:
        return None
    local = ctx.env.map(index)
    if not os.path.isfile(local):
        raise config_error("evaluation index not found", file=local, field="eval_index_file")
    return {e.raw_image: e.annotation for e in read_index(local, path_map=ctx.env.path_map)}


@runtime.distributed_entry
def mine(ctx, launcher) -> None:
    from .infer import ModelPredictor, load_model, scan_batches

    p = ctx.cfg.params
    names = list(ctx.class_names)
    params = MiningParams.from_config(p)
    model, meta, stage = load_model(ctx, p["max_detections"], params.score_low)
    if list(meta["class_names"]) != names:
        log.warning("the model's classes %s differ from config class_names %s; mining uses the model's",
                    meta["class_names"], names)
        names = list(meta["class_names"])
    entries = list(iter_candidates_with_labels(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map))
    frames = [Frame(e.raw_image, e.image, read_boxes3d(e.annotation, names)) for e in entries]
    shards = CandidateShards(ctx, launcher, "mining", [(i, f.scan, None) for i, f in enumerate(frames)],
                             p["max_broken_ratio"])
    log.info("3D mining: %d of %d frames here (%d annotated boxes in all), %d augmented view(s), score %s, "
             "model %s", len(shards.part), len(frames), sum(len(f.known) for f in frames), p["aug_views"],
             p["mining_score"], stage.dir)
    ordered = wants_order(p)
    tap = FeatureTap(tap_module(model)) if ordered else None
    predictor = ModelPredictor(model, p["samples_per_gpu"], tap)
    index_of = {f.key: i for i, f in enumerate(frames)}

    def batches():
        for batch in scan_batches(shards.part, p["samples_per_gpu"], p["workers_per_gpu"], shards.broken):
            yield [(frames[i], pts) for i, _, _, pts in batch]

    def sink(feats: FrameFeatures) -> None:  # the frame's pooled features travel with its record
        shards.write(index_of[feats.key], (feats, predictor.features.pop(feats.key, None)))

    def progress(n: int) -> None:
        if shards.rank == 0:
            ctx.progress(0.85 * shards.progress(n))

    with tap if tap is not None else contextlib.nullcontext():
        collect_features(batches(), predictor, params, p["aug_views"], p["aug_seed"], sink, progress)
    if shards.gather(ctx):
        samples: Dict[int, List[Tuple[float, float]]] = {}
        for _, (feats, _) in shards.records():  # every process's calibration samples
            add_samples(samples, feats)
        th = calibrate(samples, len(names), params)
        for row in th.table(names):
            log.info("thresholds %s: score %.3f, consistency %.3f (%s, %d matched predictions)", row["class"],
                     row["score"], row["consistency"], "calibrated" if row["calibrated"] else "fallback",
                     row["samples"])
        results = finish(ctx, (feats for _, (feats, _) in shards.records()), th, params, names,
                         by_frame_scan={f.key: f.scan for f in frames})
        key = p["mining_score"]
        scored = {r.key: getattr(r, key) for r in results}
        # an unreadable scan was not scored: it ranks after every scored frame
        keys = [f.key for f in frames]
        feat_mat = cls_arr = None
        if ordered:
            rows = {frames[i].key: row for i, (_, row) in shards.records() if row is not None}
            by_key = {r.key: r for r in results}
            dim = len(next(iter(rows.values()))) if rows else 0
            feat_mat = np.stack([rows.get(k, np.zeros(dim, np.float32)) for k in keys]) if dim else None
            cls_arr = np.asarray([_dominant(by_key[k]) if k in by_key else -1 for k in keys])
        n = write_ordered_mining_result(ctx.env, keys, [scored.get(k, UNREADABLE_SCORE) for k in keys], feat_mat,
                                        cls_arr, p)
        log.info("3D mining: wrote %s (%d frames, %d pseudo labels, score '%s')", ctx.env.output.mining_result_file,
                 n, sum(len(r.pseudo) for r in results), key)
        view = view_range(meta["point_cloud_range"]) if meta.get("point_cloud_range") else METRES
        previews_safely(ctx, lambda: scan_previews(ctx, frames, results, names, key, view))
    shards.finish()


def scan_previews(ctx, frames: Sequence[Frame], results: Sequence[FrameResult], names: Sequence[str],
                  score_name: str, view: Tuple[float, float, float, float] = METRES) -> List[Tuple[str, np.ndarray]]:
    """result.tsv's first scans from above: annotated boxes, the bank's pseudo labels, the
    uncertain predictions."""
    by_key = {r.key: r for r in results}
    by_frame = {f.key: f for f in frames}
    pictures = []
    for rank, (key, score) in enumerate(top_of_result(ctx.env, ctx.cfg.params["preview_images"])):
        frame, r = by_frame.get(key), by_key.get(key)
        if frame is None or r is None:
            continue
        layers = [(frame.known, ANNOTATED, False), (r.pseudo, PSEUDO, True),
                  (r.uncertain_boxes, UNCERTAIN, True)]
        pic = bev(load_points(frame.scan), layers, names, view)
        extra = f"{len(frame.known)} annotated, {len(r.pseudo)} pseudo, {len(r.uncertain_boxes)} uncertain"
        pictures.append((key, banner(pic, caption(rank, key, score, score_name, extra) + legend())))
    return pictures


def _dominant(r: FrameResult) -> int:
    """The most frequent class among a frame's pseudo labels and uncertain boxes, -1 without any."""
    labels = np.concatenate([r.pseudo.labels, r.uncertain_boxes.labels]).astype(np.int64)
    return int(np.bincount(labels).argmax()) if len(labels) else -1


def finish(ctx, features: Iterator[FrameFeatures], th: Thresholds, params: MiningParams, names: Sequence[str],
           by_frame_scan: Dict[str, str]) -> List[FrameResult]:
    """Pass 2: selection, bank files, report. Returns the (small) per-frame results."""
    p = ctx.cfg.params
    bank_root = os.path.join(ctx.env.output.root_dir, "bank")
    writer = BankWriter(bank_root, names) if p["write_bank"] else None
    eval_labels = _eval_labels(ctx)
    evaluator = BankEvaluator(names) if eval_labels is not None else None
    results: List[FrameResult] = []
    for feats in features:
        r = select(feats, th, params)
        results.append(r)
        if writer is not None:
            frame_id = os.path.splitext(os.path.basename(r.key))[0]
            writer.add(frame_id, load_points(by_frame_scan[r.key]), feats.known, r.pseudo)
        if evaluator is not None:
            label_file = eval_labels.get(r.key)
            if label_file is None:
                log.warning("eval_index_file has no labels for %s: left out of the bank table", r.key)
            else:
                evaluator.add(r.key, read_boxes3d(label_file, names), feats.known, r.pseudo)
    report = {"thresholds": th.table(names), "mining_score": p["mining_score"],
              "frames": [{"frame": r.key, "qa": round(r.qa, 6), "active": round(r.active, 6), "pseudo": len(r.pseudo),
                          "uncertain": r.uncertain} for r in results]}
    if evaluator is not None:
        table = evaluator.table()
        log.info("\n%s", table)
        report["bank"] = evaluator.rows()
        missing = [evaluator.missing_per_frame.get(r.key, 0) for r in results]
        report["spearman_qa_vs_missing"] = round(spearman([r.qa for r in results], missing), 4)
        report["spearman_active_vs_missing"] = round(spearman([r.active for r in results], missing), 4)
        log.info("Spearman(qa score, missing instances per frame) = %.3f; (active score) = %.3f",
                 report["spearman_qa_vs_missing"], report["spearman_active_vs_missing"])
        os.makedirs(bank_root, exist_ok=True)
        atomic_write_text(os.path.join(bank_root, "bank-table.txt"), table + "\n")
        previews_safely(ctx, lambda: [("bank-table", text_picture(table))],
                        tag="bank", single=True)
    if writer is not None:
        writer.close()
    os.makedirs(bank_root, exist_ok=True)
    atomic_write_json(os.path.join(bank_root, "mining-report.json"), report)
    return results


def mine_in_memory(frames: Sequence[Tuple[Frame, np.ndarray]], predictor: Predictor, params: MiningParams,
                   n_classes: int, aug_views: int = 1, aug_seed: int = 0,
                   batch: int = 8) -> Tuple[Thresholds, List[FrameResult], List[FrameFeatures]]:
    """Both passes without files, for tests and benchmarks on a few hundred frames."""
    feats: List[FrameFeatures] = []
    batches = [list(frames[i:i + batch]) for i in range(0, len(frames), batch)]
    samples = collect_features(batches, predictor, params, aug_views, aug_seed, feats.append)
    th = calibrate(samples, n_classes, params)
    return th, [select(f, th, params) for f in feats], feats
