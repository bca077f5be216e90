"""Several machines: torchrun's own node settings, read in one place.

A task that outgrows one machine runs on several through torchrun, nothing else: the user starts
the same task on every node with the same ``/in`` and ``/out`` (one shared folder, e.g. NFS) and
sets torchrun's environment (``PET_NNODES``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``,
``PET_MASTER_PORT``, or ``PET_RDZV_ENDPOINT`` for c10d rendezvous); ``ymir-executor train|infer|mine
--nnodes N --node-rank R --master-addr A`` sets the same variables. Each node's launching process
starts ``max(1, gpu_count)`` workers under torchrun; the worker of global rank 0 writes monitor.txt
and the results, and the launching processes of nodes other than 0 write nothing in ``/out``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Mapping, Optional

# Set by the launching process in the environment of the workers torchrun starts.
WORKER_ENV = "YMIR_EXECUTOR_WORKER"
ENV_SOURCE = "the environment"

# Our field name -> torchrun's variable (torchrun reads ``PET_<ARG>`` as the default of ``--<arg>``).
NODE_VARIABLES = {
    "nnodes": "PET_NNODES",
    "node_rank": "PET_NODE_RANK",
    "master_addr": "PET_MASTER_ADDR",
    "master_port": "PET_MASTER_PORT",
    "rdzv_endpoint": "PET_RDZV_ENDPOINT",
    "rdzv_id": "PET_RDZV_ID",
}
DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class Nodes:
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = ""
    master_port: int = DEFAULT_MASTER_PORT
    rdzv_endpoint: str = ""
    rdzv_id: str = ""

    @property
    def multi(self) -> bool:
        return self.nnodes > 1

    def torchrun_args(self, nproc: int, free_port: int) -> List[str]:
        """torchrun's launch arguments for this node, ``nproc`` workers on it."""
        args = [f"--nnodes={self.nnodes}", f"--nproc_per_node={nproc}"]
        if not self.multi:  # one node: a private rendezvous on a free local port
            return args + ["--master_addr=127.0.0.1", f"--master_port={free_port}"]
        if self.rdzv_endpoint:
            return args + ["--rdzv_backend=c10d", f"--rdzv_endpoint={self.rdzv_endpoint}",
                           f"--rdzv_id={self.rdzv_id or 'ymir-executor'}"]
        return args + [f"--node_rank={self.node_rank}", f"--master_addr={self.master_addr}",
                       f"--master_port={self.master_port}"]


def _int(environ: Mapping[str, str], field: str, default: int, minimum: int) -> int:
    var = NODE_VARIABLES[field]
    raw = environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        from .errors import config_error
        raise config_error(f"expected an integer >= {minimum}, got {raw!r}", file=ENV_SOURCE, field=var)
    return value


def read_nodes(environ: Optional[Mapping[str, str]] = None) -> Nodes:
    """The node settings of this run; a clear config error (naming the variable) when they are wrong."""
    from .errors import config_error

    env = os.environ if environ is None else environ
    nodes = Nodes(nnodes=_int(env, "nnodes", 1, 1), node_rank=_int(env, "node_rank", 0, 0),
                  master_addr=env.get(NODE_VARIABLES["master_addr"], "").strip(),
                  master_port=_int(env, "master_port", DEFAULT_MASTER_PORT, 1),
                  rdzv_endpoint=env.get(NODE_VARIABLES["rdzv_endpoint"], "").strip(),
                  rdzv_id=env.get(NODE_VARIABLES["rdzv_id"], "").strip())
    if nodes.multi and not nodes.rdzv_endpoint and not nodes.master_addr:
        raise config_error(f"{nodes.nnodes} nodes need node 0's address (--master-addr) or a rendezvous "
                           "(--rdzv-endpoint)", file=ENV_SOURCE, field=NODE_VARIABLES["master_addr"])
    # With a c10d rendezvous torchrun assigns the ranks; the node rank still says which node's
    # launching process writes monitor.txt and the run summary (node 0).
    if nodes.node_rank >= nodes.nnodes:
        raise config_error(f"node rank {nodes.node_rank} is not below the node count {nodes.nnodes}",
                           file=ENV_SOURCE, field=NODE_VARIABLES["node_rank"])
    return nodes


def is_worker() -> bool:
    """A process torchrun started for a task (its launching process set the variable)."""
    return os.environ.get(WORKER_ENV) == "1"


def writes_reports() -> bool:
    """Whether this process writes monitor.txt and the run summary: the worker of global rank 0,
    or a launching process on node 0 (nodes other than 0 only take their share of the work)."""
    if is_worker():
        return int(os.environ.get("RANK", "0")) == 0
    try:
        return read_nodes().node_rank == 0
    except Exception:  # a wrong setting is reported by the task itself, on every node
        return True


def set_from_cli(nnodes: Optional[int], node_rank: Optional[int], master_addr: Optional[str],
                 master_port: Optional[int], rdzv_endpoint: Optional[str]) -> None:
    """The CLI's flags become torchrun's variables, so the launch reads one source."""
    for field, value in (("nnodes", nnodes), ("node_rank", node_rank), ("master_addr", master_addr),
                         ("master_port", master_port), ("rdzv_endpoint", rdzv_endpoint)):
        if value is not None:
            os.environ[NODE_VARIABLES[field]] = str(value)
