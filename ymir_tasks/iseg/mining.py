"""Instance-segmentation mining: random, entropy, aldd and cald over the boxes as for detection
(:mod:`..common.box_mining`), plus ``mask_entropy``: per instance the mean binary entropy of its
mask probabilities inside its box, the image's score the mean over its instances above
``mining_conf_threshold`` (an image without one ranks last, as with entropy).

mmdet binarises the masks before they leave the model, so the probabilities are read where the
head computes them: RTMDet-Ins's mask logits at stride 8 of the input (cropped to each box),
Mask R-CNN's 28×28 RoI mask of the predicted class (the RoI is the box)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from executor.errors import config_error

from ..common import runtime
from ..common.box_mining import NO_DETECTION, dominant_class, mine_candidates
from ..common.mmdet_infer import input_side, predict
from .config import CONFIG


class MaskProbabilities:
    """While active, records per image the mask probabilities of the model's final detections,
    in their order: [N, h, w] (None for an image without any). ``stride`` is the grid's stride
    in input pixels for a one-stage head, None when each map is its instance's RoI."""

    def __init__(self, model, file: str = "config.yaml") -> None:
        self.images: List[Optional[np.ndarray]] = []
        head = getattr(model, "bbox_head", None)
        mask_head = getattr(getattr(model, "roi_head", None), "mask_head", None)
        if head is not None and hasattr(head, "_mask_predict_by_feat_single"):
            self.head, self.names = head, ("_mask_predict_by_feat_single", "_bbox_mask_post_process")
            self.stride: Optional[int] = int(head.prior_generator.strides[0][0])
        elif mask_head is not None and hasattr(mask_head, "predict_by_feat"):
            self.head, self.names, self.stride = mask_head, ("predict_by_feat",), None
        else:
            raise config_error(f"mask_entropy reads the mask probabilities of an RTMDet-Ins or Mask R-CNN head; "
                               f"{type(model).__name__} has neither (use entropy, cald or random)", file=file,
                               field="mining_algorithm")

    def __enter__(self):
        head, slot = self.head, [None]
        if self.stride is not None:  # RTMDet-Ins: one post-process per image, the logits inside it
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
        else:  # Mask R-CNN: the RoI masks of every image, before they are pasted and binarised
            predict_fn = head.predict_by_feat

            def predict_by_feat(mask_preds, results_list, *a, **k):
                for m, r in zip(mask_preds, results_list):
                    if len(r.labels) == 0:
                        self.images.append(None)
                        continue
                    p = m.detach().float()[np.arange(len(r.labels)), r.labels.cpu()]
                    self.images.append(p.sigmoid().cpu().numpy())
                return predict_fn(mask_preds, results_list, *a, **k)
            head.predict_by_feat = predict_by_feat
        return self

    def __exit__(self, *exc) -> None:
        for name in self.names:
            delattr(self.head, name)  # the class's methods again

    def take(self, n: int) -> List[Optional[np.ndarray]]:
        """The probabilities of the last ``n`` images (Mask R-CNN skips its mask head when a whole
        batch has no detection)."""
        out, self.images = self.images, []
        return out if len(out) == n else [None] * n


def binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def instance_entropies(probs: np.ndarray, boxes: np.ndarray, scale: float, stride: Optional[int]) -> np.ndarray:
    """Mean binary entropy of each instance's mask probabilities [N, h, w] inside its box (xyxy in
    original pixels; ``scale``: original → network input; ``stride`` None: each map is its box)."""
    if stride is None:
        return binary_entropy(probs).reshape(len(probs), -1).mean(1)
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
        with MaskProbabilities(model, ctx.cfg.source_file) as tap:
            preds = predict(model, images)  # every final detection, in the head's order
        vals, peaks = [], []
        for img, d, probs in zip(images, preds, tap.take(len(images))):
            keep = d["scores"] >= ctx.cfg["mining_conf_threshold"]
            peaks.append(dominant_class(d["scores"][keep], d["labels"][keep]))
            if probs is None or len(probs) != len(keep) or not keep.any():
                vals.append(NO_DETECTION)
                continue
            scale = side / max(img.shape[:2])
            vals.append(float(instance_entropies(probs[keep], d["boxes"][keep], scale, tap.stride).mean()))
        return vals, peaks

    mine_candidates(ctx, launcher, CONFIG, extra={"mask_entropy": mask_entropy})
