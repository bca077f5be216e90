"""Index files: ``train-index.tsv`` / ``val-index.tsv`` (image TAB annotation) and
``candidate-index.tsv`` (one image per line).

Split on TAB only (paths may hold spaces), skip blank lines, map ``/in`` paths
with the run's :class:`~executor.env.PathMap`. Readers stream: candidates of a
100 000-image pool are never all held at once unless the caller asks.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union, overload

from .env import PathMap
from .errors import dataset_error
from .records import IndexEntry

log = logging.getLogger(__name__)


def iter_index(path: str, *, columns: int, path_map: Optional[PathMap] = None,
               check_exists: bool = True) -> Iterator[IndexEntry]:
    """Yield the entries of an index file with ``columns`` = 2 (image, annotation), 1 (candidates)
    or 0 (candidates with an optional annotation).

    A candidate file whose lines carry a second column (older exports) is accepted:
    the first field is the image.
    """
    path_map = path_map or PathMap()
    if not path:
        raise dataset_error("index file path is empty in env.yaml", field="input")
    if not os.path.isfile(path):
        raise dataset_error("index file not found", file=path)
    try:
        f = open(path, "r", encoding="utf-8", newline="")
    except OSError as e:
        raise dataset_error(f"cannot open index file: {e.strerror}", file=path) from None
    with f:
        for lineno, raw in enumerate(_lines(f, path), start=1):
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            parts = text.split("\t")
            if columns == 2:
                if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                    raise dataset_error(
                        f"expected 'image<TAB>annotation', got {len(parts)} field(s): {text[:120]!r}",
                        file=path, line=lineno)
                image, ann = parts[0].strip(), parts[1].strip()
            else:
                image = parts[0].strip()
                # columns=0: candidates whose optional second field is kept (3D sparse labels).
                ann = parts[1].strip() or None if columns == 0 and len(parts) > 1 else None
                if not image:
                    raise dataset_error(f"empty image path: {text[:120]!r}", file=path, line=lineno)
            local_image = path_map(image)
            local_ann = path_map(ann) if ann else None
            if check_exists:
                if not os.path.isfile(local_image):
                    raise dataset_error(f"image not found: {image}", file=path, line=lineno)
                if local_ann is not None and not os.path.isfile(local_ann):
                    raise dataset_error(f"annotation not found: {ann}", file=path, line=lineno)
            yield IndexEntry(image=local_image, annotation=local_ann, line=lineno, raw_image=image,
                             raw_annotation=ann)


def _lines(f, path: str) -> Iterator[str]:
    try:
        for line in f:
            yield line
    except UnicodeDecodeError:
        raise dataset_error("index file is not UTF-8 text", file=path) from None


def read_index(path: str, *, path_map: Optional[PathMap] = None, check_exists: bool = True) -> List[IndexEntry]:
    """All (image, annotation) entries of a train/val index file."""
    return list(iter_index(path, columns=2, path_map=path_map, check_exists=check_exists))


def _first_occurrences(entries: Iterator[IndexEntry], path: str, warn: bool) -> Iterator[IndexEntry]:
    """Each candidate once, at its first line: a repeated row would otherwise give result.tsv the
    same path twice, and the platform, taking its first top-k lines, fewer distinct images than
    asked. A set of 8-byte digests keeps this cheap on pools of millions."""
    seen = set()
    repeated = 0
    first_repeat = None
    for e in entries:
        key = hashlib.blake2b(e.raw_image.encode("utf-8", "surrogateescape"), digest_size=8).digest()
        if key in seen:
            repeated += 1
            first_repeat = first_repeat or (e.line, e.raw_image)
            continue
        seen.add(key)
        yield e
    if repeated and warn:
        log.warning("%s: %d repeated candidate row(s) skipped, each image is used once (first repeat: line %d, %s)",
                    path, repeated, first_repeat[0], first_repeat[1])


def iter_candidates(path: str, *, path_map: Optional[PathMap] = None, check_exists: bool = True,
                    warn_repeats: bool = True) -> Iterator[IndexEntry]:
    """The distinct candidates of ``candidate-index.tsv`` in file order, streamed (a repeated row
    is skipped with a warning)."""
    return _first_occurrences(iter_index(path, columns=1, path_map=path_map, check_exists=check_exists), path,
                              warn_repeats)


class CandidateList(Sequence[Tuple]):
    """The distinct candidates of a candidate index, held as their index paths only (the strings
    result.tsv and infer-result.json name them by). ``pool[k]`` is ``(candidate number, local
    path)``, the local path made on access; a slice is a view, not a copy (``pool[rank::world]``
    is one process's share). 10^5 YMIR asset paths cost 12 MB so; their ``IndexEntry`` records
    (:func:`iter_candidates`) 38 MB, a list of ``(i, local path)`` tuples 22 MB more.

    ``labels`` (3D: ``scan<TAB>labels``, :func:`iter_candidates_with_labels`): the second column's
    index path or None per candidate; items are then ``(number, local path, local labels or None)``."""

    def __init__(self, raw: List[str], path_map: Optional[PathMap] = None,
                 ids: Optional[range] = None, labels: Optional[List[Optional[str]]] = None) -> None:
        self.raw = raw
        self.path_map = path_map or PathMap()
        self.ids = range(len(raw)) if ids is None else ids
        self.labels = labels

    @classmethod
    def read(cls, path: str, *, path_map: Optional[PathMap] = None, check_exists: bool = True,
             with_labels: bool = False) -> "CandidateList":
        if not with_labels:
            return cls([e.raw_image for e in iter_candidates(path, path_map=path_map, check_exists=check_exists)],
                       path_map)
        raw: List[str] = []
        labels: List[Optional[str]] = []
        for e in iter_candidates_with_labels(path, path_map=path_map, check_exists=check_exists):
            raw.append(e.raw_image)
            labels.append(e.raw_annotation)
        return cls(raw, path_map, labels=labels)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, k: int) -> Tuple: ...

    @overload
    def __getitem__(self, k: slice) -> "CandidateList": ...

    def __getitem__(self, k: Union[int, slice]):
        if isinstance(k, slice):
            return CandidateList(self.raw, self.path_map, self.ids[k], self.labels)
        i = self.ids[k]
        if self.labels is None:
            return i, self.local(i)
        return i, self.local(i), self.local_labels(i)

    def local(self, i: int) -> str:
        """The local path of candidate number ``i`` (not of the view's ``i``-th item)."""
        return self.path_map(self.raw[i])

    def local_labels(self, i: int) -> Optional[str]:
        """The local path of candidate number ``i``'s label file, None without one."""
        ann = self.labels[i] if self.labels is not None else None
        return self.path_map(ann) if ann else None


def iter_candidates_with_labels(path: str, *, path_map: Optional[PathMap] = None,
                                check_exists: bool = True, warn_repeats: bool = True) -> Iterator[IndexEntry]:
    """Distinct candidates with their optional second column (``scan<TAB>labels``, the 3D extension)."""
    return _first_occurrences(iter_index(path, columns=0, path_map=path_map, check_exists=check_exists), path,
                              warn_repeats)


def count_lines(path: str) -> int:
    """Non-blank lines of an index file (the count the platform and verifier use)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.strip())


def count_candidates(path: str) -> int:
    """Distinct candidates of a candidate index: the lines result.tsv and infer-result.json hold."""
    return sum(1 for _ in iter_candidates(path, check_exists=False, warn_repeats=False))
