"""The train and val splits of a run as COCO json files mmdet's CocoDataset reads (cache under
/out), for the kinds over mmdet: each kind says how one split becomes a COCO document."""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, Sequence

from executor.records import IndexEntry

from .training import read_splits


def prepare_splits(env, cache_root: str, document: Callable[[Sequence[IndexEntry]], Dict],
                   describe: Callable[[str, Sequence[IndexEntry], Dict], None]) -> Dict[str, object]:
    """{'train_json', 'val_json', 'num_train', 'num_val'}; ``describe(split, entries, doc)`` logs it."""
    train, val = read_splits(env)
    os.makedirs(cache_root, exist_ok=True)
    out: Dict[str, object] = {}
    for name, entries in (("train", train), ("val", val)):
        doc = document(entries)
        path = os.path.join(cache_root, f"{name}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(path + ".tmp", path)
        out[f"{name}_json"] = path
        out[f"num_{name}"] = len(entries)
        describe(name, entries, doc)
    return out


def negatives(entries: Sequence[IndexEntry], doc: Dict) -> int:
    """Images of the split without any annotation."""
    return len(entries) - len({a["image_id"] for a in doc["annotations"]})
