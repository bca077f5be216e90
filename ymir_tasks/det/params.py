"""Hyper-parameters of the detection image (those users of the older mmdet image know)."""
from executor.hyperparams import Param, Schema, common_params

TRAINING = Schema("det", "training", common_params("training", samples_per_gpu=16, workers_per_gpu=4,
                                                   export_format="ark:raw") + [
    Param("config_file", "str", "rtmdet_tiny", "model preset name or path of an mmdet config file"),
    Param("max_epochs", "int", 100, "training epochs", min=1),
    Param("val_interval", "int", 1, "evaluation interval in epochs", min=1),
    Param("max_keep_checkpoints", "int", 1, "checkpoints to keep (-1: all)", min=-1),
    Param("cfg_options", "str", "", "mmengine config overrides 'key=value key2=value2'"),
    Param("args_options", "str", "", "extra training options (documented subset)"),
])

INFER = Schema("det", "infer", common_params("infer") + [
    Param("conf_threshold", "float", 0.2, "boxes below this score are dropped", min=0.0, max=1.0),
])

MINING = Schema("det", "mining", common_params("mining") + [
    Param("mining_algorithm", "str", "aldd", "mining algorithm",
          choices=("aldd", "cald", "entropy", "random")),
    Param("class_distribution_scores", "str", "", "per-class weights 'w0,w1,...' (empty: all 1)"),
])

SCHEMAS = {"training": TRAINING, "infer": INFER, "mining": MINING}
