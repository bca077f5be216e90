"""mmengine hooks shared by the task kinds: progress into monitor.txt, a NaN-loss
stop with YMIR's code, and a call-back after every evaluation that writes the
kind's result.yaml stages. They read the task context set by
:func:`ymir_tasks.common.runtime.set_task_context` (configs must stay serialisable)."""
from __future__ import annotations

import glob
import math
import os
import re
from typing import Any, Dict, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from executor.errors import ErrorCode, YmirError

from .runtime import is_main_process, task_context


@HOOKS.register_module()
class YmirProgressHook(Hook):
    """Monitor percent by iteration (rank 0), and error 300201 when the loss is not finite."""

    priority = "LOW"

    def __init__(self, reserve: float = 0.02) -> None:
        self.reserve = reserve  # the tail of the bar belongs to the final stage writing

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[Dict[str, Any]] = None) -> None:
        if outputs:
            loss = outputs.get("loss")
            value = float(loss.detach()) if hasattr(loss, "detach") else float(loss or 0.0)
            if not math.isfinite(value):
                raise YmirError(ErrorCode.NAN_LOSS, f"loss is {value} at iteration {runner.iter + 1}: lower the "
                                "learning rate or check the annotations for empty masks / boxes")
        ctx = task_context().get("ctx")
        if ctx is not None and is_main_process():
            # A task that trains in several runs (SS3D rounds) gives each its share of the bar.
            start, end = task_context().get("progress_span", (0.0, 1.0))
            frac = (runner.iter + 1) / max(runner.max_iters, 1)
            ctx.progress((start + (end - start) * frac) * (1.0 - self.reserve))


@HOOKS.register_module()
class YmirStageHook(Hook):
    """After every evaluation, hand the metrics to the kind's stage writer (rank 0)."""

    priority = "LOW"

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        writer = task_context().get("stage_writer")
        if writer is not None and is_main_process() and metrics:
            writer(runner, dict(metrics))


@HOOKS.register_module()
class YmirKeepCheckpoints(Hook):
    """Keeps the newest ``keep`` epoch / iteration checkpoints, deleting older ones only once a new
    one is complete. mmengine's own ``max_keep_ckpts`` deletes the oldest *before* writing the
    next, so a kill during that write left no complete checkpoint to resume from; the
    CheckpointHook is given one more than asked (see ``apply_runtime``) and this hook trims."""

    priority = "LOWEST"  # after CheckpointHook (VERY_LOW) has written this step's file

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def _trim(self, runner) -> None:
        if not is_main_process():
            return
        found = []
        for path in glob.glob(os.path.join(runner.work_dir, "*.pth")):
            m = re.fullmatch(r"(?:epoch|iter)_(\d+)\.pth", os.path.basename(path))
            if m:
                found.append((int(m.group(1)), path))
        for _, path in sorted(found)[:-self.keep]:
            os.remove(path)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[Dict[str, Any]] = None) -> None:
        self._trim(runner)

    def after_train_epoch(self, runner) -> None:
        self._trim(runner)
