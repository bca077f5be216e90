"""Hyper-parameter schema: one per task kind and task (training / mining / infer).

The schema is the single source of truth for a knob: it coerces what the YMIR
web UI sends (bools and numbers arrive as strings, empty values are dropped),
validates ranges and choices (error 300001 naming key, value and expectation),
generates the ``/img-man/*-template.yaml`` files and the README tables.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import yaml

from .errors import config_error

log = logging.getLogger(__name__)

TASKS = ("training", "mining", "infer")

# Keys the platform writes or overwrites itself (contract §2.2 / §4.3).
RESERVED_KEYS = ("task_id", "class_names", "gpu_id", "gpu_count", "pretrained_model_params",
                 "model_params_path", "run_infer", "run_mining", "object_type", "shm_size",
                 "export_format")

_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


@dataclass(frozen=True)
class Param:
    """One hyper-parameter as the web UI shows it."""

    name: str
    type: str  # 'bool' | 'int' | 'float' | 'str'
    default: Any
    help: str
    choices: Optional[Tuple[Any, ...]] = None
    min: Optional[float] = None
    max: Optional[float] = None

    def expected(self) -> str:
        text = {"bool": "true or false", "int": "an integer", "float": "a number",
                "str": "a string"}[self.type]
        if self.choices:
            text += " in {" + ", ".join(str(c) for c in self.choices) + "}"
        if self.min is not None and self.max is not None:
            text += f" in [{self.min}, {self.max}]"
        elif self.min is not None:
            text += f" >= {self.min}"
        elif self.max is not None:
            text += f" <= {self.max}"
        return text

    def coerce(self, value: Any, file: str = "config.yaml") -> Any:
        """The typed value of ``value`` or a 300001 error naming the key, value and expectation."""
        def bad() -> Exception:
            return config_error(f"invalid value {value!r}, expected {self.expected()}", file=file,
                                field=self.name)

        if self.type == "bool":
            if isinstance(value, bool):
                out: Any = value
            elif isinstance(value, (int, float)) and value in (0, 1):
                out = bool(value)
            elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                out = value.strip().lower() in _TRUE
            else:
                raise bad()
        elif self.type in ("int", "float"):
            if isinstance(value, bool):
                raise bad()
            if isinstance(value, (int, float)):
                num = value
            elif isinstance(value, str):
                try:
                    num = float(value.strip()) if any(c in value.lower() for c in ".en") else int(value.strip())
                except ValueError:
                    raise bad() from None
            else:
                raise bad()
            if isinstance(num, float) and not math.isfinite(num):
                raise bad()
            if self.type == "int":
                if isinstance(num, float):
                    if not num.is_integer():
                        raise bad()
                    num = int(num)
            else:
                num = float(num)
            out = num
        else:  # str
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise bad()
            out = str(value).strip()
        if self.choices:
            if self.type == "str":
                canon = {str(c).lower(): c for c in self.choices}
                if str(out).lower() not in canon:
                    raise bad()
                out = canon[str(out).lower()]
            elif out not in self.choices:
                raise bad()
        if self.type in ("int", "float"):
            if (self.min is not None and out < self.min) or (self.max is not None and out > self.max):
                raise bad()
        return out


@dataclass
class Schema:
    """The hyper-parameters of one (task kind, task)."""

    kind: str
    task: str
    params: List[Param] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate hyper-parameters in {self.kind}/{self.task}: {sorted(dup)}")
        for p in self.params:  # a schema must be able to produce its own defaults
            if p.default is not None:
                p.coerce(p.default, file=f"schema {self.kind}/{self.task}")

    def by_name(self) -> Dict[str, Param]:
        return {p.name: p for p in self.params}

    def defaults(self) -> Dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def template_text(self) -> str:
        """The ``/img-man/<task>-template.yaml`` file: flat ``key: value`` with a comment per key."""
        lines = [f"# {self.task} hyper-parameters of the ymir-executor '{self.kind}' image.",
                 "# Generated from the schema by `ymir-executor templates`; do not edit by hand.",
                 "# Keys the platform fills in itself:"]
        for key in ("gpu_id", "gpu_count", "task_id", "class_names",
                    "pretrained_model_params" if self.task == "training" else "model_params_path"):
            lines.append(f"# {key}: ...")
        for p in self.params:
            lines.append(f"# {p.help}: {p.expected()}")
            lines.append(yaml.safe_dump({p.name: p.default}, default_flow_style=False,
                                        allow_unicode=True).rstrip("\n"))
        return "\n".join(lines) + "\n"

    def markdown_table(self) -> str:
        rows = ["| hyper-parameter | type | default | allowed | description |",
                "| --- | --- | --- | --- | --- |"]
        for p in self.params:
            allowed = ""
            if p.choices:
                allowed = ", ".join(str(c) for c in p.choices)
            elif p.min is not None and p.max is not None:
                allowed = f"{p.min} … {p.max}"
            elif p.min is not None:
                allowed = f"≥ {p.min}"
            elif p.max is not None:
                allowed = f"≤ {p.max}"
            default = "''" if p.default == "" else p.default
            rows.append(f"| `{p.name}` | {p.type} | {default} | {allowed} | {p.help} |")
        return "\n".join(rows) + "\n"


@dataclass
class RunConfig:
    """config.yaml after validation: the platform's keys typed, the schema's knobs coerced."""

    task_id: str = ""
    class_names: List[str] = field(default_factory=list)
    gpu_id: str = ""
    gpu_count: int = 0
    pretrained_model_params: List[str] = field(default_factory=list)
    model_params_path: List[str] = field(default_factory=list)
    run_infer: bool = False
    run_mining: bool = False
    object_type: Optional[int] = None
    shm_size: str = ""
    export_format: str = ""
    params: Dict[str, Any] = field(default_factory=dict)
    unknown: Dict[str, Any] = field(default_factory=dict)
    source_file: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    @property
    def gpu_ids(self) -> List[int]:
        return [int(g) for g in self.gpu_id.split(",") if g.strip()]


def _str_list(value: Any, key: str, file: str) -> List[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise config_error(f"expected a list of strings, got {value!r}", file=file, field=key)


def _reserved(raw: Mapping[str, Any], file: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    names = raw.get("class_names")
    if names is None:
        raise config_error("missing: the platform always sets the class names", file=file, field="class_names")
    if isinstance(names, str):
        names = [n for n in (s.strip() for s in names.split(",")) if n]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise config_error(f"expected a non-empty list of class names, got {names!r}", file=file,
                           field="class_names")
    names = [n.strip() for n in names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise config_error(f"duplicate class names {dup}", file=file, field="class_names")
    out["class_names"] = names
    out["task_id"] = str(raw.get("task_id", "") or "")
    gpu_id = raw.get("gpu_id", "")
    if gpu_id is None:
        gpu_id = ""
    if isinstance(gpu_id, bool) or not isinstance(gpu_id, (str, int)):
        raise config_error(f"expected a string like '0,1', got {gpu_id!r}", file=file, field="gpu_id")
    gpu_id = str(gpu_id).replace(" ", "")
    if gpu_id and not all(g.isdigit() for g in gpu_id.split(",")):
        raise config_error(f"expected comma-separated GPU numbers, got {gpu_id!r}", file=file, field="gpu_id")
    out["gpu_id"] = gpu_id
    count = raw.get("gpu_count")
    if count in (None, ""):
        count = len([g for g in gpu_id.split(",") if g])
    out["gpu_count"] = Param("gpu_count", "int", 0, "", min=0).coerce(count, file)
    out["pretrained_model_params"] = _str_list(raw.get("pretrained_model_params"), "pretrained_model_params", file)
    out["model_params_path"] = _str_list(raw.get("model_params_path"), "model_params_path", file)
    for key in ("run_infer", "run_mining"):
        out[key] = Param(key, "bool", False, "").coerce(raw[key], file) if raw.get(key) not in (None, "") else False
    ot = raw.get("object_type")
    out["object_type"] = None if ot in (None, "") else Param("object_type", "int", 2, "").coerce(ot, file)
    out["shm_size"] = str(raw.get("shm_size", "") or "")
    fmt = str(raw.get("export_format", "") or "")
    if fmt and ":" not in fmt:
        raise config_error(f"expected '<annotation>:<asset>' such as 'ark:raw', got {fmt!r}", file=file,
                           field="export_format")
    out["export_format"] = fmt
    return out


def validate_config(raw: Any, schema: Schema, *, file: str = "config.yaml",
                    also_known: Iterable[str] = ()) -> RunConfig:
    """Type and check a parsed config.yaml against ``schema``; unknown keys are kept and warned about.

    ``also_known``: keys of the kind's other tasks (a mining+infer config holds both) that are
    not worth a warning."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise config_error(f"expected a mapping at top level, got {type(raw).__name__}", file=file)
    cfg = RunConfig(source_file=file, **_reserved(raw, file))
    known = schema.by_name()
    for p in schema.params:
        value = raw.get(p.name)
        # The UI drops empty entries; an explicit '' or null means "use the default".
        if value is None or (isinstance(value, str) and value == "" and p.type != "str"):
            cfg.params[p.name] = p.default
        else:
            cfg.params[p.name] = p.coerce(value, file)
    for key, value in raw.items():
        if key in known or key in RESERVED_KEYS or key in ("run_training",):
            continue
        if key in also_known:
            cfg.unknown[key] = value
            continue
        cfg.unknown[key] = value
        log.warning("%s: unknown hyper-parameter %r (value %r) ignored by the %s %s schema",
                    file, key, value, schema.kind, schema.task)
    return cfg


def load_config(path: str, schema: Schema, also_known: Iterable[str] = ()) -> RunConfig:
    """Read and validate config.yaml at ``path``."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise config_error("config file not found", file=path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise config_error(f"malformed yaml: {getattr(e, 'problem', e)}", file=path,
                           line=(mark.line + 1) if mark else None) from None
    except UnicodeDecodeError:
        raise config_error("not a UTF-8 text file", file=path) from None
    return validate_config(raw, schema, file=path, also_known=also_known)


def common_params(task: str, *, samples_per_gpu: int = 2, workers_per_gpu: int = 2,
                  export_format: Optional[str] = None, min_samples: int = 1,
                  samples_help: str = "batch size per GPU", diversity: float = 0.0,
                  balance_classes: bool = False) -> List[Param]:
    """Knobs every image shows; the kinds add their own (and their mining order's defaults: what
    won in ``ymir-executor simulate`` on the benchmark, README "Does mining beat random?")."""
    params = [Param("shm_size", "str", "128G", "shared memory for the container, about 32G per GPU"),
              Param("samples_per_gpu", "int", samples_per_gpu, samples_help, min=min_samples),
              Param("workers_per_gpu", "int", workers_per_gpu, "data-loading processes per GPU", min=0)]
    if task == "training" and export_format:
        params.append(Param("export_format", "str", export_format,
                            "dataset export format '<annotation>:<asset>' the platform uses"))
    if task == "training":
        params.append(Param("pretrained_weights", "str", "auto",
                            "start weights when the platform gives none: auto = the preset's checkpoint baked into "
                            "the image, none = random, or the path of a .pth"))
    if task == "mining":
        params += [
            Param("diversity", "float", diversity, "order result.tsv so that every prefix is a diverse batch: weight of the "
                  "distance to the lines above, over the model's pooled features (0: by score only)", min=0.0),
            Param("balance_classes", "bool", balance_classes, "every prefix of result.tsv takes its lines from the predicted "
                  "classes in turn, so that no class fills the top"),
            Param("diverse_top", "int", 1000, "lines ordered for diversity / balance (the rest by score; 0: all)",
                  min=0),
            Param("preview_images", "int", 24, "draw the first N images of result.tsv with what made them uncertain "
                  "into /out/mining-previews and TensorBoard, with a contact sheet (0: none)", min=0)]
    if task != "training":
        params.append(Param("max_broken_ratio", "float", 0.1,
                            "share of candidates that may be unreadable (skipped: no predictions, lowest mining "
                            "score) before the task fails", min=0.0, max=1.0))
    params.append(Param("trust_model_code", "bool", False,
                        "run Python model configs (*.py) that come with /in, e.g. stages of older versions of "
                        "this image; off: only data configs (.yaml / .json) are read from /in"))
    return params


def run_knobs(metric: str, fp16: bool = True) -> List[Param]:
    """Training knobs of every kind: early stopping on the stage ``metric``, mixed precision (where
    the kind supports it) and resume."""
    params = [Param("early_stop_patience", "int", 0,
                    f"stop when {metric} has not improved for this many evaluations (0: never)", min=0)]
    if fp16:
        params.append(Param("fp16", "bool", False, "mixed-precision training (GPU only; ignored on CPU)"))
    return params + [Param("resume", "bool", True, "resume from this run's last checkpoint when /out holds one")]


def override_knobs() -> List[Param]:
    """The last knobs of every training template: mmengine config and command-line overrides."""
    return [Param("cfg_options", "str", "", "mmengine config overrides 'key=value key2=value2'"),
            Param("args_options", "str", "",
                  "--seed N, --deterministic, --resume, --no-resume, --load-from PATH, --cfg-options k=v ...")]


def schemas_table(schemas: Iterable[Schema]) -> str:
    return "\n".join(f"#### {s.kind} · {s.task}\n\n{s.markdown_table()}" for s in schemas)
