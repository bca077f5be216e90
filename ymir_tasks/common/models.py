"""Finding the stage to infer or mine with: ``model_params_path`` first; when that lists only
top-level files (as the public verifier does), ``/in/models/result.yaml`` or ``ymir-info.yaml``
(best stage), then a scan of ``/in/models``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import yaml

from executor.errors import model_error

from .stages import MODEL_META, WEIGHTS


def _stage_dir_from_results(models_dir: str) -> Optional[str]:
    for name in ("result.yaml", "ymir-info.yaml"):
        path = os.path.join(models_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
            best = doc.get("best_stage_name")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if best and os.path.isfile(os.path.join(models_dir, str(best), MODEL_META)):
            return os.path.join(models_dir, str(best))
    return None


def find_stage(ctx, kind_label: str, default_config: str) -> Dict[str, str]:
    """Paths of ymir-model.yaml, the config and the weights of the stage to use."""
    listed = [ctx.env.map(p) for p in ctx.cfg.model_params_path]
    metas = [p for p in listed if os.path.basename(p) == MODEL_META and os.path.isfile(p)]
    stage_dir = os.path.dirname(metas[0]) if metas else None
    models_dir = ctx.env.input.models_dir
    if stage_dir is None:
        for d in sorted({os.path.dirname(p) for p in listed} | {models_dir}):
            stage_dir = _stage_dir_from_results(d)
            if stage_dir:
                break
    if stage_dir is None and os.path.isdir(models_dir):
        found = sorted(Path(models_dir).rglob(MODEL_META))
        stage_dir = str(found[0].parent) if found else None
    if stage_dir is None:
        raise model_error(f"no {kind_label} model: none of {len(listed)} listed file(s) nor {models_dir} holds "
                          f"{MODEL_META}", field="model_params_path")
    with open(os.path.join(stage_dir, MODEL_META), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    paths = {"dir": stage_dir, "meta": os.path.join(stage_dir, MODEL_META),
             "config": os.path.join(stage_dir, meta.get("config", default_config)),
             "weights": os.path.join(stage_dir, meta.get("weights", WEIGHTS))}
    for key in ("config", "weights"):
        if not os.path.isfile(paths[key]):
            raise model_error(f"the stage has no {key} file", file=paths[key])
    return paths
