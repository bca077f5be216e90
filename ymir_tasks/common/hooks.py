"""mmengine hooks shared by the task kinds: progress into monitor.txt, a NaN-loss
stop with YMIR's code, and a call-back after every evaluation that writes the
kind's result.yaml stages. They read the task context set by
:func:`ymir_tasks.common.runtime.set_task_context` (configs must stay serialisable)."""
from __future__ import annotations

import math
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
            ctx.progress((runner.iter + 1) / max(runner.max_iters, 1) * (1.0 - self.reserve))


@HOOKS.register_module()
class YmirStageHook(Hook):
    """After every evaluation, hand the metrics to the kind's stage writer (rank 0)."""

    priority = "LOW"

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        writer = task_context().get("stage_writer")
        if writer is not None and is_main_process() and metrics:
            writer(runner, dict(metrics))
