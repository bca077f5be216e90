"""Hyper-parameters of the kinds over mmdet (detection, instance segmentation): those users of
the older mmdet image know, plus image size, learning rate, early stopping and the detection
cap. A kind names its presets, stage metric and mining algorithms and adds its own knobs."""
from __future__ import annotations

from typing import List, Sequence

from executor.hyperparams import Param, Schema, common_params, override_knobs, run_knobs

CONF = Param("conf_threshold", "float", 0.2, "boxes below this score are dropped", min=0.0, max=1.0)
MAXDET = Param("max_detections", "int", 1000,
               "most boxes kept per image; large so dense scenes keep all their objects", min=1)
SIZE = Param("img_size", "str", "", "network input size (square side, rounded up to a multiple of 32; empty: the "
                                   "preset's)")
FP16_INFER = Param("fp16", "bool", False, "half-precision forward pass (GPU only)")


def training_schema(kind: str, export_format: str, presets: Sequence[str], metric: str) -> Schema:
    return Schema(kind, "training", common_params("training", samples_per_gpu=16, workers_per_gpu=4,
                                                  export_format=export_format) + [
        Param("config_file", "str", presets[0],
              f"model preset ({', '.join(presets)}) or the path of an mmdet config file"),
        SIZE,
        Param("learning_rate", "float", 0.0, "initial learning rate (0: the preset's)", min=0.0),
        Param("max_epochs", "int", 100, "training epochs", min=1),
        Param("val_interval", "int", 1, "evaluation and checkpoint interval in epochs", min=1),
        Param("max_keep_checkpoints", "int", 1, "checkpoints to keep (-1: all)", min=-1),
        *run_knobs(metric),
        Param("conf_threshold", "float", 0.2, "confidence threshold of the tp / fp / fn counts", min=0.0, max=1.0),
        MAXDET,
        *override_knobs(),
    ])


def mining_params(algorithms: Sequence[str], default: str, help_text: str) -> List[Param]:
    """The mining knobs: the algorithm first, then what its scores read."""
    return [
        Param("mining_algorithm", "str", default, help_text, choices=tuple(algorithms)),
        Param("class_distribution_scores", "str", "", "per-class weights 'w0,w1,...' (empty: all 1)"),
        Param("mining_conf_threshold", "float", 0.05, "entropy / cald: detections below this score are ignored",
              min=0.0, max=1.0),
        Param("seed", "int", 0, "random: the seed (scores are reproducible and independent of sharding)"),
        MAXDET, SIZE,
    ]


def certain_score(params, meta) -> float:
    """The score a box needs to be certain: the hyper-parameter, else the stage's calibrated one."""
    return float(params.get("certain_threshold") or meta.get("certain_threshold", 0.5))
