"""Terminal output of a run by hand: one progress bar per step, the step's full output in a file.

``quiet_output(log_file)`` sends everything the process and its children write (Python, C
libraries, data-loading workers, torchrun) to ``log_file`` at the file-descriptor level and
hands back a stream to the real terminal; ``StepBar`` draws on it from monitor.txt's percent,
which is how the platform sees progress too.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import IO, Iterator, Optional

BAR_WIDTH = 24


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 60}:{s % 60:02d}"


class StepBar:
    """``  det · train   [#########...............]  38%  0:12  ETA 0:19``; on a terminal it
    redraws in place, elsewhere (a CI log) a line at the start and one at the end."""

    def __init__(self, label: str, stream: IO[str], tty: Optional[bool] = None) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.t0 = time.time()
        self.fraction = 0.0
        self._drawn = 0.0
        if self.tty:
            self._draw()
        else:
            self.stream.write(self.line("started") + "\n")
            self.stream.flush()

    def line(self, status: str = "") -> str:
        filled = int(round(BAR_WIDTH * self.fraction))
        elapsed = time.time() - self.t0
        text = f"  {self.label:<20} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.fraction * 100:3.0f}%  " \
               f"{_clock(elapsed)}"
        if status:
            return f"{text}  {status}"
        if 0.02 < self.fraction < 1.0:
            text += f"  ETA {_clock(elapsed * (1 - self.fraction) / self.fraction)}"
        return text

    def _draw(self, status: str = "") -> None:
        self.stream.write("\r\033[K" + self.line(status))
        self.stream.flush()
        self._drawn = time.time()

    def update(self, fraction: float) -> None:
        self.fraction = min(max(fraction, self.fraction), 1.0)
        if self.tty and time.time() - self._drawn > 0.2:
            self._draw()

    def close(self, status: str) -> None:
        if self.tty:
            self._draw(status)
            self.stream.write("\n")
        else:
            self.stream.write(self.line(status) + "\n")
        self.stream.flush()


@contextlib.contextmanager
def quiet_output(log_file: str) -> Iterator[IO[str]]:
    """Redirect fds 1 and 2 (and so sys.stdout / sys.stderr) to ``log_file`` (appended) while
    the block runs; yields a text stream on the original stdout."""
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    for s in (sys.stdout, sys.stderr):
        s.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
    with open(log_file, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            for s in (sys.stdout, sys.stderr):
                try:
                    s.flush()
                except (OSError, ValueError):
                    pass
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()
