"""YMIR instance-segmentation data (``seg-coco:raw``: one ``coco-annotations.json`` with polygons
or RLE, ``iscrowd``) → the COCO json lists mmdet's CocoDataset reads (cache under /out).

Every mask is decoded at the decoded image's size and written back as one compressed RLE with
a string ``counts``, its box taken from the mask. ``iscrowd`` regions stay in as ignored regions
(mmdet neither rewards nor punishes detections there). A box-only annotation has no mask to
learn: it becomes an ignored (crowd) rectangle, with a warning. Images without objects stay in
as negatives.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Sequence

import numpy as np

from executor.annotations import CocoSegReader, detect_annotation_format
from executor.errors import dataset_error
from executor.images import check_images
from executor.records import IndexEntry

from ..common.coco_splits import negatives, prepare_splits

log = logging.getLogger(__name__)


class InstanceSource:
    """Instances of an index entry from its coco json (each json loaded and checked once)."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self._readers: Dict[str, CocoSegReader] = {}

    def reader(self, ann: str) -> CocoSegReader:
        if ann not in self._readers:
            fmt = detect_annotation_format(ann)
            if fmt != "coco":
                raise dataset_error(f"annotation format '{fmt}' is not instance segmentation's (a coco json, "
                                    f"export_format seg-coco:raw)", file=ann)
            self._readers[ann] = CocoSegReader(ann, self.class_names)
        return self._readers[ann]

    def instances(self, entry: IndexEntry, width: int, height: int) -> List[Dict]:
        """COCO annotations (without ids) of the entry at its decoded size."""
        if entry.annotation is None:
            return []
        from pycocotools import mask as mask_utils

        out = []
        for cls, mask, crowd, box in self.reader(entry.annotation).instances(entry.image, height, width):
            if mask is None:
                if box is None:
                    continue
                log.warning("%s: a box-only %s annotation on %s is ignored in training (no mask)",
                            entry.annotation, self.class_names[cls], os.path.basename(entry.image))
                x, y, w, h = box
                mask = np.zeros((height, width), bool)
                mask[int(max(0, y)):int(min(height, y + h)), int(max(0, x)):int(min(width, x + w))] = True
                crowd = True
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            area = int(mask_utils.area(rle))
            bbox = [float(v) for v in mask_utils.toBbox(rle)]
            if area < 1 or bbox[2] < 1 or bbox[3] < 1:
                log.warning("%s: an empty %s mask on %s is dropped", entry.annotation, self.class_names[cls],
                            os.path.basename(entry.image))
                continue
            out.append({"category_id": cls, "iscrowd": int(crowd), "bbox": bbox, "area": area,
                        "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")}})
        return out


def coco_document(entries: Sequence[IndexEntry], source: InstanceSource, class_names: Sequence[str],
                  workers: int = 0) -> Dict:
    images, annotations = [], []
    sizes = check_images([e.image for e in entries], workers)  # every image decoded once (300003 naming it)
    for image_id, (e, (w, h)) in enumerate(zip(entries, sizes), start=1):
        images.append({"id": image_id, "file_name": e.image, "width": w, "height": h})
        for a in source.instances(e, w, h):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **a})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in enumerate(class_names)]}


def prepare(env, class_names: Sequence[str], cache_root: str, workers: int = 0) -> Dict[str, object]:
    source = InstanceSource(class_names)

    def describe(name, entries, doc):
        crowd = sum(a["iscrowd"] for a in doc["annotations"])
        log.info("instance data, %s: %d images, %d instances (%d crowd / ignored), %d negatives", name, len(entries),
                 len(doc["annotations"]) - crowd, crowd, negatives(entries, doc))
    return prepare_splits(env, cache_root, lambda entries: coco_document(entries, source, class_names, workers),
                          describe)
