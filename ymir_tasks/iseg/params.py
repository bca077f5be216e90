"""Hyper-parameters of the instance-segmentation image: the shared mmdet knobs
(:mod:`..common.mmdet_params`) with the mask-uncertainty miner as the default."""
from executor.hyperparams import Schema, common_params

from ..common.mmdet_params import CONF, FP16_INFER, MAXDET, SIZE, mining_params, training_schema

PRESETS = ("rtmdet_ins_tiny", "mask_rcnn_r50", "tiny")

TRAINING = training_schema("iseg", "seg-coco:raw", PRESETS, "maskAP")

INFER = Schema("iseg", "infer", common_params("infer") + [CONF, MAXDET, SIZE, FP16_INFER])

# diverse and balanced by default: in the benchmark loop plain mask_entropy took hard, similar
# images whose batches collapsed training at equal compute on one seed of three
MINING = Schema("iseg", "mining", common_params("mining", diversity=1.0, balance_classes=True) + mining_params(
    ("mask_entropy", "aldd", "cald", "entropy", "random"), "mask_entropy",
    "mining algorithm (mask_entropy: mean binary entropy of the mask probabilities inside each instance; "
    "RTMDet-Ins presets)"))

SCHEMAS = {"training": TRAINING, "infer": INFER, "mining": MINING}
