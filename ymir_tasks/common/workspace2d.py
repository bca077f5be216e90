"""A 2D kind's sample workspace from its scenes, or a benchmark pool (kept apart from
:mod:`.scenes2d`, which the benchmark's rendering builds on)."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from executor.registry import TaskKind

from .benchmark import benchmark_samples, get_profile
from .scenes2d import Sample, write_2d_workspace


def make_2d_workspace(directory: str, kind: TaskKind, task: str, *, classes: Sequence[str], profile_classes: str,
                      make: Callable[..., Sample], formats: Tuple[str, str], output: str, size: Tuple[int, int],
                      annotation: str, seed: int = 0, num_train: int = 48, num_val: int = 16,
                      num_candidates: int = 24, protocol: str = "1.1.0", overrides: Optional[Dict[str, Any]] = None,
                      profile: str = "default") -> Dict[str, Any]:
    """A 2D kind's sample workspace: ``make(rng, fmt=...)`` scenes of ``classes``, every fifth image
    in ``formats[1]`` (readers must decode by content), or a benchmark pool of ``profile`` (its
    ``profile_classes``, rendered as ``output`` 'boxes' or 'mask' at ``size``)."""
    rng = np.random.RandomState(seed)
    class_names = list(classes)
    bench = None
    if profile != "default":
        bench = get_profile(profile)
        class_names = list(getattr(bench, profile_classes))

    def batch(n: int) -> List[Sample]:
        if bench is not None:
            return benchmark_samples(output, rng, n, bench, class_names, size)
        return [make(rng, fmt=formats[1] if i % 5 == 4 else formats[0]) for i in range(n)]

    return write_2d_workspace(directory, kind, task, class_names, batch, annotation, seed=seed, num_train=num_train,
                              num_val=num_val, num_candidates=num_candidates, protocol=protocol,
                              overrides=overrides, profile=profile)
