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
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from executor.errors import config_error
from executor.fileio import atomic_write_json_list, atomic_write_text
from executor.index import CandidateList, read_index
from executor.pointcloud import load_points, read_boxes3d
from executor.results import UNREADABLE_SCORE

from ..common import runtime
from ..common.candidates import candidate_batches
from ..common.diversity import FeatureStore, FeatureTap, tap_module, wants_order, write_ordered_mining_result
from ..common.previews import banner, caption, previews_safely, text_picture, top_of_result
from ..common.shards import CandidateShards
from .bev import ANNOTATED, METRES, PSEUDO, UNCERTAIN, bev, legend, view_range
from .bank import (BankEvaluator, BankWriter, Frame, FrameFeatures, FrameResult, MiningParams, Predictor, Thresholds,
                   add_predicted, add_samples, calibrate, collect_features, select, spearman)

log = logging.getLogger(__name__)


def _eval_labels(ctx) -> Optional[Dict[str, str]]:
    index = ctx.cfg["eval_index_file"]
    if not index:
        return None
    local = ctx.env.map(index)
    if not os.path.isfile(local):
        raise config_error("evaluation index not found", file=local, field="eval_index_file")
    return {e.raw_image: e.annotation for e in read_index(local, path_map=ctx.env.path_map)}


class _FrameLoader:
    """Loader-worker side of pass 1: a candidate's scan and its sparse labels (already checked)."""

    def __init__(self, pool: CandidateList, names: Sequence[str]) -> None:
        self.pool, self.names = pool, list(names)

    def __call__(self, item: Tuple[int, str, Optional[str]]) -> Tuple[int, Frame, np.ndarray]:
        idx, scan, labels = item
        return idx, Frame(self.pool.raw[idx], scan, read_boxes3d(labels, self.names)), load_points(scan)


def _check_labels(pool: CandidateList, names: Sequence[str]) -> int:
    """Every sparse-label file read once before any work (a bad one fails the task here, naming
    it, not in a loader worker halfway); returns the annotated boxes. Nothing is kept."""
    return sum(len(read_boxes3d(pool.local_labels(i), names)) for i in range(len(pool)) if pool.labels[i])


def frame_score(choice: str, pool: CandidateList) -> str:
    """The frame score ``mining_score`` names; ``auto``: ``qa`` when a candidate carries sparse
    labels, else ``active``. qa counts confident pseudo labels, whose thresholds are calibrated on
    the candidates' labels: on a pool without any (the platform's mining) it scores every frame 0
    and result.tsv would keep the candidate order."""
    if choice != "auto":
        return choice
    return "qa" if pool.labels is not None and any(pool.labels) else "active"


@runtime.distributed_entry
def mine(ctx, launcher) -> None:
    from .infer import ModelPredictor, load_model

    p = ctx.cfg.params
    names = list(ctx.class_names)
    params = MiningParams.from_config(p)
    model, meta, stage = load_model(ctx, p["max_detections"], params.score_low)
    if list(meta["class_names"]) != names:
        log.warning("the model's classes %s differ from config class_names %s; mining uses the model's",
                    meta["class_names"], names)
        names = list(meta["class_names"])
    # the pool as its index paths (flat memory at 10^5-10^6 frames): boxes and scans are read in
    # the loader workers, per-frame results leave pass 2 as a few numbers each
    pool = CandidateList.read(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map, with_labels=True)
    n_known = _check_labels(pool, names)
    key = frame_score(p["mining_score"], pool)
    shards = CandidateShards(ctx, launcher, "mining", pool, p["max_broken_ratio"])
    log.info("3D mining: %d of %d frames here (%d annotated boxes in all), %d augmented view(s), score %s%s, "
             "model %s", len(shards.part), len(pool), n_known, p["aug_views"], key,
             " (auto)" if p["mining_score"] == "auto" else "", stage.dir)
    ordered = wants_order(p)
    tap = FeatureTap(tap_module(model)) if ordered else None
    predictor = ModelPredictor(model, p["samples_per_gpu"], tap)
    in_flight: Dict[str, int] = {}  # frame key -> candidate number, for the frames of the batch at hand

    def batches():
        for batch in candidate_batches(shards.part, _FrameLoader(pool, names), p["samples_per_gpu"],
                                       p["workers_per_gpu"], shards.broken):
            in_flight.update((f.key, i) for i, f, _ in batch)
            yield [(f, pts) for _, f, pts in batch]

    def sink(feats: FrameFeatures) -> None:  # the frame's pooled features travel with its record
        shards.write(in_flight.pop(feats.key), (feats, predictor.features.pop(feats.key, None)))

    def progress(n: int) -> None:
        if shards.rank == 0:
            ctx.progress(0.85 * shards.progress(n))

    with tap if tap is not None else contextlib.nullcontext():
        collect_features(batches(), predictor, params, p["aug_views"], p["aug_seed"], sink, progress)
    if shards.gather(ctx):
        samples: Dict[int, List[Tuple[float, float]]] = {}
        predicted = np.zeros(len(names))
        for _, (feats, _) in shards.records():  # every process's calibration samples, the pool's classes
            add_samples(samples, feats)
            add_predicted(predicted, feats)
        th = calibrate(samples, len(names), params, predicted)
        for row in th.table(names):
            log.info("thresholds %s: score %.3f, consistency %.3f (%s, %d matched predictions), weight %.2f",
                     row["class"], row["score"], row["consistency"], "calibrated" if row["calibrated"] else "fallback",
                     row["samples"], row["weight"])
        feats_store = FeatureStore(len(pool)) if ordered else None

        def features() -> Iterator[Tuple[int, FrameFeatures]]:
            for idx, (feats, row) in shards.records():
                if feats_store is not None and row is not None:
                    feats_store.put(idx, row, -1)  # the order takes the summary's classes
                yield idx, feats

        summary = finish(ctx, pool, features(), th, params, names, key)
        # an unreadable scan was not scored: it ranks after every scored frame
        scores = np.where(summary.scored, getattr(summary, key), UNREADABLE_SCORE)
        n = write_ordered_mining_result(ctx.env, pool.raw, scores,
                                        feats_store.mat if feats_store is not None else None,
                                        summary.dominant if ordered else None, p)
        del feats_store, scores
        log.info("3D mining: wrote %s (%d frames, %d pseudo labels, score '%s')", ctx.env.output.mining_result_file,
                 n, int(summary.pseudo.sum()), key)
        view = view_range(meta["point_cloud_range"]) if meta.get("point_cloud_range") else METRES
        previews_safely(ctx, lambda: scan_previews(ctx, shards, pool, th, params, names, key, view))
    shards.finish()


def scan_previews(ctx, shards: CandidateShards, pool: CandidateList, th: Thresholds, params: MiningParams,
                  names: Sequence[str], score_name: str,
                  view: Tuple[float, float, float, float] = METRES) -> List[Tuple[str, np.ndarray]]:
    """result.tsv's first scans from above: annotated boxes, the bank's pseudo labels, the
    uncertain predictions (those frames' records are read back from the shards: pass 2 kept
    numbers only)."""
    top = top_of_result(ctx.env, ctx.cfg.params["preview_images"])
    keys = {k for k, _ in top}
    number = {k: i for i, k in enumerate(pool.raw) if k in keys}
    wanted = set(number.values())
    shown: Dict[str, Tuple[FrameFeatures, FrameResult]] = {}
    for idx, (feats, _) in shards.records():
        if idx in wanted:
            shown[feats.key] = (feats, select(feats, th, params))
    pictures = []
    for rank, (key, score) in enumerate(top):
        if key not in shown:
            continue
        feats, r = shown[key]
        layers = [(feats.known, ANNOTATED, False), (r.pseudo, PSEUDO, True),
                  (r.uncertain_boxes, UNCERTAIN, True)]
        pic = bev(load_points(pool.local(number[key])), layers, names, view)
        extra = f"{len(feats.known)} annotated, {len(r.pseudo)} pseudo, {len(r.uncertain_boxes)} uncertain"
        pictures.append((key, banner(pic, caption(rank, key, score, score_name, extra) + legend())))
    return pictures


def _dominant(r: FrameResult) -> int:
    """The most frequent class among a frame's pseudo labels and uncertain boxes, -1 without any."""
    labels = np.concatenate([r.pseudo.labels, r.uncertain_boxes.labels]).astype(np.int64)
    return int(np.bincount(labels).argmax()) if len(labels) else -1


@dataclass
class PoolSummary:
    """Pass 2's per-frame results as arrays over the pool, in candidate order (frames that were
    not scored, the unreadable ones, have ``scored`` False)."""

    scored: np.ndarray
    qa: np.ndarray
    active: np.ndarray
    pseudo: np.ndarray
    uncertain: np.ndarray
    dominant: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "PoolSummary":
        return cls(np.zeros(n, bool), np.zeros(n), np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64),
                   np.full(n, -1, np.int64))

    def put(self, idx: int, r: FrameResult) -> None:
        self.scored[idx] = True
        self.qa[idx], self.active[idx] = r.qa, r.active
        self.pseudo[idx], self.uncertain[idx] = len(r.pseudo), r.uncertain
        self.dominant[idx] = _dominant(r)


def finish(ctx, pool: CandidateList, features: Iterator[Tuple[int, FrameFeatures]], th: Thresholds,
           params: MiningParams, names: Sequence[str], key: str) -> PoolSummary:
    """Pass 2: selection, bank files, report, frame by frame."""
    p = ctx.cfg.params
    bank_root = os.path.join(ctx.env.output.root_dir, "bank")
    writer = BankWriter(bank_root, names) if p["write_bank"] else None
    eval_labels = _eval_labels(ctx)
    evaluator = BankEvaluator(names) if eval_labels is not None else None
    summary = PoolSummary.empty(len(pool))
    for idx, feats in features:
        r = select(feats, th, params)
        summary.put(idx, r)
        if writer is not None:
            frame_id = os.path.splitext(os.path.basename(r.key))[0]
            writer.add(frame_id, load_points(pool.local(idx)), feats.known, r.pseudo)
        if evaluator is not None:
            label_file = eval_labels.get(r.key)
            if label_file is None:
                log.warning("eval_index_file has no labels for %s: left out of the bank table", r.key)
            else:
                evaluator.add(r.key, read_boxes3d(label_file, names), feats.known, r.pseudo)
    done = np.flatnonzero(summary.scored)
    tail: Dict = {}
    if evaluator is not None:
        table = evaluator.table()
        log.info("\n%s", table)
        tail["bank"] = evaluator.rows()
        missing = [evaluator.missing_per_frame.get(pool.raw[i], 0) for i in done]
        tail["spearman_qa_vs_missing"] = round(spearman(summary.qa[done], missing), 4)
        tail["spearman_active_vs_missing"] = round(spearman(summary.active[done], missing), 4)
        log.info("Spearman(qa score, missing instances per frame) = %.3f; (active score) = %.3f",
                 tail["spearman_qa_vs_missing"], tail["spearman_active_vs_missing"])
        os.makedirs(bank_root, exist_ok=True)
        atomic_write_text(os.path.join(bank_root, "bank-table.txt"), table + "\n")
        previews_safely(ctx, lambda: [("bank-table", text_picture(table))],
                        tag="bank", single=True)
    if writer is not None:
        writer.close()
    os.makedirs(bank_root, exist_ok=True)
    rows = ({"frame": pool.raw[i], "qa": round(float(summary.qa[i]), 6), "active": round(float(summary.active[i]), 6),
             "pseudo": int(summary.pseudo[i]), "uncertain": int(summary.uncertain[i])} for i in done)
    atomic_write_json_list(os.path.join(bank_root, "mining-report.json"),
                         {"thresholds": th.table(names), "mining_score": key}, "frames", rows, tail)
    return summary


def mine_in_memory(frames: Sequence[Tuple[Frame, np.ndarray]], predictor: Predictor, params: MiningParams,
                   n_classes: int, aug_views: int = 1, aug_seed: int = 0,
                   batch: int = 8) -> Tuple[Thresholds, List[FrameResult], List[FrameFeatures]]:
    """Both passes without files, for tests and benchmarks on a few hundred frames."""
    feats: List[FrameFeatures] = []
    batches = [list(frames[i:i + batch]) for i in range(0, len(frames), batch)]
    samples = collect_features(batches, predictor, params, aug_views, aug_seed, feats.append)
    predicted = np.zeros(n_classes)
    for f in feats:
        add_predicted(predicted, f)
    th = calibrate(samples, n_classes, params, predicted)
    return th, [select(f, th, params) for f in feats], feats
