"""Writable cache folders for every library the tasks load, whoever runs the executor.

The platform starts the container under an arbitrary uid with no environment at all, so
``HOME`` may be unset, point at a folder that uid cannot write, or have no passwd entry to
fall back on. mmengine, matplotlib, torch, numba and fontconfig each derive a cache folder
from it and some fail outright without one. Before any of them is imported the executor
points each at a folder it can write: the variable's own value when that is writable, else
one under a private per-uid folder in the system's temporary directory.
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict

# variable -> sub-folder of the fallback root; HOME first, the others may derive from it.
CACHE_VARIABLES = (
    ("HOME", ""),
    ("XDG_CACHE_HOME", ".cache"),
    ("MPLCONFIGDIR", ".cache/matplotlib"),
    ("TORCH_HOME", ".cache/torch"),
    ("NUMBA_CACHE_DIR", ".cache/numba"),
    ("TORCHINDUCTOR_CACHE_DIR", ".cache/torchinductor"),
    ("TRITON_CACHE_DIR", ".cache/triton"),
)


def _writable(path: str) -> bool:
    if not path or not os.path.isabs(path):
        return False
    probe = path
    while not os.path.exists(probe):  # a folder that does not exist yet is fine if it can be made
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent
    return os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK)


def fallback_root() -> str:
    return os.path.join(tempfile.gettempdir(), f"ymir-executor-{os.getuid()}")


def use_writable_caches(environ: "os._Environ[str] | Dict[str, str]" = os.environ) -> Dict[str, str]:
    """Set each cache variable that is unset or not writable; return what was changed."""
    changed: Dict[str, str] = {}
    for name, sub in CACHE_VARIABLES:
        current = environ.get(name, "")
        # TORCH_HOME may be a read-only folder of baked weights: reading is all torch does there.
        if current and (_writable(current) or (name == "TORCH_HOME" and os.path.isdir(current))):
            continue
        value = os.path.join(environ["HOME"], sub) if sub else fallback_root()
        os.makedirs(value, mode=0o700, exist_ok=True)
        environ[name] = value
        changed[name] = value
    return changed
