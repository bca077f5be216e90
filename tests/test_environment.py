"""The executor needs no HOME and no passwd entry (every cache goes to a place it can write), and
every form of running out of memory is reported as 300103 with advice."""
from __future__ import annotations

import os
import shutil

import pytest

import fake_kind
from executor.caches import CACHE_VARIABLES, use_writable_caches
from executor.registry import all_kinds, register_kind, unregister_kind
from executor.runner import classify_exception, run
from executor.verify import verify_output
from executor.workspace import make_workspace

from conftest import write_config, write_env
from stages import LOWER_BOUNDS, monitor, run_as_arbitrary_uid, task_ws

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                               reason="needs root to start a process as another uid in a mount namespace")


def _ok(ws, r):
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "home directory" not in r.stdout + r.stderr
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    rec = monitor(ws)
    assert rec["state"] == 2 and rec["percent"] == 1.0
    assert (ws / "out" / "monitor.txt").stat().st_uid == 4321


@ROOT_ONLY
def test_segmentation_trains_mines_and_infers_as_an_arbitrary_uid_without_home(public_tmp):
    train = public_tmp / "train"
    make_workspace(str(train), "seg", "train", num_train=8, num_val=4, overrides=LOWER_BOUNDS["seg"])
    _ok(train, run_as_arbitrary_uid(train))
    mine = task_ws(train, public_tmp / "mine", "seg", "mine", n=6, workers_per_gpu=2)
    _ok(mine, run_as_arbitrary_uid(mine))


@ROOT_ONLY
@pytest.mark.parametrize("kind", ["det", "det3d"])
def test_mining_and_inference_as_an_arbitrary_uid_without_home(stage_of, public_tmp, kind):
    ws = task_ws(stage_of(kind), public_tmp / "mine", kind, "mine", n=4, workers_per_gpu=1)
    _ok(ws, run_as_arbitrary_uid(ws))


def test_caches_go_where_they_can_be_written(tmp_path):
    unwritable = tmp_path / "ro"
    unwritable.mkdir()
    unwritable.chmod(0o555)
    env = {"HOME": "relative/home", "MPLCONFIGDIR": "", "TORCH_HOME": str(tmp_path / "weights")}
    (tmp_path / "weights").mkdir()
    changed = use_writable_caches(env)
    assert os.path.isabs(env["HOME"]) and os.access(env["HOME"], os.W_OK)
    for name, _ in CACHE_VARIABLES:
        assert os.path.isabs(env[name]) and os.path.isdir(env[name])
    assert env["TORCH_HOME"] == str(tmp_path / "weights") and "TORCH_HOME" not in changed
    env2 = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    use_writable_caches(env2)
    assert env2["HOME"] == str(tmp_path) and env2["XDG_CACHE_HOME"] == str(tmp_path / "cache")
    assert env2["MPLCONFIGDIR"] == str(tmp_path / ".cache" / "matplotlib")


# ---------------------------------------------------------------- out of memory

@pytest.fixture
def fake_registered():
    all_kinds()
    register_kind(fake_kind.KIND)
    yield
    unregister_kind("fake")


@pytest.mark.parametrize("behaviour,mark", [("cpu_oom", "can't allocate memory"),
                                            ("worker_killed", "DataLoader worker"),
                                            ("memory_error", "out of memory"),
                                            ("oom", "CUDA out of memory")])
def test_every_form_of_out_of_memory_is_300103_with_advice(io_dirs, fake_registered, behaviour, mark):
    in_dir, out_dir = io_dirs
    write_env(in_dir)
    write_config(in_dir, {"class_names": ["a"], "object_type": 99, "behaviour": behaviour})
    assert run(str(in_dir), str(out_dir)) == 1
    rec = monitor(in_dir.parent)
    assert rec["state"] == 4 and rec["return_code"] == 300103, rec
    assert "samples_per_gpu" in rec["message"] and "img_size" in rec["message"]
    if behaviour != "memory_error":
        assert mark.lower() in rec["message"].lower()


@pytest.mark.parametrize("text", [
    "DefaultCPUAllocator: can't allocate memory: you tried to allocate 70368744177664 bytes. Error code 12",
    "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 10.76 GiB total capacity)",
    "DataLoader worker (pid 1234) is killed by signal: Killed. ",
    "DataLoader worker (pid(s) 9119) exited unexpectedly",
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to allocate",
    "std::bad_alloc",
    "a training process was killed by the kernel (SIGKILL), most likely out of memory"])
def test_out_of_memory_messages_are_classified(text):
    assert classify_exception(RuntimeError(text)) == 300103
    assert classify_exception(RuntimeError("shape mismatch")) == 160004
