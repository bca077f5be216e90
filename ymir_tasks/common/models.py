"""The model an infer or mining task runs: finding its stage, checking what the stage says about
itself, loading its config as data and its weights as a plain state dict.

The stage is ``model_params_path``'s ``ymir-model.yaml`` first; when that lists only top-level
files (as the public verifier does), ``/in/models/result.yaml`` or ``ymir-info.yaml`` (best
stage), then a scan of ``/in/models``. Every mismatch between the stage and the task (no or a
broken ``ymir-model.yaml``, a model of another kind, weights for another class count) ends with
300004 (300005 for another object type) naming the file and what does not fit.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from executor.errors import ErrorCode, YmirError, model_error

from .safe_config import TRUST_KEY, load_config
from .stages import MODEL_META, WEIGHTS

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """A model stage on disk and what its ``ymir-model.yaml`` says."""

    dir: str
    meta_file: str
    meta: Dict[str, Any]
    config: str
    weights: str

    @property
    def class_names(self) -> List[str]:
        return list(self.meta["class_names"])


def _stage_dir_from_results(models_dir: str) -> Optional[str]:
    for name in ("result.yaml", "ymir-info.yaml"):
        path = os.path.join(models_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
            best = doc.get("best_stage_name")
        except (OSError, yaml.YAMLError, AttributeError, UnicodeDecodeError):
            continue
        if best and os.path.isfile(os.path.join(models_dir, str(best), MODEL_META)):
            return os.path.join(models_dir, str(best))
    return None


def _stage_dir(ctx) -> str:
    listed = [ctx.env.map(p) for p in ctx.cfg.model_params_path]
    metas = [p for p in listed if os.path.basename(p) == MODEL_META and os.path.isfile(p)]
    if metas:
        return os.path.dirname(metas[0])
    models_dir = ctx.env.input.models_dir
    for d in sorted({os.path.dirname(p) for p in listed} | {models_dir}):
        found = _stage_dir_from_results(d)
        if found:
            return found
    if os.path.isdir(models_dir):
        metas_found = sorted(Path(models_dir).rglob(MODEL_META))
        if metas_found:
            return str(metas_found[0].parent)
    weights = [p for p in listed if p.endswith((".pth", ".pt")) and os.path.isfile(p)]
    where = f"the stage folder {os.path.dirname(weights[0])} has no {MODEL_META}" if weights else \
        f"neither the {len(listed)} listed file(s) nor {models_dir} hold a {MODEL_META}"
    raise model_error(f"no {ctx.kind.description} model this image wrote: {where} (the file that names a stage's "
                      "classes, config and weights)", field="model_params_path")


def _read_meta(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise model_error(f"malformed yaml: {getattr(e, 'problem', e)}", file=path,
                          line=(mark.line + 1) if mark else None) from None
    except (OSError, UnicodeDecodeError) as e:
        raise model_error(f"cannot read: {e}", file=path) from None
    if not isinstance(meta, dict):
        raise model_error(f"expected a mapping, got {type(meta).__name__}", file=path)
    return meta


def _check_kind(ctx, meta: Dict[str, Any], path: str) -> None:
    from executor.registry import all_kinds

    kind = meta.get("kind")
    if not isinstance(kind, str) or not kind:
        raise model_error("missing the model's kind (det, seg, det3d, ...)", file=path, field="kind")
    if kind == ctx.kind.name:
        return
    other = {k.name: k for k in all_kinds()}.get(kind)
    if other is not None and other.object_type != ctx.kind.object_type:
        raise YmirError(ErrorCode.OBJECT_TYPE, f"the model is a {other.description} model (object type "
                        f"{other.object_type}); this task is {ctx.kind.description} (object type "
                        f"{ctx.kind.object_type})", file=path, field="kind")
    raise model_error(f"the model is of kind {kind!r}, this task runs {ctx.kind.name!r}", file=path, field="kind")


def _check_fields(meta: Dict[str, Any], required: Sequence[str], path: str) -> None:
    for key in required:
        if key not in meta:
            raise model_error("missing", file=path, field=key)
    names = meta.get("class_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise model_error(f"expected a non-empty list of class names, got {names!r}", file=path, field="class_names")


def _member(stage_dir: str, meta: Dict[str, Any], key: str, default: str, meta_path: str) -> str:
    """A file the stage names: a plain file name in the stage's own folder, nothing outside it."""
    name = meta.get(key, default)
    if not isinstance(name, str) or not name or os.path.basename(name) != name or name in (".", ".."):
        raise model_error(f"expected a file name in the stage folder, got {name!r}", file=meta_path, field=key)
    path = os.path.join(stage_dir, name)
    if not os.path.isfile(path):
        raise model_error(f"the stage has no {key} file {name!r}", file=path, field=key)
    return path


def find_stage(ctx, default_config: str, required: Sequence[str] = ("class_names",)) -> Stage:
    """The stage to infer or mine with, its ``ymir-model.yaml`` checked against this task."""
    stage_dir = _stage_dir(ctx)
    meta_path = os.path.join(stage_dir, MODEL_META)
    meta = _read_meta(meta_path)
    _check_kind(ctx, meta, meta_path)
    _check_fields(meta, ("class_names",) + tuple(required), meta_path)
    return Stage(dir=stage_dir, meta_file=meta_path, meta=meta,
                 config=_member(stage_dir, meta, "config", default_config, meta_path),
                 weights=_member(stage_dir, meta, "weights", WEIGHTS, meta_path))


def stage_config(ctx, stage: Stage, scope: str):
    """The stage's mmengine config, read as data (a Python config only with ``trust_model_code``),
    with every ``num_classes`` of the model checked against the stage's classes."""
    from . import hooks, loading  # noqa: F401  (what our own stage configs name besides the kind's classes)

    cfg = load_config(stage.config, trust_code=bool(ctx.cfg.get(TRUST_KEY, False)), scope=scope)
    if "model" not in cfg or not isinstance(cfg.model, dict):
        raise model_error("has no 'model' section", file=stage.config, field="model")
    classes = stage.meta.get("model_classes") or stage.meta["class_names"]
    for path, n in _num_classes(cfg.model.to_dict(), "model"):
        if n != len(classes):
            raise model_error(f"{path} is {n} but {os.path.basename(stage.meta_file)} lists {len(classes)} classes "
                              f"{list(classes)}", file=stage.config, field=path)
    return cfg


def _num_classes(node: Any, where: str):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "num_classes" and isinstance(v, int) and not isinstance(v, bool):
                yield f"{where}.{k}", v
            else:
                yield from _num_classes(v, f"{where}.{k}")
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _num_classes(v, f"{where}[{i}]")


def load_weights(model, path: str) -> None:
    """Load a stage's state dict into ``model``, or 300004 saying which tensors do not fit."""
    from .runtime import load_state_dict_file

    state = load_state_dict_file(path)
    own = model.state_dict()
    shared = [k for k in own if k in state]
    if not shared:
        raise model_error(f"none of its {len(state)} tensors belongs to the model of the stage's config "
                          f"(another architecture?), e.g. {next(iter(state))}", file=path)
    wrong = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in shared
             if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k, got, want = wrong[0]
        hint = " (weights for another number of classes?)" if any(len(g) and len(w) and g[0] != w[0] and
                                                                   g[1:] == w[1:] for _, g, w in wrong) else ""
        raise model_error(f"{len(wrong)} tensor(s) have other shapes than the stage's config builds{hint}, e.g. "
                          f"{k}: {list(got)} in the file, {list(want)} in the model", file=path)
    missing = [k for k in own if k not in state]
    if missing:
        raise model_error(f"weights do not fit the stage's config ({len(missing)} tensors missing, e.g. "
                          f"{missing[0]})", file=path)
    unexpected = [k for k in state if k not in own]
    if unexpected:
        log.warning("%s: %d tensor(s) the model does not use were ignored (e.g. %s)", path, len(unexpected),
                    unexpected[0])
    model.load_state_dict(state, strict=True if not unexpected else False)
