"""Instance-segmentation mining: random, entropy, aldd and cald over the boxes as for detection
(:mod:`..common.box_mining`), plus ``mask_entropy``: per instance the mean binary entropy of its
mask probabilities inside its box, the image's score the mean over its instances above
``mining_conf_threshold`` (an image without one ranks last, as with entropy).

The probabilities are RTMDet-Ins's mask logits at stride 8, read where the head computes them
(mmdet binarises them before they leave the model)."""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from executor.errors import config_error

from ..common import runtime
from ..common.box_mining import NO_DETECTION, dominant_class, mine_candidates
from ..common.mmdet_infer import input_side, predict
from .config import CONFIG


class MaskProbabilities:
    """While active, records per image the sigmoid of the mask logits RTMDet-Ins's head computes
    for its final detections ([N, h, w] at its mask stride; None for an image without any)."""

    def __init__(self, head, file: str = "config.yaml") -> None:
        if not hasattr(head, "_mask_predict_by_feat_single") or not hasattr(head, "_bbox_mask_post_process"):
            raise config_error(f"mask_entropy reads the mask logits of an RTMDet-Ins head; this model's head is "
                               f"{type(head).__name__} (use entropy, cald or random)", file=file,
                               field="mining_algorithm")
        self.head = head
        self.images: List = []
        self.stride = int(head.prior_generator.strides[0][0])

    def __enter__(self):
        head, slot = self.head, [None]
        mask_fn, post_fn = head._mask_predict_by_feat_single, head._bbox_mask_post_process

        def mask_predict(*a, **k):
            logits = mask_fn(*a, **k)
            slot[0] = logits.detach().float().sigmoid().cpu().numpy()
            return logits

        def post_process(*a, **k):
            slot[0] = None
            out = post_fn(*a, **k)
            self.images.append(slot[0])
            return out
        head._mask_predict_by_feat_single, head._bbox_mask_post_process = mask_predict, post_process
        return self

    def __exit__(self, *exc) -> None:
        del self.head._mask_predict_by_feat_single, self.head._bbox_mask_post_process  # the class's again

    def take(self) -> List:
        out, self.images = self.images, []
        return out


def binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def instance_entropies(probs: np.ndarray, boxes: np.ndarray, scale: float, stride: int) -> np.ndarray:
    """Mean binary entropy of each instance's mask probabilities [N, h, w] inside its box (xyxy in
    original pixels; ``scale``: original → network input)."""
    out = np.zeros(len(boxes))
    h, w = probs.shape[1:]
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = (np.asarray(b) * scale / stride)
        r = probs[i, int(max(0, np.floor(y1))):int(min(h, np.ceil(y2))), int(max(0, np.floor(x1))):int(min(w, np.ceil(x2)))]
        out[i] = float(binary_entropy(r).mean()) if r.size else 0.0
    return out


@runtime.distributed_entry
def mine(ctx, launcher) -> None:
    def mask_entropy(model, images: List[np.ndarray]) -> Tuple[List[float], List[int]]:
        side = input_side(model)
        with MaskProbabilities(getattr(model, "bbox_head", model), ctx.cfg.source_file) as tap:
            preds = predict(model, images)  # every final detection, in the head's order
        vals, peaks = [], []
        for img, d, probs in zip(images, preds, tap.take()):
            keep = d["scores"] >= ctx.cfg["mining_conf_threshold"]
            peaks.append(dominant_class(d["scores"][keep], d["labels"][keep]))
            if probs is None or not keep.any():
                vals.append(NO_DETECTION)
                continue
            scale = side / max(img.shape[:2])
            vals.append(float(instance_entropies(probs[keep], d["boxes"][keep], scale, tap.stride).mean()))
        return vals, peaks

    mine_candidates(ctx, launcher, CONFIG, extra={"mask_entropy": mask_entropy})
