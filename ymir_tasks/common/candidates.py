"""Candidates of an infer or mining task as loader batches, and what happens to unreadable ones.

The policy, the same for every kind: a candidate that cannot be read (a truncated JPEG, a text
file with an image name, an image too large to decode, a broken scan: error 300003) is skipped
with a warning naming it. It stays in the outputs, as the contract wants every candidate there:
with no predictions in ``infer-result.json`` and the lowest score in ``result.tsv``, so the
platform never picks it while there are readable ones. The skipped ones are counted in the log
and in monitor.txt's detail lines. The task fails (300003) only when more than
``max_broken_ratio`` of the candidates are unreadable, and then as soon as that is certain.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

from executor.errors import ErrorCode, YmirError, image_error

from . import runtime

log = logging.getLogger(__name__)

# Unreadable candidates named in monitor.txt (the log names every one).
NOTED = 20


@dataclass(frozen=True)
class Unreadable:
    """What a loader worker returns instead of raising for a candidate it cannot read."""

    idx: int
    path: str
    reason: str


class CandidateData:
    """Map-style dataset over ``(idx, path, ...)`` items; ``load(item)`` runs in a loader worker.
    An unreadable candidate becomes an :class:`Unreadable` record; any other error propagates."""

    def __init__(self, items: Sequence[Any], load: Callable[[Any], Any]) -> None:
        self.items = items  # not copied: a CandidateList makes its items on access
        self.load = load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        item = self.items[i]
        try:
            return self.load(item)
        except YmirError as e:
            if e.code != ErrorCode.IMAGE_FORMAT:
                raise
            return Unreadable(int(item[0]), str(item[1]), e.message if e.file else e.one_line())


def _as_list(batch: List[Any]) -> List[Any]:
    return batch


class BrokenCandidates:
    """The unreadable candidates of one process's share of a task."""

    def __init__(self, max_ratio: float, total: int, task: str) -> None:
        self.max_ratio = float(max_ratio)
        self.total = int(total)
        self.task = task
        self.items: Dict[int, str] = {}
        self.paths: Dict[int, str] = {}

    @property
    def limit(self) -> int:
        return int(math.floor(self.max_ratio * self.total + 1e-9))

    def add(self, rec: Unreadable) -> None:
        self.items[rec.idx] = rec.reason
        self.paths[rec.idx] = rec.path
        log.warning("%s: skipping unreadable candidate %s: %s", self.task, rec.path, rec.reason)
        if len(self.items) > self.limit:
            first = "; ".join(f"{self.paths[i]}: {self.items[i]}" for i in list(self.items)[:3])
            raise image_error(f"{len(self.items)} of {self.total} candidates are unreadable, more than "
                              f"max_broken_ratio {self.max_ratio:g} allows ({self.limit}); first: {first}",
                              field="max_broken_ratio")

    def __contains__(self, idx: int) -> bool:
        return idx in self.items

    def __len__(self) -> int:
        return len(self.items)

    # Several processes: each saves its share before the task's barrier, rank 0 merges after it.
    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"unreadable-rank{runtime.rank()}.json"), "w", encoding="utf-8") as f:
            json.dump({str(i): [self.paths[i], r] for i, r in self.items.items()}, f)

    def merge(self, folder: str, world: int, total: int) -> "BrokenCandidates":
        out = BrokenCandidates(self.max_ratio, total, self.task)
        for r in range(world):
            path = os.path.join(folder, f"unreadable-rank{r}.json")
            if not os.path.isfile(path):
                continue
            with open(path, encoding="utf-8") as f:
                for i, (p, reason) in json.load(f).items():
                    out.items[int(i)], out.paths[int(i)] = reason, p
        return out

    def report(self, ctx) -> None:
        """The count in the log and, with the first ones named, in monitor.txt's detail lines."""
        if not self.items:
            return
        what = "the lowest score in result.tsv" if self.task == "mining" else "no predictions"
        log.warning("%s: %d of %d candidates were unreadable and skipped (%s)", self.task, len(self.items),
                    self.total, what)
        lines = [f"{self.task}: {len(self.items)} of {self.total} candidates unreadable, skipped ({what}):"]
        for i in sorted(self.items)[:NOTED]:
            lines.append(f"  {self.paths[i]}: {self.items[i]}")
        if len(self.items) > NOTED:
            lines.append(f"  ... and {len(self.items) - NOTED} more (see the log)")
        ctx.monitor.note(lines)


def candidate_batches(items: Sequence[Any], load: Callable[[Any], Any], batch_size: int, workers: int,
                      broken: BrokenCandidates) -> Iterator[List[Any]]:
    """Batches of loaded candidates in item order, unreadable ones handed to ``broken``. A batch
    may come out shorter, never empty."""
    from torch.utils.data import DataLoader

    runtime.fork_safe_loader_setup()
    for batch in DataLoader(CandidateData(items, load), batch_size=batch_size, num_workers=workers,
                            collate_fn=_as_list):
        good = []
        for rec in batch:
            if isinstance(rec, Unreadable):
                broken.add(rec)
            else:
                good.append(rec)
        if good:
            yield good


def stored_size(path: str) -> Tuple[int, int]:
    """(width, height) an unreadable candidate is listed with: its header's when that can be read."""
    from executor.images import image_size

    try:
        return image_size(path)
    except YmirError:
        return 1, 1
