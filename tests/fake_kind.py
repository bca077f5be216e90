"""A task kind used only by the tests: it drives the dispatcher without torch."""
import logging
import os

from executor.errors import ErrorCode, YmirError
from executor.hyperparams import Param, Schema
from executor.index import iter_candidates
from executor.registry import TaskKind
from executor.results import DetectionInferWriter, write_mining_result, write_model_stage

_P = [Param("behaviour", "str", "ok", "what the fake does",
            choices=("ok", "ymir_error", "crash", "oom", "cpu_oom", "worker_killed", "memory_error")),
      Param("steps", "int", 3, "progress steps", min=1)]
SCHEMAS = {t: Schema("fake", t, list(_P)) for t in ("training", "mining", "infer")}
CALLS = []


def _behave(ctx):
    CALLS.append((ctx.task, dict(ctx.cfg.params)))
    b = ctx.cfg["behaviour"]
    if b == "ymir_error":
        raise YmirError(ErrorCode.DATASET, "unknown class 'zebra'", file="/in/annotations/a.txt", line=3)
    if b == "crash":
        logging.getLogger("fake").info("loading batch 7 of /in/assets/aa.jpg")
        print("a library's own line on stdout", flush=True)
        raise RuntimeError("kaboom")
    if b == "oom":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
    if b in ("cpu_oom", "worker_killed", "memory_error"):
        _run_out_of_memory(b)
    for i in range(ctx.cfg["steps"]):
        ctx.progress((i + 1) / ctx.cfg["steps"], force=True)


def train(ctx):
    _behave(ctx)
    os.makedirs(ctx.env.output.tensorboard_dir, exist_ok=True)
    open(os.path.join(ctx.env.output.tensorboard_dir, "events.out.tfevents.0"), "w").write("x")
    work = os.path.join(ctx.env.output.root_dir, "work")
    os.makedirs(work, exist_ok=True)
    weights = os.path.join(work, "w.pth")
    open(weights, "wb").write(b"w")
    write_model_stage(ctx.env, "last", [weights], {"mAP": 0.5})


def mine(ctx):
    _behave(ctx)
    cands = list(iter_candidates(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map))
    write_mining_result(ctx.env, [(c.raw_image, i / 10) for i, c in enumerate(cands)])


def infer(ctx):
    _behave(ctx)
    w = DetectionInferWriter(ctx.env, ctx.class_names)
    w.close(c.image for c in iter_candidates(ctx.env.input.candidate_index_file, path_map=ctx.env.path_map))


KIND = TaskKind(name="fake", object_type=99, description="test double", schemas=SCHEMAS, entry="fake_kind")


class _KilledByTheKernel:
    """A loader whose worker the kernel's OOM killer ends (SIGKILL), as torch sees it."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


def _run_out_of_memory(how):
    """Each way memory runs out, for real: torch's CPU allocator, a killed loader worker, Python."""
    import torch
    if how == "cpu_oom":
        torch.empty(1 << 46, dtype=torch.uint8)  # 64 TiB: the allocator refuses at once
    elif how == "worker_killed":
        from torch.utils.data import DataLoader
        list(DataLoader(_KilledByTheKernel(), num_workers=1))
    else:
        bytearray(1 << 50)
