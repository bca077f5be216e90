"""Training steps every kind shares: where the weights start from (this run's last checkpoint,
pretrained weights that fit, or nothing), a barrier while rank 0 prepares the data, and the
clean-up of mmengine checkpoints once the stages hold everything."""
from __future__ import annotations

import glob
import importlib
import logging
import os
from typing import Optional, Tuple

from executor.errors import model_error

from . import runtime

log = logging.getLogger(__name__)


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


def pretrained_weights(ctx, model_cfg, work_dir: str, explicit: Optional[str], scope: str) -> Optional[str]:
    """A filtered state dict of the pretrained weights that fit the model, or None.

    Weights come from ``--load-from`` or the platform's ``pretrained_model_params``;
    tensors whose shape differs (e.g. a head for other classes) are left out.
    """
    candidates = [explicit] if explicit else [ctx.env.map(p) for p in ctx.cfg.pretrained_model_params]
    weights = [p for p in candidates if p and p.endswith((".pth", ".pt")) and os.path.isfile(p)]
    if not weights:
        if ctx.cfg.pretrained_model_params:
            log.warning("pretrained_model_params lists no .pth/.pt file that exists: training from scratch")
        return None
    import torch
    from mmengine.registry import MODELS, init_default_scope

    importlib.import_module(scope + ".utils").register_all_modules(init_default_scope=False)
    init_default_scope(scope)
    src = weights[0]
    state = runtime.load_state_dict_file(src)
    model = MODELS.build(model_cfg)
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not fit:
        raise model_error(f"none of its {len(state)} tensors fits the model '{ctx.cfg['config_file']}' "
                          "(another architecture?); choose a matching pretrained model or none",
                          file=src, field="pretrained_model_params")
    log.info("pretrained weights %s: %d of %d model tensors loaded (%d skipped: other shapes or names)",
             src, len(fit), len(own), len(state) - len(fit))
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
        cfg.load_from = pretrained_weights(ctx, cfg.model, work_dir, args.load_from, scope)
    else:
        cfg.load_from = None


def remove_checkpoints(work_dir: str) -> None:
    """mmengine's checkpoints and its pointer, once the stages hold what inference needs."""
    for ckpt in glob.glob(os.path.join(work_dir, "*.pth")):
        os.remove(ckpt)
    if os.path.exists(os.path.join(work_dir, "last_checkpoint")):
        os.remove(os.path.join(work_dir, "last_checkpoint"))
