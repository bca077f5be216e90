"""Candidates of an infer or mining task spread over processes, merged by rank 0.

Every kind's infer and mine does the same: process ``rank`` of ``world`` takes
``items[rank::world]``, writes one record per candidate it read into its own shard, and saves its
unreadable candidates; after a barrier rank 0 reads every record in candidate order and writes
the task's one result; a last barrier keeps the other processes alive until that result exists.
In one process (no launcher) the same code runs with ``world == 1`` and no barriers, so one and
several processes write identical files.

The shards are our own files in ``/out/<task>-tmp``, written and read within one run.
"""
from __future__ import annotations

import heapq
import logging
import os
import pickle
import shutil
from typing import Any, Iterator, Optional, Sequence, Tuple

from executor.fileio import read_pickled
from executor.index import CandidateList

from . import runtime

log = logging.getLogger(__name__)
from .candidates import BrokenCandidates


class CandidateShards:
    """``part``: this process's items; ``write(idx, record)`` in candidate order; ``gather(ctx)``
    (True in rank 0, which then reads ``records()``); ``finish()`` in every process."""

    def __init__(self, ctx, launcher: Optional[str], task: str, items: Sequence[Any],
                 max_broken_ratio: float) -> None:
        self.rank, self.world = runtime.rank(), runtime.world_size()
        self.launcher = launcher
        self.total = len(items)
        self.part: Sequence[Any] = items[self.rank::self.world]  # a view where items is a CandidateList
        self.dir = os.path.join(ctx.env.output.root_dir, f"{task}-tmp")
        if self.rank == 0 and os.path.isdir(self.dir):
            shutil.rmtree(self.dir)  # a killed run's shards
        self.barrier()
        os.makedirs(self.dir, exist_ok=True)
        self.broken = BrokenCandidates(max_broken_ratio, len(self.part), task)
        self._out = open(self._shard(self.rank), "wb")
        self._last = -1
        ctx.on_exit(self.close)

    def _shard(self, rank: int) -> str:
        return os.path.join(self.dir, f"rank{rank}.pkl")

    def barrier(self) -> None:
        if self.launcher:
            import torch.distributed as dist
            dist.barrier()

    def progress(self, done: int) -> float:
        """The fraction of this process's share handled (unreadable ones count as handled)."""
        return (done + len(self.broken)) / max(len(self.part), 1)

    def write(self, idx: int, record: Any) -> None:
        if idx <= self._last:  # the merge relies on each shard being in candidate order
            raise ValueError(f"shard records out of candidate order: {idx} after {self._last}")
        self._last = idx
        pickle.dump((idx, record), self._out, protocol=pickle.HIGHEST_PROTOCOL)

    def gather(self, ctx) -> bool:
        """Close this process's shard and wait for the others. In rank 0 (the return value is
        True there), ``broken`` becomes every process's unreadable candidates, reported."""
        self._out.close()
        self.broken.save(self.dir)
        self.barrier()
        if self.rank != 0:
            return False
        self.broken = self.broken.merge(self.dir, self.world, self.total)
        self.broken.report(ctx)
        return True

    def records(self) -> Iterator[Tuple[int, Any]]:
        """(idx, record) of every process, in candidate order, streamed."""
        return heapq.merge(*(read_pickled(self._shard(r)) for r in range(self.world)), key=lambda t: t[0])

    def every(self, missing: Any = None) -> Iterator[Tuple[int, Any]]:
        """(idx, record) for every candidate in order; ``missing`` for one without a record (unreadable)."""
        nxt = 0
        for idx, rec in self.records():
            for i in range(nxt, idx):
                yield i, missing
            yield idx, rec
            nxt = idx + 1
        for i in range(nxt, self.total):
            yield i, missing

    def close(self) -> None:
        """The shard is closed and rank 0 removes the folder: by :meth:`finish`, and at the task's
        end whether it finished or failed (a second call does nothing)."""
        self._out.close()
        if self.rank == 0:
            shutil.rmtree(self.dir, ignore_errors=True)

    def finish(self) -> None:
        """Rank 0 removes the shards; every process waits until rank 0 has written the result."""
        self.close()
        self.barrier()


def write_coco_infer_result(ctx, shards: "CandidateShards", cands: CandidateList, class_names) -> None:
    """Rank 0: COCO ``infer-result.json`` from records ``(height, width, annotations)`` in
    candidate order; an unreadable candidate is listed with no annotation. Then every rank
    cleans up."""
    if shards.gather(ctx):
        from executor.results import SegmentationInferWriter

        from .candidates import stored_size

        writer = SegmentationInferWriter(ctx.env, class_names)
        for idx, rec in shards.every():
            path = cands.local(idx)
            if rec is None:
                writer.add_empty(path, *stored_size(path))
            else:
                writer.add_encoded(path, *rec)
        writer.close()
        log.info("inference: wrote %s (%d images, %d annotations)", ctx.env.output.infer_result_file,
                 writer.n_images, writer.n_anns)
    shards.finish()
