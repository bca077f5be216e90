"""Writes a kind's ``best`` and ``last`` stages after every evaluation (rank 0).

Each stage is self-sufficient: the weights as a plain state dict (``model.pth``), the mmengine
config as data (``<kind>_config.yaml``) and ``ymir-model.yaml`` (what inference needs to know). ``best`` is rewritten
only when the main metric improved; result.yaml always names ``best`` as the best stage.
"""
from __future__ import annotations

import glob
import json
import logging
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import yaml

from executor.results import write_model_stage

from . import runtime, training_pictures
from .safe_config import dump_config

log = logging.getLogger(__name__)

MODEL_META = "ymir-model.yaml"
WEIGHTS = "model.pth"


class StageWriter:
    def __init__(self, ctx, work_dir: str, cfg, config_name: str, meta: Mapping[str, Any],
                 stage_metrics: Sequence[str], counts: Sequence[str] = (),
                 attachment: Optional[Callable[[Dict[str, float]], Dict[str, Any]]] = None,
                 meta_from_metrics: Sequence[str] = (), checkpoints_in_last: bool = False) -> None:
        """``stage_metrics``: the evaluation figures every stage carries (the kind's main metric
        first, which makes a stage "best"); ``checkpoints_in_last``: the kept checkpoints join the
        'last' stage's files too."""
        self.ctx = ctx
        self.checkpoints_in_last = checkpoints_in_last
        self.meta = dict(meta, weights=WEIGHTS, config=config_name)
        self.meta_from_metrics = list(meta_from_metrics)  # evaluation figures inference needs (e.g. thresholds)
        self.work_dir = work_dir
        self.main_metric = ctx.kind.main_metric
        self.stage_metrics = list(stage_metrics)
        self.counts = list(counts)
        self.attachment = attachment
        self.stage_dir = os.path.join(work_dir, "stage-files")
        os.makedirs(self.stage_dir, exist_ok=True)
        self.config_name = config_name
        # as data, never as Python: whoever loads this stage later runs none of it (see safe_config)
        dump_config(cfg, os.path.join(self.stage_dir, config_name))
        self._write_meta({})
        self.best = self._best_so_far()

    def _write_meta(self, metrics: Dict[str, float]) -> None:
        meta = dict(self.meta, **{k: float(metrics[k]) for k in self.meta_from_metrics if k in metrics})
        path = os.path.join(self.stage_dir, MODEL_META)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            yaml.safe_dump(meta, f, sort_keys=False)
        os.replace(path + ".tmp", path)

    def _best_so_far(self) -> float:
        try:
            with open(self.ctx.env.output.training_result_file, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
            return float(doc["model_stages"]["best"][self.main_metric])
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            return -1.0

    def __call__(self, runner, metrics: Dict[str, float]) -> None:
        import torch

        self._write_meta(metrics)
        weights = os.path.join(self.stage_dir, WEIGHTS)
        torch.save(runtime.plain_state_dict(runner.model), weights + ".tmp")
        os.replace(weights + ".tmp", weights)
        table = os.path.join(self.stage_dir, "evaluation.json")
        body = self.attachment(metrics) if self.attachment else dict(metrics)
        with open(table, "w", encoding="utf-8") as f:
            json.dump(dict(body, epoch=runner.epoch, iteration=runner.iter), f, indent=1)
        # the evaluation's pictures (curves, confusion, val predictions) beside its table
        shown = [table] + training_pictures.write(self.stage_dir, self.ctx.env.output.tensorboard_dir, runner.iter,
                                                  training_pictures.take())
        files = [weights, os.path.join(self.stage_dir, self.config_name), os.path.join(self.stage_dir, MODEL_META)]
        scores = {k: float(metrics.get(k, 0.0)) for k in self.stage_metrics}
        counts = {k: int(metrics[k]) for k in self.counts if k in metrics}
        main = scores[self.main_metric]
        if main > self.best:
            self.best = main
            write_model_stage(self.ctx.env, "best", files, scores, counts=counts, best_stage_name="best",
                              attachments={"best": shown})
        last_files = list(files)
        if self.checkpoints_in_last:
            last_files += sorted(glob.glob(os.path.join(self.work_dir, "*_*.pth")))
        write_model_stage(self.ctx.env, "last", last_files, scores, counts=counts, best_stage_name="best",
                          attachments={"last": shown})
        log.info("evaluation at iteration %d (epoch %d): %s (best %s %.4f); stages written", runner.iter,
                 runner.epoch, ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), self.main_metric, self.best)
