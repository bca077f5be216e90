"""Hyper-parameters of the detection image (those users of the older mmdet image know, plus
image size, learning rate, early stopping and the detection cap)."""
from executor.hyperparams import Param, Schema, common_params, override_knobs, run_knobs

_CONF = Param("conf_threshold", "float", 0.2, "boxes below this score are dropped", min=0.0, max=1.0)
_MAXDET = Param("max_detections", "int", 1000,
                "most boxes kept per image; large so dense scenes keep all their objects", min=1)
_SIZE = Param("img_size", "str", "", "network input size (square side, rounded up to a multiple of 32; empty: the "
                                    "preset's)")

TRAINING = Schema("det", "training", common_params("training", samples_per_gpu=16, workers_per_gpu=4,
                                                   export_format="ark:raw") + [
    Param("config_file", "str", "rtmdet_tiny",
          "model preset (rtmdet_tiny, tiny) or the path of an mmdet config file"),
    _SIZE,
    Param("learning_rate", "float", 0.0, "initial learning rate (0: the preset's)", min=0.0),
    Param("max_epochs", "int", 100, "training epochs", min=1),
    Param("val_interval", "int", 1, "evaluation and checkpoint interval in epochs", min=1),
    Param("max_keep_checkpoints", "int", 1, "checkpoints to keep (-1: all)", min=-1),
    *run_knobs("mAP"),
    Param("conf_threshold", "float", 0.2, "confidence threshold of the tp / fp / fn counts", min=0.0, max=1.0),
    _MAXDET,
    *override_knobs(),
])

_CERTAIN = Param("certain_threshold", "float", 0.0,
                 "asm and certain_only: score a box needs to be certain (0: the stage's, calibrated on val to 90 % "
                 "precision)", min=0.0, max=1.0)

INFER = Schema("det", "infer", common_params("infer") + [_CONF, _MAXDET, _SIZE,
    Param("fp16", "bool", False, "half-precision forward pass (GPU only)"),
    Param("certain_only", "bool", False, "keep only certain boxes (see certain_threshold): pre-annotations for "
          "mining with prediction, as in seed 003's box-level split"), _CERTAIN])

MINING = Schema("det", "mining", common_params("mining") + [
    Param("mining_algorithm", "str", "aldd", "mining algorithm (asm: the share of an image's boxes a human must "
          "still draw or fix)", choices=("aldd", "cald", "entropy", "asm", "random")),
    Param("class_distribution_scores", "str", "", "per-class weights 'w0,w1,...' (empty: all 1)"),
    Param("mining_conf_threshold", "float", 0.05, "entropy / cald: detections below this score are ignored",
          min=0.0, max=1.0),
    Param("seed", "int", 0, "random: the seed (scores are reproducible and independent of sharding)"),
    _MAXDET, _SIZE, _CERTAIN,
])

SCHEMAS = {"training": TRAINING, "infer": INFER, "mining": MINING}


def certain_score(params, meta) -> float:
    """The score a box needs to be certain: the hyper-parameter, else the stage's calibrated one."""
    return float(params.get("certain_threshold") or meta.get("certain_threshold", 0.5))
