"""The image-loading step of every 2D training and evaluation pipeline.

mmcv's ``LoadImageFromFile`` decodes with OpenCV, which applies a JPEG's EXIF orientation, and
trusts the file extension; YMIR's annotations and image sizes are in the stored pixel frame
(see :mod:`executor.images`). This step reads images with the same decoder inference and mining
use, so training, evaluation, inference and mining all see the same pixels, and an unreadable
image is a YMIR error naming the file. Registered in mmengine's root transform registry, which
the mmdet and mmseg registries inherit from.
"""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS

from executor.images import load_image


@TRANSFORMS.register_module()
class YmirLoadImage(BaseTransform):
    """``results['img_path']`` → ``results['img']`` (BGR uint8, as mmcv's loader gives)."""

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(load_image(results["img_path"])[:, :, ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results
