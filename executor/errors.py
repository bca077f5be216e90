"""YMIR error codes and the one exception type that carries them.

The entrypoint turns a :class:`YmirError` into monitor state 4 with the code,
one clear log line and a non-zero exit (see :mod:`executor.runner`).
"""
from __future__ import annotations

import re
from enum import IntEnum
from typing import Optional


class ErrorCode(IntEnum):
    """Executor return codes as the platform documents them (SDK ``code.py``)."""

    CONFIG = 300001  # config.yaml / env.yaml / hyper-parameter error
    DATASET = 300002  # index files, annotations, class names
    IMAGE_FORMAT = 300003  # an image that cannot be decoded
    MODEL = 300004  # missing or unusable weights
    OBJECT_TYPE = 300005  # task kind not supported by this image
    CUDA_DRIVER = 300101
    NO_GPU = 300102
    OUT_OF_MEMORY = 300103
    NAN_LOSS = 300201
    NETWORK = 300301


class YmirError(Exception):
    """An error with a YMIR code, naming the file and field it is about.

    ``str(err)`` is the one-line message written to the log and monitor.txt.
    """

    def __init__(self, code: ErrorCode, message: Optional[str] = None, *, file: Optional[str] = None,
                 field: Optional[str] = None, line: Optional[int] = None) -> None:
        if message is None:
            # torch's DataLoader re-raises a worker's exception as ``type(exc)(formatted traceback)``
            # (``ExceptionWrapper.reraise``); the traceback's last line holds our one-line message,
            # so the code and the message survive any loader, training ones included.
            code, message = _from_worker_text(code)
        self.code = ErrorCode(code)
        self.message = message
        self.file = file
        self.field = field
        self.line = line
        super().__init__(self.one_line())

    @classmethod
    def from_record(cls, code: int, text: str) -> "YmirError":
        """The error a monitor record reports (its message is already a one-line message)."""
        return cls(ErrorCode(code), re.sub(r"^\[\d{6} [a-z_]+\] ", "", text))

    def __reduce__(self):
        # Picklable, so an error raised in a DataLoader worker reaches the main process intact.
        return (_rebuild, (int(self.code), self.message, self.file, self.field, self.line))

    def one_line(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}" + (f":{self.line}" if self.line else ""))
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = f"[{int(self.code)} {self.code.name.lower()}] "
        text = self.message.replace("\n", " ").strip()
        return prefix + (", ".join(where) + ": " if where else "") + text


_ONE_LINE = re.compile(r"YmirError: \[(\d{6}) [a-z_]+\] (.*)$")


def _from_worker_text(text: object) -> "tuple[int, str]":
    if isinstance(text, str):
        for line in reversed(text.strip().splitlines()):
            m = _ONE_LINE.search(line.strip())
            if m:
                return int(m.group(1)), m.group(2)
    raise TypeError("YmirError needs a code and a message")


def _rebuild(code: int, message: str, file: Optional[str], field: Optional[str], line: Optional[int]) -> YmirError:
    return YmirError(ErrorCode(code), message, file=file, field=field, line=line)


def config_error(message: str, **kw) -> YmirError:
    return YmirError(ErrorCode.CONFIG, message, **kw)


def dataset_error(message: str, **kw) -> YmirError:
    return YmirError(ErrorCode.DATASET, message, **kw)


def image_error(message: str, **kw) -> YmirError:
    return YmirError(ErrorCode.IMAGE_FORMAT, message, **kw)


def model_error(message: str, **kw) -> YmirError:
    return YmirError(ErrorCode.MODEL, message, **kw)
