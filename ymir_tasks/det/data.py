"""YMIR detection data → COCO json lists mmdet's CocoDataset reads (cache under /out).

Annotations may be ark (5 or 7 fields), voc xml or coco json; the format is detected per
file from its content, never from ``export_format``. Classes map by index (ark) or by name
(voc, coco). Images without objects stay in as negatives.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence

from executor.annotations import CocoDetReader, detect_annotation_format, read_ark, read_voc
from executor.errors import dataset_error
from executor.images import check_images
from executor.records import DetObject, IndexEntry

from ..common.coco_splits import negatives, prepare_splits

log = logging.getLogger(__name__)


class DetAnnotationSource:
    """Objects of an index entry, whatever its annotation format."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self._coco: Dict[str, CocoDetReader] = {}

    def objects(self, entry: IndexEntry) -> List[DetObject]:
        ann = entry.annotation
        if ann is None:
            return []
        fmt = detect_annotation_format(ann)
        if fmt == "ark":
            return read_ark(ann, self.class_names)
        if fmt == "voc":
            return read_voc(ann, self.class_names)[0]
        if fmt == "coco":
            if ann not in self._coco:
                self._coco[ann] = CocoDetReader(ann, self.class_names)
            return self._coco[ann].objects(entry.image)
        raise dataset_error(f"annotation format '{fmt}' is not a detection format (ark, voc, coco)", file=ann)


def coco_document(entries: Sequence[IndexEntry], source: DetAnnotationSource,
                  class_names: Sequence[str], workers: int = 0) -> Dict:
    images, annotations = [], []
    # every image decoded once before training, with the readers inference uses (300003 naming it)
    sizes = check_images([e.image for e in entries], workers)
    for image_id, (e, (w, h)) in enumerate(zip(entries, sizes), start=1):
        images.append({"id": image_id, "file_name": e.image, "width": w, "height": h})
        for o in source.objects(e):
            x1, y1 = max(0.0, o.x1), max(0.0, o.y1)
            x2, y2 = min(float(w), o.x2), min(float(h), o.y2)
            if x2 - x1 < 1 or y2 - y1 < 1:
                log.warning("%s: a %s box of %.1fx%.1f px after clipping to the image is dropped",
                            e.annotation, class_names[o.class_id], x2 - x1, y2 - y1)
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": o.class_id,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in enumerate(class_names)]}


def prepare(env, class_names: Sequence[str], cache_root: str, workers: int = 0) -> Dict[str, object]:
    source = DetAnnotationSource(class_names)

    def describe(name, entries, doc):
        log.info("detection data, %s: %d images, %d boxes, %d negatives", name, len(entries),
                 len(doc["annotations"]), negatives(entries, doc))
    return prepare_splits(env, cache_root, lambda entries: coco_document(entries, source, class_names, workers),
                          describe)
