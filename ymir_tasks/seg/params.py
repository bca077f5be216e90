"""Hyper-parameters of the segmentation image (the seed's training / infer / mining tables)."""
from executor.hyperparams import Param, Schema, common_params, override_knobs, run_knobs
from .mining.methods import SUPERPIXEL_METHODS

# BatchNorm after global pooling (Fast-SCNN's pyramid pooling, DeepLabV3+'s image pool) sees one
# value per channel in a batch of one image and cannot train: two images per GPU at least.
TRAINING = Schema("seg", "training", common_params(
    "training", export_format="seg-coco:raw", min_samples=2,
    samples_help="batch size per GPU (at least 2: BatchNorm after global pooling needs two images)") + [
    Param("config_file", "str", "fastscnn",
          "model preset (fastscnn, deeplabv3plus, tiny) or the path of an mmseg config file"),
    Param("img_size", "str", "", "training image size 'W,H' or one number (empty: the preset's)"),
    Param("learning_rate", "float", 0.0, "initial learning rate (0: the preset's)", min=0.0),
    Param("max_iters", "int", 20000, "training iterations", min=1),
    Param("interval", "int", 2000, "evaluation and checkpoint interval in iterations", min=1),
    Param("max_keep_ckpts", "int", -1, "checkpoints to keep (-1: all)", min=-1),
    Param("save_least_file", "bool", True,
          "keep only the files the result stages need; false adds the kept checkpoints to the 'last' stage"),
    *run_knobs("mIoU"),
    Param("ignore_blank_area", "bool", False,
          "ignore unlabelled pixels (255) instead of learning them as a background class"),
    Param("class_weight", "str", "auto",
          "cross-entropy weight per class: auto (median-frequency balancing over the training pixels, "
          "clipped to 0.5 ... 10, so a rare class is learnt), none, or one number per model class "
          "(background first when there is one)"),
    *override_knobs(),
])

INFER = Schema("seg", "infer", common_params("infer") + [
    Param("img_size", "str", "", "inference image size 'W,H' (empty: the training size)"),
    Param("save_color_mask", "bool", False, "also write colour PNG masks to /out/masks"),
    Param("fp16", "bool", False, "half-precision forward pass (GPU only)"),
])

# diverse and balanced by default: plain RSAL never picked the rare class in the benchmark loop
MINING = Schema("seg", "mining", common_params("mining", diversity=1.0, balance_classes=True) + [
    Param("mining_algorithm", "str", "RSAL", "mining algorithm", choices=("RSAL", "RIPU")),
    Param("superpixel_algorithm", "str", "slico",
          "superpixel algorithm (RSAL): the older image's four (OpenCV), or fast_slic: about 10x faster, as good",
          choices=SUPERPIXEL_METHODS),
    Param("uncertainty_method", "str", "BvSB",
          "pixel uncertainty (RSAL): BvSB = 2nd/1st probability, margin = 1 - (1st - 2nd), entropy",
          choices=("BvSB", "margin", "entropy")),
    Param("max_superpixel_per_image", "int", 1024,
          "maximum number of superpixels in one image (RSAL; every method returns at most this many)", min=1),
    Param("max_kept_mining_image", "int", 5000,
          "images whose regions to label are written as PNG masks to /out/masks (also sets RSAL's "
          "percentile threshold)", min=0),
    Param("topk_superpixel_score", "int", 3,
          "regions always scored per image: RSAL superpixels (more above the pool threshold), RIPU windows",
          min=1),
    Param("class_balance", "bool", True, "RSAL: weight region scores by exp(-share of their predicted class)"),
    Param("fp16", "bool", True, "half-precision forward pass on GPU (scores stay fp32; ignored on CPU)"),
    Param("ripu_region_radius", "int", 1, "RIPU window radius r: windows of (2r+1)x(2r+1) pixels", min=1),
])

SCHEMAS = {"training": TRAINING, "infer": INFER, "mining": MINING}
