"""Hyper-parameters of the detection image (the shared mmdet knobs, :mod:`..common.mmdet_params`,
plus the certain-box split of mining with prediction)."""
from executor.hyperparams import Param, Schema, common_params

from ..common.mmdet_params import CONF, FP16_INFER, MAXDET, SIZE, mining_params, training_schema
from .config import PRESETS

TRAINING = training_schema("det", "ark:raw", PRESETS, "mAP")

_CERTAIN = Param("certain_threshold", "float", 0.0,
                 "asm and certain_only: score a box needs to be certain (0: the stage's, calibrated on val to 90 % "
                 "precision)", min=0.0, max=1.0)

INFER = Schema("det", "infer", common_params("infer") + [CONF, MAXDET, SIZE, FP16_INFER,
    Param("certain_only", "bool", False, "keep only certain boxes (see certain_threshold): pre-annotations for "
          "mining with prediction, as in seed 003's box-level split"), _CERTAIN])

MINING = Schema("det", "mining", common_params("mining") + mining_params(
    ("aldd", "cald", "entropy", "asm", "random"), "aldd",
    "mining algorithm (asm: the share of an image's boxes a human must still draw or fix)") + [_CERTAIN])

SCHEMAS = {"training": TRAINING, "infer": INFER, "mining": MINING}
