"""What every kind's simulation module shares: equal training compute per round, the classes of
images annotated in a seg-coco json.

``ymir-executor simulate`` compares strategies at equal training compute: a fixed number of
iterations per round however big the labelled set grows (seed 001's "virtual epochs"), so that
no strategy wins by training longer. Epoch-based kinds turn the iterations into epochs of the
labelled set. Three evaluations per round (a third, two thirds, the end), the best kept as the
platform keeps the best stage: one unlucky moment of a short run does not decide a round.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

EVALUATIONS = 3


def epochs_for(iters: int, n_labelled: int, batch: int) -> Dict[str, Any]:
    per_epoch = max(1, math.ceil(n_labelled / max(batch, 1)))
    epochs = max(EVALUATIONS, round(iters / per_epoch))
    return {"max_epochs": epochs, "val_interval": max(1, epochs // EVALUATIONS)}


def iterations_for(iters: int) -> Dict[str, Any]:
    return {"max_iters": iters, "interval": max(1, iters // EVALUATIONS)}


def coco_image_classes(entries: Sequence, class_names: Sequence[str]) -> List[List[int]]:
    """The classes annotated on each entry, from its coco json (each json read once)."""
    from executor.annotations import CocoSegReader

    readers: Dict[str, CocoSegReader] = {}
    out = []
    for e in entries:
        reader = readers.get(e.annotation) or readers.setdefault(e.annotation, CocoSegReader(e.annotation, class_names))
        out.append(reader.classes_of(e.image))
    return out
