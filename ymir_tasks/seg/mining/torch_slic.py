"""SLIC in torch, vectorised over the pixels: the same code on the CPU and on the GPU.

OpenCV's SLIC visits each centre's 2S x 2S window in a loop; here each pixel compares itself with
the centres of the 3 x 3 grid cells around its own cell (the same candidates: a centre stays
within about a cell of where it started) in nine whole-image tensor steps, and the centres move
by one ``index_add_`` per iteration. The distance is SLIC's: Lab colour plus ``compactness / S``
times the spatial distance, S the grid step. No connectivity pass: a label's pixels stay within
its 3 x 3 cells, and mining only averages scores over a label's pixels.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .superpixels import _grid

# Lab as OpenCV's 8-bit conversion gives it (L scaled to 0..255): SLIC's compactness 10 on L in
# 0..100 is about 25 here.
DEFAULT_COMPACTNESS = 25.0
DEFAULT_ITERATIONS = 5


def torch_slic(rgb: np.ndarray, k: int, iterations: int = DEFAULT_ITERATIONS,
               compactness: float = DEFAULT_COMPACTNESS, device: Optional[str] = None) -> np.ndarray:
    """HxW int32 labels, at most ``k`` of them (a rows x cols grid), for an HxWx3 uint8 RGB image."""
    import cv2
    import torch

    h, w = rgb.shape[:2]
    rows, cols = _grid(h, w, max(1, int(k)))
    rows, cols = min(rows, h), min(cols, w)  # no empty grid cells on a tiny image
    lab = cv2.cvtColor(cv2.GaussianBlur(np.ascontiguousarray(rgb[:, :, ::-1]), (3, 3), 0), cv2.COLOR_BGR2LAB)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with torch.no_grad():
        step = math.sqrt(h * w / (rows * cols))
        weight = compactness / step
        ys = torch.arange(h, device=dev, dtype=torch.float32)
        xs = torch.arange(w, device=dev, dtype=torch.float32)
        feat = torch.empty((h * w, 5), device=dev, dtype=torch.float32)
        feat[:, :3] = torch.from_numpy(lab).to(dev).reshape(-1, 3).float()
        feat[:, 3] = (ys[:, None] * weight).expand(h, w).reshape(-1)
        feat[:, 4] = (xs[None, :] * weight).expand(h, w).reshape(-1)
        # each pixel's own cell, and the centres: cell centres to start with
        cy = torch.clamp((ys * rows / h).long(), max=rows - 1)
        cx = torch.clamp((xs * cols / w).long(), max=cols - 1)
        n = rows * cols
        cell = (cy[:, None] * cols + cx[None, :]).reshape(-1)
        counts = torch.bincount(cell, minlength=n).clamp_min(1).float()[:, None]
        centres = torch.zeros((n, 5), device=dev).index_add_(0, cell, feat) / counts
        neighbours = []  # the 3 x 3 cells around each pixel's cell, clamped at the borders
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny = torch.clamp(cy + dy, 0, rows - 1)
                nx = torch.clamp(cx + dx, 0, cols - 1)
                neighbours.append((ny[:, None] * cols + nx[None, :]).reshape(-1))
        labels = cell
        for _ in range(max(1, int(iterations))):
            best = torch.full((h * w,), float("inf"), device=dev)
            for cand in neighbours:
                d = ((feat - centres[cand]) ** 2).sum(1)
                closer = d < best
                best = torch.where(closer, d, best)
                labels = torch.where(closer, cand, labels)
            counts = torch.bincount(labels, minlength=n).float()[:, None]
            sums = torch.zeros((n, 5), device=dev).index_add_(0, labels, feat)
            centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        # contiguous 0..m-1 (a centre may end with no pixel)
        used = torch.bincount(labels, minlength=n) > 0
        remap = torch.cumsum(used.long(), 0) - 1
        out = remap[labels].reshape(h, w).to(torch.int32)
    return out.cpu().numpy()
