"""``/out/monitor.txt``: one record, overwritten on every update (contract §5.1).

``task_id<TAB>timestamp<TAB>percent<TAB>state[<TAB>return_code[<TAB>message]]``
followed by optional free-text lines. Executors write state 2 (running) and
finally percent 1.0 with state 2; the platform itself writes DONE. On failure:
percent 1.0, state 4, the YMIR return code and a one-line message.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .fileio import atomic_write_text

STATE_PENDING, STATE_RUNNING, STATE_DONE, STATE_ERROR = 1, 2, 3, 4


def format_monitor(task_id: str, percent: float, state: int, return_code: Optional[int] = None,
                   message: str = "", details: Sequence[str] = (), timestamp: Optional[float] = None) -> str:
    ts = time.time() if timestamp is None else timestamp
    fields = [task_id, f"{ts:.6f}", f"{min(max(percent, 0.0), 1.0):.4f}", str(state)]
    if return_code is not None:
        fields.append(str(int(return_code)))
        if message:
            fields.append(message.replace("\t", " ").replace("\n", " ").strip())
    lines = ["\t".join(fields)] + [d.rstrip("\n") for d in details][:99]
    return "\n".join(lines) + "\n"


@dataclass
class Monitor:
    """Progress writer. ``tasks`` are the tasks of this container in run order
    (mining then infer share [0, 0.5] and [0.5, 1], as the SDK's 'tmi' order does)."""

    path: str
    task_id: str
    tasks: Sequence[str] = ("training",)
    min_interval_s: float = 1.0
    enabled: bool = True  # False in the non-zero ranks of a multi-process run: rank 0 reports
    listener: Optional[Callable[[float], None]] = None  # sees every overall percent written (a progress bar)
    _last_write: float = field(default=0.0, init=False)
    _last_percent: float = field(default=-1.0, init=False)
    _ranges: Dict[str, Tuple[float, float]] = field(default_factory=dict, init=False)
    # Detail lines kept under the record from now on (e.g. the unreadable candidates skipped).
    notes: List[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        n = max(len(self.tasks), 1)
        self._ranges = {t: (i / n, (i + 1) / n) for i, t in enumerate(self.tasks)}

    def overall(self, task: str, percent: float) -> float:
        lo, hi = self._ranges.get(task, (0.0, 1.0))
        return lo + (hi - lo) * min(max(percent, 0.0), 1.0)

    def update(self, task: str, percent: float, *, force: bool = False) -> None:
        """Report ``percent`` in [0, 1] of ``task``; throttled unless forced. Never goes backwards."""
        if not self.enabled:
            return
        value = max(self.overall(task, percent), self._last_percent)
        now = time.time()
        if not force and now - self._last_write < self.min_interval_s and value - self._last_percent < 0.05:
            return
        # The platform notices a change only when the timestamp changes.
        ts = max(now, self._last_write + 1e-6)
        atomic_write_text(self.path, format_monitor(self.task_id, value, STATE_RUNNING, details=self.notes,
                                                    timestamp=ts))
        self._last_write, self._last_percent = ts, value
        if self.listener is not None:
            self.listener(value)

    def note(self, lines: Sequence[str]) -> None:
        """Keep ``lines`` as detail lines of every record written from now on (shown by the platform)."""
        self.notes.extend(lines)

    def start(self) -> None:
        self._last_percent = -1.0
        self.update(self.tasks[0] if self.tasks else "training", 0.0, force=True)

    def finish(self) -> None:
        if not self.enabled:
            return
        ts = max(time.time(), self._last_write + 1e-6)
        atomic_write_text(self.path, format_monitor(self.task_id, 1.0, STATE_RUNNING, details=self.notes,
                                                    timestamp=ts))
        self._last_write, self._last_percent = ts, 1.0
        if self.listener is not None:
            self.listener(1.0)

    def fail(self, code: int, message: str, details: Sequence[str] = ()) -> None:
        if not self.enabled:
            return
        ts = max(time.time(), self._last_write + 1e-6)
        atomic_write_text(self.path, format_monitor(self.task_id, 1.0, STATE_ERROR, code, message,
                                                    list(self.notes) + list(details), timestamp=ts))
        self._last_write = ts


def parse_monitor(text: str) -> Dict[str, object]:
    """Parse a monitor record the way the platform does (≥ 4 TAB-separated fields on line 1)."""
    lines = text.splitlines()
    if not lines:
        raise ValueError("empty monitor file")
    parts = lines[0].split("\t")
    if len(parts) < 4:
        raise ValueError(f"expected >= 4 tab-separated fields, got {len(parts)}")
    out: Dict[str, object] = {"task_id": parts[0], "timestamp": float(parts[1]),
                              "percent": float(parts[2]), "state": int(parts[3])}
    if len(parts) > 4:
        out["return_code"] = int(parts[4])
    if len(parts) > 5:
        out["message"] = parts[5]
    out["details"] = lines[1:]
    return out
