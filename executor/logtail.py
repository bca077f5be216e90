"""The last lines this process wrote to stdout / stderr, for the places a user looks on failure.

The platform shows monitor.txt's message and keeps the container log elsewhere; on failure
the runner copies this tail (the error's context, the traceback) into monitor.txt's detail lines
and into TensorBoard as text, so nobody has to dig for the container log.
"""
from __future__ import annotations

import collections
import io
import logging
import os
import sys
import time
from typing import Deque, List, Sequence

log = logging.getLogger(__name__)

TAIL_LINES = 40  # kept in memory; monitor.txt has room for 99 detail lines


class _Tee(io.TextIOBase):
    """Writes through to ``stream`` and keeps every completed line in ``tail``."""

    def __init__(self, stream, tail: Deque[str]) -> None:
        self._stream = stream
        self._tail = tail
        self._partial = ""

    def write(self, s: str) -> int:  # type: ignore[override]
        n = self._stream.write(s)
        text = self._partial + s
        *lines, self._partial = text.replace("\r", "\n").split("\n")
        self._tail.extend(ln for ln in lines if ln.strip())
        if len(self._partial) > 2000:  # a progress bar without newlines must not grow without bound
            self._partial = self._partial[-2000:]
        return len(s) if n is None else n

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding, buffer … of the real stream
        return getattr(self._stream, name)


_TAIL: Deque[str] = collections.deque(maxlen=TAIL_LINES)


def install() -> None:
    """Tee sys.stdout and sys.stderr into the tail (once per process; the streams stay the same
    objects afterwards, so loggers created later write through the tee too)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, _Tee):
            setattr(sys, name, _Tee(stream, _TAIL))


def mark() -> None:
    """Forget what came before: the tail of a run starts at its own first line (the demo runs
    several tasks in one process)."""
    _TAIL.clear()


def tail(n: int = TAIL_LINES) -> List[str]:
    return [ln[:300] for ln in list(_TAIL)[-n:]]


def write_tensorboard_text(tensorboard_dir: str, tag: str, message: str, lines: Sequence[str]) -> None:
    """The failure as a TensorBoard text entry (best effort: the run has failed already)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # torch or tensorboard missing: monitor.txt still has it
        return
    try:
        os.makedirs(tensorboard_dir, exist_ok=True)
        body = f"**{message}**\n\n    " + "\n    ".join(lines)  # markdown code block
        with SummaryWriter(tensorboard_dir, filename_suffix=".error") as writer:
            writer.add_text(tag, body, walltime=time.time())
    except Exception as err:  # noqa: BLE001 - never mask the original failure
        log.warning("could not write the error to TensorBoard: %s", err)
