"""The dispatcher behind ``ymir-executor run``: env.yaml + config.yaml → the task kind's
``train(ctx)``, or ``mine(ctx)`` then ``infer(ctx)``.

Failures end with monitor state 4 and the YMIR code, one clear log line and a
non-zero exit; result files already written stay as they are.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import yaml

from . import logtail, nodes
from .caches import use_writable_caches
from .env import Env, PathMap, load_env
from .errors import ErrorCode, YmirError, config_error
from .fileio import atomic_write_json
from .hyperparams import RunConfig, load_config
from .monitor import Monitor
from .registry import MULTI_IMAGE, YMIR_OBJECT_TYPES, TaskKind, get_kind, kind_for_object_type, multi_type_kinds
from .report import RUN_SUMMARY

log = logging.getLogger("ymir-executor")

# Unexpected failures get the platform's own "container error" code so that the
# UI shows our message instead of a bare exit status.
UNEXPECTED_ERROR_CODE = 160004


@dataclass
class TaskContext:
    """Everything a task implementation needs; paths in ``env`` are local."""

    env: Env
    cfg: RunConfig
    kind: TaskKind
    task: str  # 'training' | 'mining' | 'infer'
    monitor: Monitor
    _on_exit: List[Callable[[], None]] = field(default_factory=list, repr=False)

    def on_exit(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the task ends, done or failed: a task's open files and scratch folders
        do not outlive it (the last registered runs first)."""
        self._on_exit.append(fn)

    def close(self) -> None:
        while self._on_exit:
            fn = self._on_exit.pop()
            try:
                fn()
            except Exception as e:  # a failed clean-up must not hide the task's own error
                log.warning("%s: clean-up failed: %s", self.task, e)

    def progress(self, percent: float, *, force: bool = False) -> None:
        self.monitor.update(self.task, percent, force=force)

    @property
    def class_names(self) -> List[str]:
        return self.cfg.class_names


class _StdoutHandler(logging.StreamHandler):
    """Always writes to the current sys.stdout (the platform captures stdout into its log)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_ymir", False) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        handler._ymir = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _manifest_object_type(path: str) -> Union[int, List[int], None]:
    """The manifest's ``object_type``: one type, the list of a multi-type image, or None."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    ot = data.get("object_type") if isinstance(data, dict) else None
    if isinstance(ot, list):
        return ot if ot and all(_is_int(t) for t in ot) else None
    return ot if _is_int(ot) else None


def resolve_kind(env: Env, raw_config: dict, forced_kind: Optional[str] = None) -> TaskKind:
    """The kind from ``--kind``, config ``object_type`` (YMIR >= 2.4), the image manifest, or
    the ``YMIR_EXECUTOR_KIND`` variable baked into an image. A multi-type image (a list in its
    manifest) runs only the types it lists, picked by config ``object_type``."""
    if forced_kind:
        return get_kind(forced_kind)
    ot = raw_config.get("object_type") if isinstance(raw_config, dict) else None
    config_ot: Optional[int] = None
    if ot not in (None, ""):
        try:
            config_ot = int(ot)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise config_error(f"expected an integer object type, got {ot!r}", file=env.input.config_file,
                               field="object_type") from None
    manifest = _manifest_object_type(env.manifest_file)
    baked = os.environ.get("YMIR_EXECUTOR_KIND")
    if manifest is None and baked == MULTI_IMAGE:  # the multi-type image with its manifest out of reach
        manifest = [k.object_type for k in multi_type_kinds()]
    if isinstance(manifest, list):
        if config_ot is None:
            if len(manifest) == 1:
                return kind_for_object_type(manifest[0])
            raise config_error(f"this image serves object types {manifest}: config.yaml must say which one "
                               "(YMIR >= 2.4 writes it)", file=env.input.config_file, field="object_type")
        if config_ot not in manifest:
            label = YMIR_OBJECT_TYPES.get(config_ot, "unknown")
            raise YmirError(ErrorCode.OBJECT_TYPE, f"object_type {config_ot} ({label}) is not served by this image; "
                            f"its manifest lists {manifest}", file=env.input.config_file, field="object_type")
        return kind_for_object_type(config_ot)
    if config_ot is not None:
        return kind_for_object_type(config_ot)
    if manifest is not None:
        return kind_for_object_type(manifest)
    if baked:
        return get_kind(baked)
    return kind_for_object_type(2)  # a missing manifest means detection for the platform


def _read_raw_config(path: str) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}  # load_config reports the precise error later
    return raw if isinstance(raw, dict) else {}


def plan_tasks(env: Env, only: Optional[str] = None) -> List[str]:
    if only:
        return [only]
    if env.run_training:
        return ["training"]
    return [t for t, on in (("mining", env.run_mining), ("infer", env.run_infer)) if on]


def run(in_dir: str = "/in", out_dir: str = "/out", *, only: Optional[str] = None,
        kind_name: Optional[str] = None, on_progress: Optional[Callable[[float], None]] = None) -> int:
    """Run the tasks env.yaml asks for; return the process exit status. ``on_progress`` sees
    the overall percent each time monitor.txt is written."""
    use_writable_caches()
    logtail.install()
    logtail.mark()
    setup_logging(os.environ.get("YMIR_LOG_LEVEL", "INFO"))
    path_map = PathMap(os.path.abspath(in_dir), os.path.abspath(out_dir)) if (in_dir, out_dir) != ("/in", "/out") \
        else PathMap()
    env_file = str(Path(path_map.in_dir) / "env.yaml")
    monitor = Monitor(path_map("/out/monitor.txt"), "default-task", listener=on_progress,
                      enabled=nodes.writes_reports())
    tensorboard = path_map("/out/tensorboard")
    summary: Dict[str, Any] = {"started": time.time(), "seconds": {}}
    try:
        env = load_env(env_file, path_map)
        tensorboard = env.output.tensorboard_dir
        tasks = plan_tasks(env, only)
        # Under torchrun only global rank 0 (and node 0's launching process) reports progress.
        monitor = Monitor(env.output.monitor_file, env.task_id, tasks or ["training"], enabled=nodes.writes_reports(),
                          listener=on_progress)
        Path(env.output.root_dir).mkdir(parents=True, exist_ok=True)
        monitor.start()
        if not tasks:
            # The platform always asks for a task: an env.yaml that asks for none is a mistake.
            raise config_error("asks for no task: run_training, run_mining and run_infer are all false or "
                               "missing; set run_training, or run_mining and/or run_infer", file=env_file,
                               field="run_training")
        raw = _read_raw_config(env.input.config_file)
        kind = resolve_kind(env, raw, kind_name)
        log.info("kind=%s tasks=%s protocol=%s task_id=%s", kind.name, "+".join(tasks),
                 env.protocol_version, env.task_id)
        # Validate every task's config before any work starts.
        kind_keys = {p.name for s in kind.schemas.values() for p in s.params}
        configs = {t: load_config(env.input.config_file, kind.schemas[t], kind_keys) for t in tasks}
        summary.update(kind=kind.name, object_type=kind.object_type)
        for task in tasks:
            ctx = TaskContext(env=env, cfg=configs[task], kind=kind, task=task, monitor=monitor)
            fn = kind.entrypoint(task)
            log.info("%s: start", task)
            t0 = time.time()
            try:
                fn(ctx)
            finally:
                ctx.close()
            summary["seconds"][task] = round(time.time() - t0, 1)
            monitor.update(task, 1.0, force=True)
            log.info("%s: done in %.1f s", task, summary["seconds"][task])
        monitor.finish()
        _write_summary(path_map, summary, 0)
        return 0
    except YmirError as e:
        log.error("%s", e.one_line())
        _fail(monitor, tensorboard, path_map, summary, int(e.code), e.one_line())
        return 1
    except MemoryError:
        log.error("%s", OOM_ADVICE)
        _fail(monitor, tensorboard, path_map, summary, int(ErrorCode.OUT_OF_MEMORY), OOM_ADVICE)
        return 1
    except KeyboardInterrupt:
        _fail(monitor, tensorboard, path_map, summary, UNEXPECTED_ERROR_CODE, "interrupted")
        return 130
    except Exception as e:  # anything else: keep the traceback in monitor.txt for the UI
        code = classify_exception(e)
        msg = exception_line(e)
        if code == ErrorCode.OUT_OF_MEMORY:
            msg = f"{OOM_ADVICE} ({msg})"
        log.error("unexpected failure: %s", msg)
        context = _context()  # before the traceback is printed: it has a section of its own
        traceback.print_exc(file=sys.stdout)
        tb = traceback.format_exc().splitlines()
        _fail(monitor, tensorboard, path_map, summary, code, msg,
              context + [TRACEBACK_HEADER] + tb[-(MAX_DETAILS - len(context) - 1):])
        return 1


def _write_summary(path_map: PathMap, summary: Dict[str, Any], code: int, message: str = "") -> None:
    """What ran, how long each task took and how it ended (for ``ymir-executor report``)."""
    if nodes.is_worker() or not nodes.writes_reports():
        return  # node 0's launching process writes it
    doc = dict(summary, finished=time.time(), return_code=code, message=message)
    try:
        atomic_write_json(path_map(f"/out/{RUN_SUMMARY}"), doc)
    except OSError as err:
        log.error("cannot write %s: %s", RUN_SUMMARY, err)


# monitor.txt's detail lines (the platform reads up to 99): the log's last lines, then the traceback.
MAX_DETAILS = 95
LOG_TAIL_HEADER = "--- the log's last lines ---"
TRACEBACK_HEADER = "--- traceback ---"


def _context(n: int = 30) -> List[str]:
    lines = logtail.tail(n)
    return [LOG_TAIL_HEADER] + lines if lines else []


OOM_ADVICE = ("out of memory: lower samples_per_gpu or img_size (or workers_per_gpu; data-loading workers also "
              "need shm_size)")
# What each allocator and the DataLoader say when memory runs out: torch's CPU allocator, CUDA,
# a loader worker the kernel's OOM killer ended, and the C library.
_OOM_MARKS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
              "is killed by signal: killed", "std::bad_alloc")
# torch's words for a loader worker that vanished: the kernel's OOM killer, most of the time.
_WORKER_DIED = re.compile(r"dataloader worker \(pids?\(?s?\)? [\d, ]+\) exited unexpectedly")


def exception_line(e: BaseException) -> str:
    """One line for the UI: an exception re-raised from a DataLoader worker is named by the
    original error (its traceback's last line), not by torch's "Caught X in DataLoader worker"."""
    text = str(e)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if lines and lines[0].startswith("Caught ") and "worker" in lines[0] and len(lines) > 1:
        return f"{lines[-1]} (in a data-loading worker)"[:500]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:500]


def classify_exception(e: BaseException) -> int:
    text = str(e).lower()
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or any(m in text for m in _OOM_MARKS) \
            or _WORKER_DIED.search(text):
        return int(ErrorCode.OUT_OF_MEMORY)
    if "nan" in text.split() or "loss is nan" in text or "non-finite loss" in text:
        return int(ErrorCode.NAN_LOSS)
    return UNEXPECTED_ERROR_CODE


def _fail(monitor: Monitor, tensorboard: str, path_map: PathMap, summary: Dict[str, Any], code: int,
          message: str, details: Optional[List[str]] = None) -> None:
    """Every failure's record: monitor.txt (details: the log's tail unless given), the same in
    TensorBoard, and run-summary.json."""
    details = _context() if details is None else details
    _write_summary(path_map, summary, code, message)
    try:
        monitor.fail(code, message, details)
    except OSError as err:  # /out not writable: nothing more we can do but say so
        log.error("cannot write %s: %s", monitor.path, err)
        return
    if monitor.enabled:  # the same in TensorBoard, beside the training curves
        logtail.write_tensorboard_text(tensorboard, "executor error", f"{code}: {message}", details)
