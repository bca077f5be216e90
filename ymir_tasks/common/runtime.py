"""OpenMMLab runtime helpers shared by the task kinds: the device, distributed
launch through torchrun, loading of our own checkpoints under torch >= 2.6, and
the per-process task context the registered hooks read."""
from __future__ import annotations

import collections
import functools
import logging
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from typing import Any, Deque, Dict, Iterator, Optional

from executor.errors import ErrorCode, YmirError, model_error
from executor.monitor import parse_monitor
from executor.nodes import WORKER_ENV, read_nodes

log = logging.getLogger(__name__)

_CONTEXT: Dict[str, Any] = {}


def set_task_context(ctx, **extra: Any) -> None:
    """Make the task context visible to hooks built from (serialisable) configs."""
    _CONTEXT.clear()
    _CONTEXT.update(extra, ctx=ctx)


def task_context() -> Dict[str, Any]:
    return _CONTEXT


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return rank() == 0


def cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def device() -> str:
    if cuda_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def wants_distributed(ctx) -> bool:
    """Several processes when the platform gives several GPUs (or asks for them on CPU, as tests
    do), or when the run spans several nodes (``executor.nodes``)."""
    if os.environ.get(WORKER_ENV) == "1":
        return False
    return ctx.cfg.gpu_count > 1 or read_nodes().multi


def fork_safe_loader_setup() -> None:
    """Call before a DataLoader forks its workers: an OpenCV thread pool started in the parent
    deadlocks forked children (mmengine does the same with ``opencv_num_threads=0``)."""
    try:
        import cv2
        cv2.setNumThreads(0)
    except ImportError:
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_workers(ctx, nproc: int) -> None:
    """Run this task again in ``nproc`` processes on this node under torchrun and wait for them.

    Global rank 0 writes monitor.txt and the results; a failed worker's code is kept.
    """
    nodes = read_nodes()
    cmd = [sys.executable, "-m", "torch.distributed.run", *nodes.torchrun_args(nproc, _free_port()),
           "-m", "executor", {"training": "train", "mining": "mine", "infer": "infer"}[ctx.task],
           "--in", ctx.env.path_map.in_dir, "--out", ctx.env.path_map.out_dir, "--kind", ctx.kind.name]
    import torch

    # torchrun would set OMP_NUM_THREADS=1; the parent's thread count keeps CPU arithmetic (and so
    # the merged results) identical to a single-process run.
    threads = os.environ.get("OMP_NUM_THREADS") or str(torch.get_num_threads())
    env = dict(os.environ, **{WORKER_ENV: "1", "OMP_NUM_THREADS": threads})
    log.info("%s: launching %d processes%s: %s", ctx.task, nproc,
             f" on node {nodes.node_rank} of {nodes.nnodes}" if nodes.multi else "", " ".join(cmd))
    ctx.monitor.update(ctx.task, 0.0, force=True)
    # The workers' output is passed through (the platform keeps stdout) and its tail kept: a worker
    # the kernel killed writes no monitor record, torchrun's report is all there is.
    tail: Deque[str] = collections.deque(maxlen=200)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        tail.append(line)
    sys.stdout.flush()
    try:
        rec = parse_monitor(open(ctx.env.output.monitor_file, encoding="utf-8").read())
    except (OSError, ValueError):
        rec = {}
    if proc.wait() == 0:
        ctx.monitor.note(rec.get("details") or [])  # rank 0's detail lines (e.g. unreadable candidates)
    else:
        if rec.get("state") == 4 and rec.get("return_code") in {int(c) for c in ErrorCode}:
            raise YmirError.from_record(int(rec["return_code"]), str(rec.get("message", "")))
        text = "".join(tail)
        if "SIGKILL" in text or "exitcode  : -9" in text or "exitcode: -9" in text:
            raise RuntimeError(f"a {ctx.task} process was killed by the kernel (SIGKILL), most likely out of memory")
        if rec.get("state") == 4:  # the worker's own unexpected-error record (160004 and its message)
            raise RuntimeError(str(rec.get("message", f"a {ctx.task} worker failed")))
        raise RuntimeError(f"a {ctx.task} worker failed with exit status {proc.returncode}; its output ends: "
                           + " | ".join(ln.strip() for ln in list(tail)[-3:]))


def init_distributed_if_worker(out_dir: Optional[str] = None) -> Optional[str]:
    """Initialise the process group in a torchrun worker; returns mmengine's launcher name.
    Across nodes, ``out_dir`` must be one shared folder: checked here, before any work."""
    if os.environ.get(WORKER_ENV) != "1" or "RANK" not in os.environ:
        return None
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    if out_dir and world_size() > int(os.environ.get("LOCAL_WORLD_SIZE", world_size())):
        check_shared_out(out_dir)
    return "pytorch"


SHARED_CHECK_DIR = ".nodes-check"


def check_shared_out(out_dir: str) -> None:
    """Every rank leaves a mark in ``out_dir``; rank 0 must see them all (the shards, checkpoints
    and results of a multi-node run live in ``/out``, so it must be one folder on every node)."""
    import torch
    import torch.distributed as dist

    token = torch.randint(0, 2 ** 62, (1,), dtype=torch.int64)
    dist.broadcast(token, src=0)  # this run's marks: a killed run's cannot pass for them
    folder = os.path.join(out_dir, SHARED_CHECK_DIR)
    os.makedirs(folder, exist_ok=True)

    def mark(r: int) -> str:
        return os.path.join(folder, f"{int(token.item())}-rank{r}")

    with open(mark(rank()), "w", encoding="utf-8") as f:
        f.write(socket.gethostname())
    dist.barrier()
    missing = [r for r in range(world_size()) if not os.path.exists(mark(r))]
    seen = torch.tensor([len(missing)], dtype=torch.int64)
    dist.broadcast(seen, src=0)
    dist.barrier()
    if rank() == 0:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    if int(seen.item()):
        from executor.errors import config_error
        raise config_error(f"/out is not one shared folder on every node: rank 0 cannot see the marks of "
                           f"{int(seen.item())} other ranks; mount the same /in and /out (e.g. NFS) on every node",
                           field="/out")


def distributed_entry(fn):
    """A task entrypoint ``fn(ctx, launcher)`` that re-runs itself under torchrun when the task
    asks for several processes, and gets mmengine's launcher name ('pytorch' in a worker, else
    None) otherwise."""
    @functools.wraps(fn)
    def wrapper(ctx):
        if wants_distributed(ctx):
            launch_workers(ctx, max(1, ctx.cfg.gpu_count))
            return None
        try:
            launcher = init_distributed_if_worker(ctx.env.output.root_dir)
            result = fn(ctx, launcher)
            if launcher:
                import torch.distributed as dist
                dist.barrier()  # every rank done before any tears its group down
            return result
        finally:
            end_distributed()
    return wrapper


def end_distributed() -> None:
    """Destroy this worker's process group. A worker that exits with its gloo group alive can
    abort (SIGABRT) during interpreter shutdown, and torchrun then kills the other ranks."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from, or None.

    mmengine's ``last_checkpoint`` pointer can name a file its own ``max_keep_ckpts`` clean-up
    already deleted (a kill between the two), and a kill while ``torch.save`` writes leaves a
    truncated ``epoch_N`` / ``iter_N`` file. So the pointer's target is used only when it is a
    complete checkpoint; otherwise the newest complete one is, truncated ones are removed and the
    pointer is repaired.
    """
    import glob
    import re
    import zipfile

    pointer = os.path.join(work_dir, "last_checkpoint")
    target = open(pointer, encoding="utf-8").read().strip() if os.path.isfile(pointer) else ""
    found = []
    for path in glob.glob(os.path.join(work_dir, "*.pth")):
        m = re.fullmatch(r"(?:epoch|iter)_(\d+)\.pth", os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    newest_first = [p for _, p in sorted(found, reverse=True)]
    candidates = ([target] if target and os.path.isfile(target) else []) + [p for p in newest_first if p != target]
    for path in candidates:
        if zipfile.is_zipfile(path):  # torch.save writes a zip whose directory comes last
            if path != target:
                with open(pointer, "w", encoding="utf-8") as f:
                    f.write(path)
                log.warning("last_checkpoint named a missing or incomplete file; resuming from %s instead", path)
            return path
        log.warning("removing the incomplete checkpoint %s (the run was killed while writing it)", path)
        os.remove(path)
    return None


@contextmanager
def trusted_checkpoints() -> Iterator[None]:
    """Let torch.load read this run's own mmengine checkpoints (numpy scalars, HistoryBuffer).

    torch >= 2.6 loads with ``weights_only=True`` by default, which refuses mmengine's
    resume state. Only checkpoints this executor wrote in /out are loaded inside;
    model files from outside go through :func:`load_state_dict_file` (weights only).
    """
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old


def load_state_dict_file(path: str) -> Dict[str, Any]:
    """A plain state dict from a model file that arrived from outside (weights only, never code)."""
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle with code, truncated file, not a torch file
        raise model_error(f"cannot load weights ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                          file=path) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise model_error("not a state dict", file=path)
    return obj


def plain_state_dict(model) -> Dict[str, Any]:
    """The model's weights as CPU tensors, unwrapped from DDP: loads with weights_only=True."""
    module = getattr(model, "module", model)
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


CONFIG_DUMP = "mmengine-config.py"


def build_runner(cfg):
    """mmengine's Runner, except that its config dump (hundreds of log lines) goes to
    ``<work_dir>/mmengine-config.py`` and the log says where: the platform keeps the full log, and
    a user scrolling it wants the training, not the config."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    class YmirRunner(Runner):
        def _log_env(self, env_cfg: dict) -> None:
            full, self.cfg = self.cfg, Config()  # an empty config: mmengine logs the environment only
            try:
                super()._log_env(env_cfg)
            finally:
                self.cfg = full
            self.logger.info("the full mmengine config is in %s", os.path.join(self.work_dir, CONFIG_DUMP))

        def dump_config(self) -> None:
            self.cfg.dump(os.path.join(self.work_dir, CONFIG_DUMP))

    return YmirRunner.from_cfg(cfg)
