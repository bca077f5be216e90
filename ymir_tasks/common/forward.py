"""Forward passes over a loader batch, sized for the device.

On a GPU the whole batch (``samples_per_gpu``) is one pass. On a CPU a pass over more than about
one 640x640 image's pixels runs slower per image (the activations no longer fit in the caches):
measured on 2 cores (``bench/inferencers.py`` and the figures in the README), RTMDet-tiny at
640 px in passes of 16 images is 1.5x slower than one at a time, at 320 px 4 per pass is the
fastest, the tiny preset at 160 px gains up to 16 per pass (2.5x over one), and Fast-SCNN on
683x512 inputs in passes of 16 is 3.2x slower than one at a time.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

CPU_PIXELS_PER_PASS = 640 * 640


def pass_ranges(shapes: Sequence[Tuple[int, int]], on_gpu: bool) -> List[Tuple[int, int]]:
    """``[start, stop)`` of each forward pass over network inputs of these (H, W): consecutive
    images up to ``CPU_PIXELS_PER_PASS`` pixels on a CPU (at least one), all of them on a GPU."""
    if on_gpu or not shapes:
        return [(0, len(shapes))] if shapes else []
    out, start, pixels = [], 0, 0
    for i, (h, w) in enumerate(shapes):
        if i > start and pixels + h * w > CPU_PIXELS_PER_PASS:
            out.append((start, i))
            start, pixels = i, 0
        pixels += h * w
    out.append((start, len(shapes)))
    return out


def on_gpu(model) -> bool:
    return next(model.parameters()).is_cuda


def test_step_in_passes(model, data: Sequence[Dict[str, Any]]) -> List[Any]:
    """``model.test_step`` over pipeline outputs (``inputs`` CxHxW, ``data_samples``), in passes
    sized for the device; results in input order."""
    results: List[Any] = []
    for a, b in pass_ranges([tuple(d["inputs"].shape[-2:]) for d in data], on_gpu(model)):
        results += model.test_step(dict(inputs=[d["inputs"] for d in data[a:b]],
                                        data_samples=[d["data_samples"] for d in data[a:b]]))
    return results
