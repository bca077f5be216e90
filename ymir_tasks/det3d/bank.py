"""SS3D-style instance-bank mining, detector-agnostic (3d-mining.md §2).

Per frame the detector predicts on the raw scan and on ``aug_views`` augmented copies, mapped
back exactly (:mod:`.geometry`). For each raw prediction i above ``score_low``:

* ``c_i`` consistency: the best 3D IoU with a same-class prediction of each augmented view,
  averaged over views (3D, not BEV: two noisy boxes with a wrong height must not look alike);
* ``s_i`` score: the higher of the raw score and the matched augmented scores (SS3D's "one of
  the pair above score_high");
* ``free_i``: no BEV overlap above ``collision_iou`` with a known object (the frame's sparse
  annotations and what the bank already holds). BEV here on purpose: two objects cannot share a
  footprint whatever their heights;
* ``n_i``: LiDAR points inside the box.

Thresholds τ_s, τ_c per class are **calibrated** on the predictions that match *annotated*
boxes (3D IoU ≥ 0.5, or ≥ 0.25 for footprints under 4 m²): the ``calib_quantile`` of their
scores and consistencies, so the consistency a pseudo label needs matches this detector's own
localisation noise; classes with fewer than ``min_calib_samples`` matches fall back to
``score_high`` / ``consistency_iou`` (SS3D's 0.9 / 0.9 by default, far too strict for two
independent noisy boxes, which is why calibration is on by default).

* **confident** = free ∧ s ≥ τ_s ∧ c ≥ τ_c ∧ n ≥ ``min_points``: inserted into the bank in
  order of s·c unless it collides with an earlier insert;
* **uncertain** = free ∧ not confident.

Frame scores: ``qa`` = Σ over inserted pseudo labels of s·c (the expected number of objects the
annotator missed that the model is sure of: frames to complete first); ``active`` = Σ over
uncertain predictions of s·(0.5 + 0.5·c) (unlabelled objects that need a human). With
``class_balance`` each box counts with its class's weight (:func:`balance_weights`).

Everything here is numpy and deterministic; the detector is behind :class:`Predictor` so tests
run the same logic with a seeded simulated detector.
"""
from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from executor.fileio import atomic_write_text, read_pickled
from executor.pointcloud import Boxes3D, format_boxes3d

from .geometry import Aug, aug_for, bev_iou, count_points, iou_3d, points_in_boxes

IOU_BINS = (0.0, 0.1, 0.5, 0.7)  # the seed's table columns: [=0, (0,.1], (.1,.5], (.5,.7], (.7,1]]
BIN_LABELS = ("0", "0.0", "0.1", "0.5", "0.7")


class Predictor(Protocol):
    def predict_views(self, frames: Sequence[Tuple[str, np.ndarray, List[Aug]]]) -> List[List[Boxes3D]]:
        """Per frame: the raw view's boxes, then each augmented view's boxes mapped back."""


@dataclass
class MiningParams:
    score_low: float = 0.1
    score_high: float = 0.9
    consistency_iou: float = 0.9
    calibrate: bool = True
    calib_quantile: float = 0.2
    min_calib_samples: int = 8
    min_points: int = 5
    collision_iou: float = 0.01
    class_balance: bool = False

    @classmethod
    def from_config(cls, p) -> "MiningParams":
        return cls(score_low=p["score_low"], score_high=p["score_high"], consistency_iou=p["consistency_iou"],
                   calibrate=p["calibrate_thresholds"], calib_quantile=p["calib_quantile"],
                   min_calib_samples=p["min_calib_samples"], min_points=p["min_points"],
                   collision_iou=p["collision_iou"], class_balance=p["class_balance"])


@dataclass
class FrameFeatures:
    key: str
    boxes: np.ndarray  # (N, 7) raw predictions above score_low
    labels: np.ndarray
    score: np.ndarray  # s_i
    consistency: np.ndarray  # c_i
    free: np.ndarray  # bool
    points: np.ndarray  # n_i
    matched: np.ndarray  # bool: matches an annotated box (a calibration sample)
    known: Boxes3D = field(default_factory=Boxes3D)


@dataclass
class Thresholds:
    """What pass 2 takes from the whole pool: per class the thresholds of a pseudo label and the
    weight of a box in the frame scores (1 unless ``class_balance``)."""

    score: np.ndarray
    consistency: np.ndarray
    calibrated: List[bool]
    samples: List[int]
    weight: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if self.weight is None:
            self.weight = np.ones(len(self.score))

    def table(self, class_names: Sequence[str]) -> List[Dict]:
        return [{"class": n, "score": round(float(self.score[i]), 4), "consistency": round(float(self.consistency[i]), 4),
                 "calibrated": self.calibrated[i], "samples": self.samples[i], "weight": round(float(self.weight[i]), 4)}
                for i, n in enumerate(class_names)]


@dataclass
class FrameResult:
    key: str
    pseudo: Boxes3D  # inserted into the bank (scores = s_i)
    pseudo_consistency: np.ndarray
    uncertain: int
    qa: float
    active: float
    uncertain_boxes: Boxes3D = field(default_factory=Boxes3D)  # SS3D's unreliable regions


def match_iou_for(boxes: np.ndarray) -> np.ndarray:
    """The 3D IoU a prediction needs to count as matching an annotated box: 0.5 for car-sized
    footprints, 0.25 for small objects (pedestrians, cyclists), as in CoIn's evaluation."""
    return np.where(boxes[:, 3] * boxes[:, 4] >= 4.0, 0.5, 0.25)


def frame_features(key: str, points: np.ndarray, known: Boxes3D, views: List[Boxes3D],
                   params: MiningParams) -> FrameFeatures:
    raw = views[0].select(views[0].scores >= params.score_low)
    others = [v.select(v.scores >= params.score_low) for v in views[1:]]
    n = len(raw)
    cons = np.zeros(n)
    score = raw.scores.astype(np.float64).copy()
    for v in others:
        if not len(v) or not n:
            continue
        iou = iou_3d(raw.boxes, v.boxes)
        iou[raw.labels[:, None] != v.labels[None, :]] = 0.0
        best = iou.argmax(1)
        best_iou = iou[np.arange(n), best]
        cons += best_iou
        score = np.where(best_iou > 0, np.maximum(score, v.scores[best]), score)
    if others:
        cons /= len(others)
    else:
        cons[:] = 1.0  # no augmented view: consistency cannot be measured, only the score filters
    free = np.ones(n, dtype=bool)
    matched = np.zeros(n, dtype=bool)
    if n and len(known):
        bev = bev_iou(raw.boxes, known.boxes)
        free = bev.max(1) <= params.collision_iou
        iou = iou_3d(raw.boxes, known.boxes, bev)
        iou[raw.labels[:, None] != known.labels[None, :]] = 0.0
        matched = (iou >= match_iou_for(known.boxes)[None, :]).any(1)
    return FrameFeatures(key, raw.boxes, raw.labels, score, cons, free, count_points(points, raw.boxes),
                         matched, known)


def calibrate(samples: Dict[int, List[Tuple[float, float]]], n_classes: int, params: MiningParams,
              predicted: Optional[np.ndarray] = None) -> Thresholds:
    """Per-class thresholds from (score, consistency) of predictions matching annotated boxes;
    with ``class_balance``, box weights from ``predicted`` (:func:`add_predicted` over the pool)."""
    ts = np.full(n_classes, params.score_high)
    tc = np.full(n_classes, params.consistency_iou)
    calibrated = [False] * n_classes
    counts = [len(samples.get(c, [])) for c in range(n_classes)]
    if params.calibrate:
        for c in range(n_classes):
            vals = np.asarray(samples.get(c, []), dtype=np.float64).reshape(-1, 2)
            if len(vals) >= params.min_calib_samples:
                ts[c] = max(params.score_low, float(np.quantile(vals[:, 0], params.calib_quantile)))
                tc[c] = float(np.quantile(vals[:, 1], params.calib_quantile))
                calibrated[c] = True
    weight = balance_weights(predicted) if params.class_balance and predicted is not None else None
    return Thresholds(ts, tc, calibrated, counts, weight)


def add_predicted(totals: np.ndarray, f: FrameFeatures) -> None:
    """The pool's expected objects per class: the scores of a frame's free predictions, summed."""
    totals += np.bincount(f.labels[f.free], weights=f.score[f.free], minlength=len(totals))[:len(totals)]


def balance_weights(predicted: np.ndarray, low: float = 0.1, high: float = 10.0) -> np.ndarray:
    """Median-frequency weights from the pool's expected objects per class (the rule of the
    segmentation loss's ``class_weight: auto``): a class the model predicts rarely counts for
    more in the frame scores, so the frames likely to hold it come first instead of the frames
    crowded with the common class. Classes never predicted keep 1."""
    predicted = np.asarray(predicted, np.float64)
    w = np.ones(len(predicted))
    present = predicted > 0
    if present.any():
        share = predicted[present] / predicted[present].sum()
        w[present] = np.clip(np.median(share) / share, low, high)
    return w


def add_samples(samples: Dict[int, List[Tuple[float, float]]], f: FrameFeatures) -> None:
    for i in np.nonzero(f.matched)[0]:
        samples.setdefault(int(f.labels[i]), []).append((float(f.score[i]), float(f.consistency[i])))


def select(f: FrameFeatures, th: Thresholds, params: MiningParams,
           bank: Optional[Boxes3D] = None) -> FrameResult:
    """Confident predictions into the bank (collision-free), uncertain ones counted; frame scores."""
    n = len(f.boxes)
    confident = f.free & (f.score >= th.score[f.labels]) & (f.consistency >= th.consistency[f.labels]) \
        & (f.points >= params.min_points) if n else np.zeros(0, dtype=bool)
    uncertain = f.free & ~confident if n else np.zeros(0, dtype=bool)
    occupied = Boxes3D.concat([f.known, bank or Boxes3D()]).boxes
    accepted: List[int] = []
    for i in sorted(np.nonzero(confident)[0], key=lambda i: -f.score[i] * f.consistency[i]):
        taken = occupied if not accepted else np.concatenate([occupied, f.boxes[accepted]])
        if len(taken) and bev_iou(f.boxes[i:i + 1], taken).max() > params.collision_iou:
            continue
        accepted.append(int(i))
    acc = np.asarray(accepted, dtype=np.int64)
    pseudo = Boxes3D(f.boxes[acc], f.labels[acc], f.score[acc])
    w = th.weight[f.labels] if n else np.zeros(0)
    qa = float((w[acc] * f.score[acc] * f.consistency[acc]).sum())
    active = float((w[uncertain] * f.score[uncertain] * (0.5 + 0.5 * f.consistency[uncertain])).sum())
    return FrameResult(f.key, pseudo, f.consistency[acc], int(uncertain.sum()), qa, active,
                       Boxes3D(f.boxes[uncertain], f.labels[uncertain], f.score[uncertain]))


# ---------------------------------------------------------------------------- evaluation

def _bin(iou: float) -> int:
    if iou <= 0.0:
        return 0
    for k, edge in enumerate(IOU_BINS[1:], start=1):
        if iou <= edge:
            return k
    return len(IOU_BINS)


class BankEvaluator:
    """The seed's bank table: per class gt / annotated / pseudo counts, and the recall of the
    *missing* (unannotated) instances and the precision of the pseudo labels per 3D-IoU bin
    ``[=0, (0, .1], (.1, .5], (.5, .7], (.7, 1]]``."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        c = len(class_names)
        self.gt = np.zeros(c, dtype=np.int64)
        self.anno = np.zeros(c, dtype=np.int64)
        self.pseudo = np.zeros(c, dtype=np.int64)
        self.recall_bins = np.zeros((c, 5), dtype=np.int64)
        self.precision_bins = np.zeros((c, 5), dtype=np.int64)
        self.bev_recall_07 = np.zeros(c, dtype=np.int64)
        self.missing = np.zeros(c, dtype=np.int64)
        self.missing_per_frame: Dict[str, int] = {}

    def add(self, key: str, full: Boxes3D, known: Boxes3D, pseudo: Boxes3D) -> None:
        # A full-label box is annotated when a known box coincides with it.
        annotated = np.zeros(len(full), dtype=bool)
        if len(full) and len(known):
            annotated = (iou_3d(full.boxes, known.boxes) > 0.99).any(1)
        missing = full.select(~annotated)
        self.missing_per_frame[key] = len(missing)
        biou = bev_iou(missing.boxes, pseudo.boxes)
        iou = iou_3d(missing.boxes, pseudo.boxes, biou)
        same = missing.labels[:, None] == pseudo.labels[None, :]
        iou = np.where(same, iou, 0.0)
        biou = np.where(same, biou, 0.0)
        for c in range(len(self.class_names)):
            self.gt[c] += int((full.labels == c).sum())
            self.anno[c] += int((known.labels == c).sum())
            self.pseudo[c] += int((pseudo.labels == c).sum())
            self.missing[c] += int((missing.labels == c).sum())
        for i in range(len(missing)):
            best = iou[i].max() if iou.shape[1] else 0.0
            self.recall_bins[missing.labels[i], _bin(best)] += 1
            if biou.shape[1] and biou[i].max() > 0.7:
                self.bev_recall_07[missing.labels[i]] += 1
        # Precision against every full-label box (annotated ones too: a pseudo label never overlaps
        # those by construction, so this is the same as against the missing ones).
        fiou = iou_3d(pseudo.boxes, full.boxes)
        fiou = np.where(pseudo.labels[:, None] == full.labels[None, :], fiou, 0.0) if fiou.size else fiou
        for j in range(len(pseudo)):
            best = fiou[j].max() if fiou.shape[1] else 0.0
            self.precision_bins[pseudo.labels[j], _bin(best)] += 1

    def rows(self) -> List[Dict]:
        out = []
        names = self.class_names + ["all"]
        for c, name in enumerate(names):
            sl = slice(None) if name == "all" else slice(c, c + 1)
            missing = int(self.missing[sl].sum())
            pseudo = int(self.pseudo[sl].sum())
            rb = self.recall_bins[sl].sum(0)
            pb = self.precision_bins[sl].sum(0)
            out.append({"class": name, "gt": int(self.gt[sl].sum()), "anno": int(self.anno[sl].sum()),
                        "pseudo": pseudo, "missing": missing,
                        "recall": [round(float(v) / missing, 4) if missing else 0.0 for v in rb],
                        "precision": [round(float(v) / pseudo, 4) if pseudo else 0.0 for v in pb],
                        "recall@0.5": round(float(rb[3:].sum()) / missing, 4) if missing else 0.0,
                        "recall@0.7": round(float(rb[4]) / missing, 4) if missing else 0.0,
                        "precision@0.5": round(float(pb[3:].sum()) / pseudo, 4) if pseudo else 0.0,
                        "precision@0.7": round(float(pb[4]) / pseudo, 4) if pseudo else 0.0,
                        "bev_recall@0.7": round(float(self.bev_recall_07[sl].sum()) / missing, 4) if missing else 0.0})
        return out

    def table(self) -> str:
        head = f"recall {list(BIN_LABELS)}"
        lines = ["instance bank (3D IoU bins of missing instances / pseudo labels)",
                 f"{'class':<12} {'gt':>6} {'anno':>6} {'pseudo':>6}  {head:<38} precision"]
        for r in self.rows():
            rec = "[" + " ".join(f"{v:5.2f}" for v in r["recall"]) + "]"
            pre = "[" + " ".join(f"{v:5.2f}" for v in r["precision"]) + "]"
            lines.append(f"{r['class']:<12} {r['gt']:>6} {r['anno']:>6} {r['pseudo']:>6}  {rec:<38} {pre}")
        return "\n".join(lines)


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman rank correlation with average ranks for ties (no scipy needed)."""
    x = np.asarray(list(x), dtype=np.float64)
    y = np.asarray(list(y), dtype=np.float64)
    if len(x) < 2:
        return 0.0

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        sv = v[order]
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and sv[j + 1] == sv[i]:
                j += 1
            r[order[i:j + 1]] = (i + j) / 2.0
            i = j + 1
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass
class Frame:
    key: str  # the candidate path exactly as in the index
    scan: str  # local path
    known: Boxes3D


def collect_features(batches: Iterable[List[Tuple[Frame, np.ndarray]]], predictor: Predictor, params: MiningParams,
                     aug_views: int, aug_seed: int, sink: Callable[[FrameFeatures], None],
                     progress: Optional[Callable[[int], None]] = None) -> Dict[int, List[Tuple[float, float]]]:
    """Pass 1: features of every frame handed to ``sink``; returns the calibration samples."""
    samples: Dict[int, List[Tuple[float, float]]] = {}
    done = 0
    for batch in batches:
        views = predictor.predict_views([(f.key, pts, [aug_for(aug_seed, f.key, v + 1) for v in range(aug_views)])
                                         for f, pts in batch])
        for (f, pts), v in zip(batch, views):
            feats = frame_features(f.key, pts, f.known, v, params)
            add_samples(samples, feats)
            sink(feats)
        done += len(batch)
        if progress:
            progress(done)
    return samples


def _spooled(path: str) -> Iterator[Dict]:
    """The infos a :class:`BankWriter` spooled to ``path`` (a chunk per frame), one at a time."""
    for chunk in read_pickled(path):
        yield from chunk


class _SpooledList:
    """Pickles as a plain list whose items stream from a spool file (pickle's listitems iterator)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return list, (), None, _spooled(self.path)


class BankWriter:
    """The bank in mmdet3d dbinfos format plus per-frame pseudo-label files.

    A pool of 10^5 frames holds 10^5-10^6 instances: their infos are spooled to disk per class as
    frames come and streamed into ``bank_dbinfos.pkl`` at :meth:`close` (a plain ``{class: [info,
    ...]}`` pickle, written without pickle's memo), so memory does not grow with the pool."""

    def __init__(self, root: str, class_names: Sequence[str]) -> None:
        self.root = root
        self.class_names = list(class_names)
        for d in ("database", "pseudo_labels", ".spool"):
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)
            os.makedirs(os.path.join(root, d))
        self.counts: Dict[str, int] = {n: 0 for n in class_names}
        self._spool_paths = {n: os.path.join(root, ".spool", f"{i}.pkl") for i, n in enumerate(class_names)}
        self._spool = {n: open(path, "wb") for n, path in self._spool_paths.items()}
        self.group = 0

    def add(self, frame_id: str, points: np.ndarray, known: Boxes3D, pseudo: Boxes3D) -> None:
        both = Boxes3D.concat([known, pseudo])
        inside = points_in_boxes(points, both.boxes) if len(both) else np.zeros((len(points), 0), dtype=bool)
        infos: Dict[str, List[Dict]] = {}
        for k, (box, label, score) in enumerate(zip(both.boxes, both.labels, both.scores)):
            name = self.class_names[int(label)]
            rel = f"database/{frame_id}_{name}_{k}.bin"
            obj = points[inside[:, k]].astype(np.float32).copy()
            obj[:, :3] -= box[:3].astype(np.float32)  # relative to the box, as mmdet3d's gt database
            obj.tofile(os.path.join(self.root, rel))
            infos.setdefault(name, []).append({
                "name": name, "path": rel, "image_idx": frame_id, "gt_idx": k,
                "box3d_lidar": box.astype(np.float32), "num_points_in_gt": int(len(obj)),
                "difficulty": 0, "group_id": self.group, "score": float(score)})
            self.group += 1
        for name, chunk in infos.items():
            pickle.dump(chunk, self._spool[name], protocol=pickle.HIGHEST_PROTOCOL)
            self.counts[name] += len(chunk)
        atomic_write_text(os.path.join(self.root, "pseudo_labels", f"{frame_id}.txt"),
                          format_boxes3d(both, self.class_names, with_score=True))

    def close(self) -> str:
        for f in self._spool.values():
            f.close()
        path = os.path.join(self.root, "bank_dbinfos.pkl")
        with open(path + ".tmp", "wb") as f:
            pickler = pickle.Pickler(f)
            pickler.fast = True  # no memo: it would keep every info alive until the end
            pickler.dump({n: _SpooledList(path) for n, path in self._spool_paths.items()})
        os.replace(path + ".tmp", path)
        shutil.rmtree(os.path.join(self.root, ".spool"), ignore_errors=True)
        return path
