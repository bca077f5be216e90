"""Parsing of the free-text hyper-parameters (``cfg_options``, ``args_options``,
``img_size``) with YMIR error 300001 naming the key when they are malformed.
No torch here."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import yaml

from executor.errors import config_error


def parse_cfg_options(text: str, file: str = "config.yaml") -> Dict[str, Any]:
    """``"optimizer.lr=0.02 model.decode_head.dropout_ratio=0.2 a.b=[1,2]"`` → a flat dict of
    dotted keys (mmengine ``Config.merge_from_dict`` input); values are yaml-typed."""
    out: Dict[str, Any] = {}
    try:
        tokens = shlex.split(text or "")
    except ValueError as e:
        raise config_error(f"cannot split {text!r}: {e}", file=file, field="cfg_options") from None
    for tok in tokens:
        if "=" not in tok or tok.startswith("="):
            raise config_error(f"expected key=value items separated by spaces, got {tok!r}", file=file,
                               field="cfg_options")
        key, value = tok.split("=", 1)
        try:
            out[key] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            out[key] = value
    return out


@dataclass
class ArgsOptions:
    """The documented subset of the older images' command-line ``args_options``."""

    seed: Optional[int] = None
    deterministic: bool = False
    resume: Optional[bool] = None  # None: resume when a checkpoint of this run exists
    load_from: Optional[str] = None
    cfg_options: Dict[str, Any] = field(default_factory=dict)


ARGS_HELP = "--seed N, --deterministic, --resume, --no-resume, --load-from PATH, --cfg-options k=v ..."


def parse_args_options(text: str, file: str = "config.yaml") -> ArgsOptions:
    def bad(msg: str) -> Exception:
        return config_error(f"{msg}; supported: {ARGS_HELP}", file=file, field="args_options")

    try:
        tokens = shlex.split(text or "")
    except ValueError as e:
        raise bad(f"cannot split {text!r}: {e}") from None
    out = ArgsOptions()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--seed":
            if i + 1 >= len(tokens) or not tokens[i + 1].lstrip("-").isdigit():
                raise bad("--seed needs an integer")
            out.seed = int(tokens[i + 1])
            i += 2
        elif tok == "--deterministic":
            out.deterministic, i = True, i + 1
        elif tok in ("--resume", "--auto-resume"):
            out.resume, i = True, i + 1
        elif tok == "--no-resume":
            out.resume, i = False, i + 1
        elif tok == "--load-from":
            if i + 1 >= len(tokens):
                raise bad("--load-from needs a path")
            out.load_from, i = tokens[i + 1], i + 2
        elif tok == "--cfg-options":
            j = i + 1
            while j < len(tokens) and not tokens[j].startswith("--"):
                j += 1
            out.cfg_options.update(parse_cfg_options(" ".join(shlex.quote(t) for t in tokens[i + 1:j]), file))
            i = j
        else:
            raise bad(f"unknown option {tok!r}")
    return out


def parse_img_size(value: Any, default: Tuple[int, int], file: str = "config.yaml") -> Tuple[int, int]:
    """``img_size`` as (width, height): ``512`` or ``"512"`` (square), ``"1024,512"``, ``[1024, 512]``;
    empty or 0 means the preset's size."""
    if value in (None, "", 0, "0"):
        return default
    parts: Any = value
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").replace(" ", ",").split(",") if p]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parts = [value]
    try:
        nums = [int(float(p)) for p in parts]
    except (TypeError, ValueError):
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 16 or max(nums) > 8192:
        raise config_error(f"invalid value {value!r}, expected 'W,H' or one size, each in [16, 8192]",
                           file=file, field="img_size")
    return nums[0], nums[1]


def apply_overrides(cfg, cfg_options: str, args: ArgsOptions, file: str = "config.yaml") -> None:
    """Merge ``cfg_options`` and ``args_options --cfg-options`` into an mmengine Config."""
    overrides = parse_cfg_options(cfg_options, file)
    overrides.update(args.cfg_options)
    if overrides:
        try:
            cfg.merge_from_dict(overrides)
        except Exception as e:
            raise config_error(f"cannot apply {overrides!r}: {e}", file=file, field="cfg_options") from None


CONFIGS_ROOT = Path(os.environ.get("YMIR_CONFIGS_DIR", Path(__file__).resolve().parents[2] / "configs"))


def find_preset(kind: str, presets: Sequence[str], name: str, file: str = "config.yaml") -> Path:
    """``configs/<kind>/<name>.py`` for a preset name, else the path of an OpenMMLab config file
    (absolute, or relative to ``configs/<kind>``, ``configs`` or the working directory)."""
    kind_dir = CONFIGS_ROOT / kind
    if name in presets:
        return kind_dir / f"{name}.py"
    path = Path(name)
    for cand in ([path] if path.is_absolute() else [kind_dir / name, CONFIGS_ROOT / name, path]):
        if cand.is_file():
            return cand
    raise config_error(f"unknown preset or config file {name!r}; presets: {', '.join(presets)}", file=file,
                       field="config_file")


def load_preset(ctx, kind: str, presets: Sequence[str], scope: str):
    """The mmengine Config of the run's ``config_file``: the image's own presets and config files
    load as they are; a config from ``/in`` loads as data (a Python one only with
    ``trust_model_code``), like a stage's (see :mod:`.safe_config`)."""
    from mmengine.config import Config

    from .safe_config import TRUST_KEY, inside, load_config

    path = find_preset(kind, presets, ctx.env.map(ctx.cfg["config_file"]), ctx.cfg.source_file)
    if inside(str(path), ctx.env.input.root_dir):
        return load_config(str(path), trust_code=bool(ctx.cfg.get(TRUST_KEY, False)), scope=scope)
    return Config.fromfile(str(path))
