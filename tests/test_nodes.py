"""Several machines through torchrun: two "nodes" on this machine (two torchrun groups over
localhost, gloo) give the files one node gives."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch

from executor.demo import _handoff_model
from executor.errors import ErrorCode, YmirError
from executor.monitor import parse_monitor
from executor.nodes import NODE_VARIABLES, Nodes, read_nodes
from executor.verify import verify_output
from executor.workspace import make_workspace

TINY = {"config_file": "tiny", "samples_per_gpu": 2, "workers_per_gpu": 0}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(task: str, ws: Path, *extra: str, out: Path = None) -> List[str]:
    return [sys.executable, "-m", "executor", task, "--in", str(ws / "in"), "--out", str(out or ws / "out"), *extra]


def two_nodes(task: str, ws: Path, out1: Path = None, rdzv: bool = False) -> List[subprocess.CompletedProcess]:
    """``task`` on two nodes of this machine, each its own launching process and torchrun group."""
    port = _port()
    procs = []
    for rank in (0, 1):
        where = ["--rdzv-endpoint", f"127.0.0.1:{port}"] if rdzv else ["--master-addr", "127.0.0.1",
                                                                      "--master-port", str(port)]
        cmd = _cli(task, ws, "--nnodes", "2", "--node-rank", str(rank), *where,
                   out=out1 if rank == 1 and out1 else None)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    done = []
    for p in procs:
        stdout, _ = p.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, stdout))
    return done


def test_node_settings_and_their_errors():
    assert Nodes().torchrun_args(2, 1234) == ["--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                                              "--master_port=1234"]
    env = {NODE_VARIABLES["nnodes"]: "3", NODE_VARIABLES["node_rank"]: "2", NODE_VARIABLES["master_addr"]: "10.0.0.1"}
    nodes = read_nodes(env)
    assert nodes.multi and nodes.torchrun_args(4, 1) == ["--nnodes=3", "--nproc_per_node=4", "--node_rank=2",
                                                         "--master_addr=10.0.0.1", "--master_port=29500"]
    rdzv = read_nodes({NODE_VARIABLES["nnodes"]: "2", NODE_VARIABLES["rdzv_endpoint"]: "head:29400"})
    assert rdzv.torchrun_args(1, 1)[2:] == ["--rdzv_backend=c10d", "--rdzv_endpoint=head:29400",
                                            "--rdzv_id=ymir-executor"]
    for bad, field, words in (({"nnodes": "two"}, "nnodes", "integer"), ({"nnodes": "2"}, "master_addr", "address"),
                              ({"nnodes": "2", "master_addr": "h", "node_rank": "2"}, "node_rank", "not below"),
                              ({"master_port": "0"}, "master_port", ">= 1")):
        with pytest.raises(YmirError) as e:
            read_nodes({NODE_VARIABLES[k]: v for k, v in bad.items()})
        assert e.value.code == ErrorCode.CONFIG and NODE_VARIABLES[field] in str(e.value) and words in str(e.value)


@pytest.fixture(scope="module")
def trained_on_two_nodes(tmp_path_factory):
    ws = tmp_path_factory.mktemp("nodes") / "train"
    make_workspace(str(ws), "det", "train", num_train=8, num_val=4,
                   overrides=dict(TINY, max_epochs=2, val_interval=1, gpu_count=1))
    runs = two_nodes("train", ws)
    assert [r.returncode for r in runs] == [0, 0], runs[1].stdout[-3000:] + runs[0].stdout[-3000:]
    return ws, runs


def test_training_on_two_nodes_equals_two_processes_on_one(trained_on_two_nodes, tmp_path):
    ws, runs = trained_on_two_nodes
    assert "--nnodes=2 --nproc_per_node=1 --node_rank=1" in runs[1].stdout
    assert "Distributed training: True" in runs[0].stdout
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
    one = tmp_path / "one"
    make_workspace(str(one), "det", "train", num_train=8, num_val=4,
                   overrides=dict(TINY, max_epochs=2, val_interval=1, gpu_count=2))
    r = subprocess.run(_cli("train", one), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    for stage in ("best", "last"):
        a = torch.load(ws / "out" / "models" / stage / "model.pth", map_location="cpu", weights_only=False)
        b = torch.load(one / "out" / "models" / stage / "model.pth", map_location="cpu", weights_only=False)
        sa, sb = a.get("state_dict", a), b.get("state_dict", b)
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # node 0 reports; node 1 would have to be the last writer to leave a record short of 100 %
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["percent"] == 1.0 and rec["state"] == 2 and "return_code" not in rec


def _mine_ws(trained: Path, dest: Path, **cfg) -> Path:
    make_workspace(str(dest), "det", "mine", num_candidates=10, seed=3,
                   overrides=dict({"samples_per_gpu": 1, "workers_per_gpu": 0}, **cfg))
    _handoff_model(trained / "out", dest)
    return dest


@pytest.mark.parametrize("task,rdzv", [("infer", False), ("mine", False), ("mine", True)])
def test_infer_and_mine_on_two_nodes_give_the_one_process_files(trained_on_two_nodes, tmp_path, task, rdzv):
    trained, _ = trained_on_two_nodes
    one = _mine_ws(trained, tmp_path / "one", mining_algorithm="aldd")
    two = _mine_ws(trained, tmp_path / "two", mining_algorithm="aldd", gpu_count=1)
    r = subprocess.run(_cli(task, one), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]
    runs = two_nodes(task, two, rdzv=rdzv)
    assert [x.returncode for x in runs] == [0, 0], runs[0].stdout[-3000:] + runs[1].stdout[-3000:]
    name = "infer-result.json" if task == "infer" else "result.tsv"
    assert (one / "out" / name).read_bytes() == (two / "out" / name).read_bytes()
    assert verify_output(str(two / "in"), str(two / "out"), tasks=[{"infer": "infer", "mine": "mining"}[task]]) == []


def test_an_out_folder_that_is_not_shared_is_refused(trained_on_two_nodes, tmp_path):
    trained, _ = trained_on_two_nodes
    ws = _mine_ws(trained, tmp_path / "ws", gpu_count=1)
    elsewhere = tmp_path / "node1-out"
    shutil.copytree(ws / "out", elsewhere)
    runs = two_nodes("infer", ws, out1=elsewhere)
    assert [r.returncode != 0 for r in runs] == [True, True]
    rec = parse_monitor((ws / "out" / "monitor.txt").read_text())
    assert rec["state"] == 4 and rec["return_code"] == int(ErrorCode.CONFIG)
    assert "not one shared folder" in rec["message"]
    assert not (ws / "out" / "infer-result.json").exists() and not (elsewhere / "infer-result.json").exists()


@pytest.mark.parametrize("fails", [False, True])
def test_a_worker_leaves_no_process_group_behind(monkeypatch, tmp_path, fails):
    """A worker's gloo group alive at exit can abort the process (SIGABRT) in interpreter shutdown;
    the entrypoint wrapper destroys it, also when the task fails."""
    import types

    import torch.distributed as dist

    from executor.nodes import WORKER_ENV
    from ymir_tasks.common import runtime

    for k, v in {WORKER_ENV: "1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_port())}.items():
        monkeypatch.setenv(k, v)
    seen = {}

    @runtime.distributed_entry
    def task(ctx, launcher):
        seen.update(launcher=launcher, initialised=dist.is_initialized())
        if fails:
            raise ValueError("boom")
        return "result"

    ctx = types.SimpleNamespace(cfg=types.SimpleNamespace(gpu_count=1),
                                env=types.SimpleNamespace(output=types.SimpleNamespace(root_dir=str(tmp_path))))
    if fails:
        with pytest.raises(ValueError, match="boom"):
            task(ctx)
    else:
        assert task(ctx) == "result"
    assert seen == {"launcher": "pytorch", "initialised": True}
    assert not dist.is_initialized()
