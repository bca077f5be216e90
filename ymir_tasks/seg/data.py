"""YMIR semantic-segmentation data: index files + seg-coco / seg-mask annotations
turned into PNG label maps in a cache under ``/out`` (``/in`` is read-only).

Blank-area handling as users of the older image know it: with
``ignore_blank_area`` unlabelled pixels are ignored (255); otherwise, if the
dataset has unlabelled pixels, they become a background class at index 0 and
the real classes shift to 1..N. The choice travels with the model
(``ymir-model.yaml``) so inference maps predictions back.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

from executor.annotations import CocoSegReader, SegMaskReader, detect_annotation_format
from executor.errors import dataset_error
from executor.images import check_images, image_size
from executor.records import IndexEntry

from ..common.training import read_splits

log = logging.getLogger(__name__)

BACKGROUND = "ymir_background"
IGNORE = 255


@dataclass
class LabelSpace:
    """The model's classes: YMIR's ``class_names``, plus background at 0 when learnt."""

    class_names: List[str]
    with_background: bool

    @property
    def model_classes(self) -> List[str]:
        return ([BACKGROUND] if self.with_background else []) + list(self.class_names)

    def to_model(self, mask: np.ndarray) -> np.ndarray:
        if not self.with_background:
            return mask
        out = mask.astype(np.int16) + 1
        out[mask == IGNORE] = 0
        return out.astype(np.uint8)

    def to_ymir(self, pred: np.ndarray) -> np.ndarray:
        """Model class ids → YMIR class ids, background → 255 (left out of the COCO output)."""
        if not self.with_background:
            return pred.astype(np.uint8)
        out = pred.astype(np.int16) - 1
        out[pred == 0] = IGNORE
        return out.astype(np.uint8)


def mask_source(entries: Sequence[IndexEntry], class_names: Sequence[str],
                annotations_dir: str) -> Callable[[IndexEntry], np.ndarray]:
    """A function giving the YMIR label mask (class ids, 255 unlabelled) of an index entry.

    The format is detected from the first annotation file, not from ``export_format``.
    """
    if not entries:
        raise dataset_error("the index file lists no image")
    fmt = detect_annotation_format(entries[0].annotation)
    if fmt == "coco":
        readers: Dict[str, CocoSegReader] = {}

        def coco(entry: IndexEntry) -> np.ndarray:
            reader = readers.get(entry.annotation)
            if reader is None:
                reader = readers[entry.annotation] = CocoSegReader(entry.annotation, class_names)
            w, h = image_size(entry.image)
            return reader.mask(entry.image, height=h, width=w)
        return coco
    if fmt == "seg-mask":
        labelmap = os.path.join(annotations_dir, "labelmap.txt")
        if not os.path.isfile(labelmap):
            labelmap = os.path.join(os.path.dirname(os.path.dirname(entries[0].annotation)), "labelmap.txt")
        reader = SegMaskReader(labelmap, class_names)

        def png(entry: IndexEntry) -> np.ndarray:
            m = reader.mask(entry.annotation)
            w, h = image_size(entry.image)
            if m.shape != (h, w):
                raise dataset_error(f"mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}",
                                    file=entry.annotation, field="size")
            return m
        return png
    raise dataset_error(f"annotation format '{fmt}' is not a segmentation format (seg-coco or seg-mask)",
                        file=entries[0].annotation)


def has_blank_area(entries: Sequence[IndexEntry], masks: Callable[[IndexEntry], np.ndarray],
                   max_samples: int = 100) -> bool:
    """Whether some of (at most ``max_samples``, evenly spread) images have unlabelled pixels."""
    step = max(1, len(entries) // max_samples)
    return any(bool((masks(e) == IGNORE).any()) for e in list(entries)[::step][:max_samples])


def write_label_cache(entries: Sequence[IndexEntry], masks: Callable[[IndexEntry], np.ndarray],
                      labels: LabelSpace, cache_dir: str, list_file: str, count: bool = True) -> np.ndarray:
    """Write one PNG label map per image and a json data list mmseg's dataset reads; return the
    pixels per model class over these images (ignored pixels not counted)."""
    from PIL import Image

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    items = []
    n = len(labels.model_classes)
    pixels = np.zeros(n, np.int64)
    for e in entries:
        stem = Path(e.image).stem
        label_path = os.path.join(cache_dir, f"{stem}.png")
        label = None
        if os.path.isfile(label_path):
            if count:  # a cached map is read again only to be counted
                label = np.asarray(Image.open(label_path))
        else:
            label = labels.to_model(masks(e))
            tmp = label_path + f".{os.getpid()}.tmp.png"
            Image.fromarray(label).save(tmp)
            os.replace(tmp, label_path)
        if count and label is not None:
            pixels += np.bincount(label[label < n].ravel(), minlength=n)[:n]
        items.append({"img_path": e.image, "seg_map_path": label_path})
    tmp = list_file + f".{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(items, f)
    os.replace(tmp, list_file)
    return pixels


def balanced_class_weight(pixels: Sequence[int], low: float = 0.5, high: float = 10.0) -> List[float]:
    """Median-frequency balancing (Eigen & Fergus): weight = median class frequency / the class's,
    clipped to ``low`` ... ``high``; classes without a pixel get 1 (they are never a target)."""
    px = np.asarray(pixels, float)
    present = px > 0
    if not present.any():
        return [1.0] * len(px)
    freq = px / px.sum()
    w = np.ones(len(px))
    w[present] = np.clip(np.median(freq[present]) / freq[present], low, high)
    return [round(float(x), 4) for x in w]


def prepare(env, class_names: Sequence[str], ignore_blank_area: bool, cache_root: str,
            workers: int = 0, count_pixels: bool = True) -> Dict[str, object]:
    """Read train/val index files, decide the label space, write the label cache."""
    train, val = read_splits(env)
    # every image decoded once before training, with the readers inference uses (300003 naming it)
    check_images([e.image for e in train + val], workers)
    masks = mask_source(train, class_names, env.input.annotations_dir)
    blank = has_blank_area(train, masks)
    labels = LabelSpace(list(class_names), with_background=blank and not ignore_blank_area)
    log.info("segmentation data: %d train, %d val images; unlabelled pixels %s → %s", len(train), len(val),
             "present" if blank else "absent",
             "background class" if labels.with_background else "ignored (255)")
    lists, pixels = {}, {}
    for name, entries in (("train", train), ("val", val)):
        lists[name] = os.path.join(cache_root, f"{name}.json")
        pixels[name] = write_label_cache(entries, masks, labels, os.path.join(
            cache_root, "labels-bg" if labels.with_background else "labels"), lists[name], count_pixels and name == "train")
    return {"labels": labels, "train_list": lists["train"], "val_list": lists["val"],
            "num_train": len(train), "num_val": len(val), "train_pixels": pixels["train"].tolist()}
