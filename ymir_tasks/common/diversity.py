"""Batches, not lists: the order of ``result.tsv`` so that every prefix is a good batch.

The platform takes the first ``topk`` lines and never tells the image ``topk``. Sorting by
uncertainty alone fills the top with near-identical frames and with the one class the model is
unsure about. With ``diversity`` > 0 the first ``diverse_top`` lines are picked greedily: the
next line is the candidate that maximises

    uncertainty rank score × (distance to the nearest line already picked / largest distance) ** diversity

over features the model computed anyway (pooled per image), so an identical candidate (distance 0)
is never picked while any other remains, and the top spreads over the pool as k-center
(farthest-point) selection does, weighted by uncertainty. With ``balance_classes`` the line
comes from the predicted class that has the fewest lines so far (among classes with candidates
left), so every prefix holds the classes within one line of each other. A candidate in which the
model predicted nothing (class -1: mostly empty images, which every box miner ranks last) is no
class of its own: it enters the top only by its gain once the predicted classes run out. The rest follows by
score. The written scores are the rank (1 for the first line down to near 0), so they stay
monotone in file order; the miner's own scores go to ``/out/mining-scores.tsv``.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from executor.fileio import atomic_open

log = logging.getLogger(__name__)

SIDE_FILE = "mining-scores.tsv"
NO_CLASS = -1  # a candidate's class when the model predicted nothing in it


def diverse_order(scores: np.ndarray, feats: Optional[np.ndarray], classes: Optional[np.ndarray], *, top: int,
                  diversity: float, balance: bool) -> np.ndarray:
    """Indices of the candidates in file order (see the module docstring). ``scores`` [N]
    (higher = more informative; -inf = unreadable, always last), ``feats`` [N, D], ``classes``
    [N] predicted class per candidate (-1: none)."""
    n = len(scores)
    scores = np.asarray(scores, np.float64)
    by_score = np.lexsort((np.arange(n), -np.where(np.isfinite(scores), scores, -np.inf)))
    readable = by_score[np.isfinite(scores[by_score])]
    if n == 0 or (diversity <= 0 and not balance) or len(readable) == 0:
        return by_score
    # uncertainty as a rank in (0, 1]: scale-free across miners and classes
    rank = np.empty(n)
    rank[readable] = 1.0 - np.arange(len(readable)) / len(readable)
    k = min(top if top > 0 else len(readable), len(readable))
    pool = readable
    use_d = diversity > 0 and feats is not None
    if use_d:
        # no copy of the [N, D] matrix (10^5-10^6 candidates): distances of unit vectors from
        # the raw rows and their norms, |a/|a| - b/|b||^2 = 2 - 2 a.b / (|a| |b|)
        f = np.asarray(feats, np.float32)
        norms = np.empty(len(f), np.float32)
        step = 1 << 12  # the norms in slices of 1 MB at 64-d: no [N, D] temporary either
        for i in range(0, len(f), step):
            norms[i:i + step] = np.maximum(np.linalg.norm(f[i:i + step], axis=1), 1e-12)
        d_min = np.full(len(pool), np.inf, np.float32)
        scale = 1.0
    cls = np.asarray(classes if classes is not None else np.full(n, -1))[pool]
    counts: Dict[int, int] = {}
    taken = np.zeros(len(pool), bool)
    picked: List[int] = []
    for _ in range(k):
        gain = rank[pool].copy()
        if use_d and picked:
            gain *= (np.minimum(d_min / scale, 1.0)) ** diversity
        gain[taken] = -1.0
        if balance:
            left = {int(c) for c in np.unique(cls[~taken])}
            if len(left) > 1:  # "nothing predicted" is no class: it takes no turn while a class is left
                left.discard(NO_CLASS)
            least = min(counts.get(c, 0) for c in left)
            allowed = np.isin(cls, [c for c in left if counts.get(c, 0) == least])
            gain[~allowed] = -1.0
        j = int(np.argmax(gain))  # ties: the higher-ranked (earlier) one
        taken[j] = True
        picked.append(j)
        counts[int(cls[j])] = counts.get(int(cls[j]), 0) + 1
        if use_d:  # one matrix-vector product per line
            g = pool[j]
            d = np.sqrt(np.maximum(2.0 - 2.0 * (f @ f[g])[pool] / (norms[pool] * norms[g]), 0.0))
            d_min = np.minimum(d_min, d)
            if len(picked) == 1:
                scale = float(max(d.max(), 1e-12))
    head = pool[picked]
    rest = np.ones(n, bool)
    rest[head] = False  # the others by score, as arrays: no Python object per candidate
    return np.concatenate([head, by_score[rest[by_score]]]).astype(np.int64)


def mining_order(scores: Sequence[float], feats: Optional[np.ndarray], classes: Optional[Sequence[int]],
                 p: Dict) -> List[int]:
    """The candidates' order in ``result.tsv``: diverse / balanced when the task asks for it, else
    by score (ties in candidate order, non-finite scores last), as ``write_mining_result`` sorts."""
    arr = np.asarray(scores, np.float64)
    if not wants_order(p):
        key = np.where(np.isfinite(arr), -arr, np.inf)
        return [int(i) for i in np.lexsort((np.arange(len(arr)), key))]
    return [int(i) for i in diverse_order(arr, feats, None if classes is None else np.asarray(classes),
                                          top=int(p.get("diverse_top", 0)),
                                          diversity=float(p.get("diversity", 0.0) or 0.0),
                                          balance=bool(p.get("balance_classes", False)))]


def write_ordered_mining_result(env, paths: Sequence[str], scores: Sequence[float],
                                feats: Optional[np.ndarray], classes: Optional[Sequence[int]], p: Dict,
                                order: Optional[Sequence[int]] = None) -> int:
    """``result.tsv`` in the diverse / balanced order when the task asks for it, else by score;
    ``order``: the one ``mining_order`` gave, when the caller needs it too."""
    from executor.results import write_mining_result

    diversity, balance = float(p.get("diversity", 0.0) or 0.0), bool(p.get("balance_classes", False))
    if not wants_order(p):
        return write_mining_result(env, zip(paths, scores))
    t = time.time()
    arr = np.asarray(scores, np.float64)
    order = list(order) if order is not None else mining_order(arr, feats, classes, p)
    n = len(order)
    # rank scores: monotone in file order; unreadable candidates keep the lowest score
    ranked = ((paths[i], (1.0 - pos / max(n, 1)) if np.isfinite(arr[i]) else -np.inf) for pos, i in enumerate(order))
    count = write_mining_result(env, ranked)
    with atomic_open(os.path.join(env.output.root_dir, SIDE_FILE)) as f:  # streamed: no pool-sized text
        for i in order:
            f.write(f"{paths[i]}\t{arr[i]:.10g}\n")
    log.info("mining: %d candidates ordered for diversity %.2f%s over the first %s in %.2f s (miner scores in %s)", n,
             diversity, " and class balance" if balance else "", p.get("diverse_top") or "all", time.time() - t,
             SIDE_FILE)
    return count


# Pooled features are projected to this many dimensions (a fixed, seeded Gaussian projection,
# which keeps distances within ~1/sqrt(D) relatively): the pool's features stay 256 bytes per
# candidate whatever the model, so 10^5-10^6 candidates fit beside the model.
FEATURE_DIM = 64
_PROJECTIONS: Dict[Tuple[int, str], object] = {}


def _projection(d_in: int, device):
    import torch

    key = (d_in, str(device))
    if key not in _PROJECTIONS:
        g = torch.Generator().manual_seed(d_in)  # the same matrix in every process and run
        m = torch.randn(d_in, FEATURE_DIM, generator=g, dtype=torch.float32) / FEATURE_DIM ** 0.5
        _PROJECTIONS[key] = m.to(device)
    return _PROJECTIONS[key]


def pooled(features: Iterable) -> np.ndarray:
    """One vector per image from a feature map or a tuple of them ([B, C, H, W] each): global mean
    and max per channel, projected to ``FEATURE_DIM`` dimensions when there are more."""
    import torch

    maps = list(features) if isinstance(features, (list, tuple)) else [features]
    parts = []
    for m in maps:
        if not torch.is_tensor(m) or m.dim() != 4:
            continue
        m = m.detach().float()
        parts += [m.mean(dim=(2, 3)), m.amax(dim=(2, 3))]
    if not parts:
        return np.zeros((0, 0), np.float32)
    v = torch.cat(parts, 1)
    if v.shape[1] > FEATURE_DIM:
        v = v @ _projection(v.shape[1], v.device)
    return v.cpu().numpy()


class FeatureTap:
    """Collects the pooled output of a module (a model's neck or backbone) during forwards."""

    def __init__(self, module) -> None:
        self.module = module
        self.rows: List[np.ndarray] = []
        self.handle = None
        self.enabled = True

    def __enter__(self) -> "FeatureTap":
        def hook(_m, _inp, out):
            if self.enabled:
                v = pooled(out)
                self.rows.extend(list(v))
        self.handle = self.module.register_forward_hook(hook)
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.remove()

    def take(self, n: int) -> List[np.ndarray]:
        out, self.rows = self.rows[:n], self.rows[n:]
        return out


def tap_module(model):
    """The module whose pooled output describes an image: the neck, else the backbone."""
    inner = getattr(model, "module", model)
    return getattr(inner, "neck", None) or getattr(inner, "backbone")


class FeatureStore:
    """This process's pooled features and predicted classes, in arrays sized for the whole pool
    and filled in place (pages a process never touches cost it nothing). Not a dict of one small
    array per candidate: those, kept between each batch's large temporaries, stopped the
    allocator from giving memory back (6.7 KB of RSS per candidate, measured on 20 000 seg
    candidates; 2.5x the 1 000-candidate peak at 100 000)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.mat: Optional[np.ndarray] = None
        self.cls = np.full(n, -1, np.int64)
        self.has = np.zeros(n, bool)

    def put(self, idx: int, row: np.ndarray, cls: int) -> None:
        if self.mat is None:
            self.mat = np.zeros((self.n, len(row)), np.float32)
        self.mat[idx] = row
        self.cls[idx] = cls
        self.has[idx] = True

    def save(self, folder: str, rank: int) -> None:
        """One file per process, merged by rank 0 (:func:`load_features`) after the barrier; the
        features are then dropped here."""
        idx = np.flatnonzero(self.has)
        if self.mat is None:
            mat = np.zeros((0, 0), np.float32)
        else:  # every row (one process): the matrix itself, not a second copy of it
            mat = self.mat if len(idx) == self.n else self.mat[idx]
        np.savez(os.path.join(folder, f"features-rank{rank}.npz"), idx=idx, feats=mat, cls=self.cls[idx])
        self.mat = None  # rank 0 reads them all back next: not twice in memory


def load_features(folder: str, world: int, n: int) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """[n, D] features in candidate order (zeros for candidates without: unreadable ones) and [n]
    predicted classes (-1: none), from every process's file."""
    feats: Optional[np.ndarray] = None
    classes = np.full(n, -1, np.int64)
    for r in range(world):
        path = os.path.join(folder, f"features-rank{r}.npz")
        if not os.path.isfile(path):
            continue
        d = np.load(path)
        if len(d["idx"]) == 0:
            continue
        if len(d["idx"]) == n:  # one file holds every row, in order: no second [n, D] matrix
            return d["feats"], d["cls"].astype(np.int64)
        if feats is None:
            feats = np.zeros((n, d["feats"].shape[1]), np.float32)
        feats[d["idx"]] = d["feats"]
        classes[d["idx"]] = d["cls"]
    return feats, classes


def wants_order(p: Dict) -> bool:
    return float(p.get("diversity", 0.0) or 0.0) > 0 or bool(p.get("balance_classes", False))
