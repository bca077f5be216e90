"""Training steps every kind shares: the train and val index entries, where the weights start from (this run's last checkpoint,
pretrained weights that fit, or nothing), a barrier while rank 0 prepares the data, and the
clean-up of mmengine checkpoints once the stages hold everything."""
from __future__ import annotations

import glob
import importlib
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

from executor.errors import config_error, dataset_error, model_error
from executor.index import read_index

from . import preset_weights, runtime

log = logging.getLogger(__name__)


def read_splits(env) -> Tuple[List, List]:
    """(train, val) entries of the run's index files; an empty split is a dataset error."""
    pm = env.path_map
    train = read_index(env.input.training_index_file, path_map=pm)
    val = read_index(env.input.val_index_file, path_map=pm) if env.input.val_index_file else []
    if not train:
        raise dataset_error("the training index lists no image", file=env.input.training_index_file)
    if not val:
        raise dataset_error("the validation index lists no image", file=env.input.val_index_file or "env.yaml")
    return train, val


def run_dirs(ctx, kind: str) -> Tuple[str, str]:
    """``/out/work_dirs/<kind>`` (checkpoints) and ``/out/<kind>-cache`` (converted labels), created
    with TensorBoard's and the models' folders."""
    out = ctx.env.output
    work_dir = os.path.join(out.root_dir, "work_dirs", kind)
    for d in (work_dir, out.tensorboard_dir, out.models_dir):
        os.makedirs(d, exist_ok=True)
    return work_dir, os.path.join(out.root_dir, f"{kind}-cache")


def barrier(launcher: Optional[str]) -> None:
    if launcher:
        import torch.distributed as dist
        dist.barrier()


def start_weights(ctx, preset: Dict[str, Any], explicit: Optional[str]) -> Tuple[Optional[str], str]:
    """(weights file, where it comes from) training starts from: ``--load-from``, the platform's
    ``pretrained_model_params``, then ``pretrained_weights`` (``auto``: the preset's checkpoint
    baked into the image; ``none``; or a path); (None, reason) means random weights."""
    if explicit:
        return explicit, "--load-from"
    listed = [ctx.env.map(p) for p in ctx.cfg.pretrained_model_params]
    weights = [p for p in listed if p.endswith((".pth", ".pt")) and os.path.isfile(p)]
    if weights:
        return weights[0], "pretrained_model_params"
    if listed:
        log.warning("pretrained_model_params lists no .pth/.pt file that exists")
    choice = str(ctx.cfg.get("pretrained_weights", "none") or "none")
    if choice == "none":
        return None, "pretrained_weights is none"
    if choice != "auto":
        path = ctx.env.map(choice)
        if not os.path.isfile(path):
            raise config_error(f"no such weights file {choice!r} (auto, none or the path of a .pth)",
                               file=ctx.cfg.source_file, field="pretrained_weights")
        return path, "pretrained_weights"
    url = preset.get("checkpoint")
    if not url:
        return None, f"the preset '{ctx.cfg['config_file']}' names no pretrained checkpoint"
    path = preset_weights.installed(url)
    if path is None:
        log.warning("the preset's checkpoint %s is not in %s (an image built without its weights?): training "
                    "from random weights, which needs far more data; give pretrained_model_params or build the "
                    "image with its weights", preset_weights.checkpoint_name(url), preset_weights.WEIGHTS_DIR)
        return None, "the preset's checkpoint is not installed"
    return path, "the preset's checkpoint"


def pretrained_weights(ctx, cfg, work_dir: str, explicit: Optional[str], scope: str) -> Optional[str]:
    """A filtered state dict of the start weights that fit the model (see :func:`start_weights`),
    or None; tensors whose shape differs (e.g. a head for other classes) are left out and counted."""
    src, origin = start_weights(ctx, dict(cfg.get("ymir_preset", {})), explicit)
    if src is None:
        log.info("training from random weights: %s", origin)
        return None
    import torch
    from mmengine.registry import MODELS, init_default_scope

    importlib.import_module(scope + ".utils").register_all_modules(init_default_scope=False)
    init_default_scope(scope)
    state = runtime.load_state_dict_file(src)
    model = MODELS.build(cfg.model)
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not fit:
        raise model_error(f"none of its {len(state)} tensors fits the model '{ctx.cfg['config_file']}' "
                          "(another architecture?); choose a matching pretrained model or none",
                          file=src, field="pretrained_model_params" if origin == "pretrained_model_params"
                          else "pretrained_weights")
    log.info("pretrained weights %s (%s): %d of %d model tensors loaded (%d of the file's %d skipped: other shapes "
             "or names)", src, origin, len(fit), len(own), len(state) - len(fit), len(state))
    out = os.path.join(work_dir, "pretrained-fit.pth")
    torch.save(fit, out)
    return out


def set_start_weights(ctx, cfg, args, work_dir: str, launcher: Optional[str], scope: str) -> None:
    """Resume from this run's last checkpoint when asked and one exists, else load the pretrained
    weights that fit (rank 0 only: DDP copies rank 0's weights to the other processes)."""
    resume_wanted = ctx.cfg["resume"] if args.resume is None else args.resume
    ckpt = runtime.resume_checkpoint(work_dir) if resume_wanted else None
    cfg.resume = ckpt is not None
    if cfg.resume:
        cfg.load_from = ckpt
        log.info("resuming from %s", ckpt)
    elif runtime.is_main_process() or not launcher:
        cfg.load_from = pretrained_weights(ctx, cfg, work_dir, args.load_from, scope)
    else:
        cfg.load_from = None


def remove_checkpoints(work_dir: str) -> None:
    """mmengine's checkpoints and its pointer, once the stages hold what inference needs."""
    for ckpt in glob.glob(os.path.join(work_dir, "*.pth")):
        os.remove(ckpt)
    if os.path.exists(os.path.join(work_dir, "last_checkpoint")):
        os.remove(os.path.join(work_dir, "last_checkpoint"))
