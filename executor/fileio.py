"""Atomic file writes (a crash never leaves a half-written result file), and streams of pickled
records (what a process spools to disk instead of holding it)."""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, TextIO, Union

import yaml

PathLike = Union[str, "os.PathLike[str]"]


def read_pickled(path: PathLike) -> Iterator[Any]:
    """The objects ``pickle.dump``-ed one after another into ``path``, one at a time."""
    with open(path, "rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[TextIO]:
    """A text file written beside ``path`` and renamed over it when the block ends without an
    error (removed when it raises)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    with atomic_open(path) as f:
        f.write(text)


def atomic_write_yaml(path: PathLike, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def atomic_write_json(path: PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False))


def atomic_write_json_list(path: PathLike, head: Dict[str, Any], key: str, items: Iterable[Any],
                           tail: Dict[str, Any]) -> None:
    """``{**head, key: [*items], **tail}`` as JSON, the list written item by item (a report with a
    row per candidate of a 10^6 pool is never one string in memory)."""
    with atomic_open(path) as f:
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ("," if head else "") + json.dumps(key) + ":[")
        for n, item in enumerate(items):
            f.write(("," if n else "") + json.dumps(item, ensure_ascii=False))
        f.write("]" + "".join("," + json.dumps(k) + ":" + json.dumps(v, ensure_ascii=False) for k, v in tail.items())
                + "}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
