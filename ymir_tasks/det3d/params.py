"""Hyper-parameters of the 3D detection image (PointPillars over mmdet3d, instance-bank mining)."""
from executor.hyperparams import Param, Schema, common_params, override_knobs, run_knobs

# object_type of the 3D image: YMIR defines none for point clouds, so a value it does not use.
OBJECT_TYPE = 100

_CONF = Param("conf_threshold", "float", 0.3, "boxes below this score are dropped", min=0.0, max=1.0)
_MAXDET = Param("max_detections", "int", 500, "most boxes kept per frame", min=1)

TRAINING = Schema("det3d", "training", common_params("training", samples_per_gpu=4, workers_per_gpu=2) + [
    Param("config_file", "str", "pointpillars",
          "model preset (pointpillars, tiny) or the path of an mmdet3d config file"),
    Param("point_cloud_range", "str", "",
          "x0,y0,z0,x1,y1,z1 in metres (empty: the preset's); x and y spans / voxel size must be multiples of 8"),
    Param("voxel_size", "str", "", "pillar size 'vx,vy' in metres (empty: the preset's)"),
    Param("learning_rate", "float", 0.0, "initial learning rate of AdamW (0: the preset's)", min=0.0),
    Param("max_epochs", "int", 80, "training epochs", min=1),
    Param("val_interval", "int", 5, "evaluation and checkpoint interval in epochs", min=1),
    Param("max_keep_checkpoints", "int", 1, "checkpoints to keep (-1: all)", min=-1),
    *run_knobs("mAP", fp16=False),
    Param("eval_iou", "str", "",
          "3D IoU of a true positive per class 'Car:0.7,Pedestrian:0.5' or one number (empty: 0.7 for "
          "classes with a footprint >= 4 m², else 0.5)"),
    Param("conf_threshold", "float", 0.3, "confidence threshold of the tp / fp / fn counts", min=0.0, max=1.0),
    Param("ss3d_iterations", "int", 0, "SS3D rounds after training: mine the training frames into the bank, "
          "train on labels + bank with unreliable regions cut out (0: off)", min=0),
    Param("ss3d_epochs", "int", 6, "training epochs per SS3D round", min=1),
    Param("ss3d_paste", "int", 0, "SS3D rounds: bank instances of each class pasted into every training frame, "
          "where they collide with nothing (SS3D's point filling; 0: off)", min=0),
    *override_knobs(),
])

INFER = Schema("det3d", "infer", common_params("infer", samples_per_gpu=4) + [_CONF, _MAXDET])

MINING = Schema("det3d", "mining", common_params("mining", samples_per_gpu=4, diversity=1.0, balance_classes=True) + [
    Param("mining_score", "str", "auto", "frame score: qa = confident missed objects (label QA; needs sparse "
          "labels on the candidates), active = uncertain unlabelled objects (active learning), auto = qa when "
          "candidates carry sparse labels, else active", choices=("auto", "qa", "active")),
    Param("class_balance", "bool", True, "weight each box in the frame score by its class's median frequency "
          "over the pool's predictions (clipped 0.1-10): frames likely to hold a rarely predicted class first"),
    Param("aug_views", "int", 1, "augmented views (flip, rotation, scale) predicted beside the raw scan", min=1,
          max=8),
    Param("aug_seed", "int", 0, "seed of the augmentation parameters (per frame, independent of sharding)"),
    Param("score_low", "float", 0.1, "predictions below this score are ignored", min=0.0, max=1.0),
    Param("score_high", "float", 0.9, "score a pseudo label needs (fallback when it cannot be calibrated)",
          min=0.0, max=1.0),
    Param("consistency_iou", "float", 0.9,
          "3D IoU between raw and augmented predictions a pseudo label needs (fallback when not calibrated)",
          min=0.0, max=1.0),
    Param("calibrate_thresholds", "bool", True,
          "set score and consistency thresholds per class from predictions that match annotated boxes"),
    Param("calib_quantile", "float", 0.2, "quantile of the matched predictions' values taken as the threshold",
          min=0.0, max=1.0),
    Param("min_calib_samples", "int", 8,
          "matched predictions a class needs to be calibrated (a low quantile of fewer is noise)", min=1),
    Param("min_points", "int", 5, "LiDAR points a pseudo label must hold", min=0),
    Param("collision_iou", "float", 0.01,
          "BEV IoU above which a prediction overlaps a known object (annotated or in the bank)", min=0.0, max=1.0),
    Param("write_bank", "bool", True, "write the instance bank (mmdet3d dbinfos + points) and pseudo labels to "
          "/out/bank"),
    Param("eval_index_file", "str", "", "index 'scan<TAB>full labels' to score the bank against (empty: none)"),
    _MAXDET,
])

SCHEMAS = {"training": TRAINING, "infer": INFER, "mining": MINING}
