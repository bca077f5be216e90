"""Pictures of each evaluation: precision-recall curves per class, AP against the IoU threshold,
a confusion matrix, the predictions on a fixed handful of val images.

A kind's val metric draws them (``offer``) when it computes its figures; the stage writer takes
them (``take``) and writes each as a stage attachment and into TensorBoard at the evaluation's
iteration, so one can scroll through how the model improved.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import runtime
from .previews import tensorboard_images

SHOWN_VAL_IMAGES = 4  # the fixed handful of val images drawn at every evaluation
_KEY = "evaluation_pictures"


def offer(pictures: Mapping[str, np.ndarray]) -> None:
    """Leave this evaluation's pictures (name -> BGR) for the stage writer."""
    runtime.task_context().setdefault(_KEY, {}).update(pictures)


def take() -> Dict[str, np.ndarray]:
    return runtime.task_context().pop(_KEY, {}) or {}


def _figure(w: float = 6.4, h: float = 4.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h), dpi=100)
    return plt, fig, ax


def _to_bgr(plt, fig) -> np.ndarray:
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[:, :, :3][:, :, ::-1].copy()
    plt.close(fig)
    return img


def pr_curves(precision: Mapping[str, Sequence[float]], title: str) -> np.ndarray:
    """Each class's precision over COCO's 101 recall points (-1: no ground truth, left out)."""
    plt, fig, ax = _figure()
    recall = np.linspace(0, 1, 101)
    for name, prec in precision.items():
        p = np.asarray(prec, float)
        if (p > -1).any():
            ap = float(p[p > -1].mean())
            ax.plot(recall[p > -1], p[p > -1], label=f"{name} (AP {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8)
    return _to_bgr(plt, fig)


def ap_by_iou(series: Mapping[str, Mapping[float, float]], title: str) -> np.ndarray:
    """AP against the IoU threshold, one line per series (box, mask …)."""
    plt, fig, ax = _figure()
    for name, points in series.items():
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=name)
    ax.set(xlabel="IoU threshold", ylabel="AP", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _to_bgr(plt, fig)


def confusion(matrix: np.ndarray, class_names: Sequence[str], title: str) -> np.ndarray:
    """Rows: ground truth, columns: prediction, each row normalised (the share of its pixels)."""
    m = np.asarray(matrix, float)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(class_names)
    plt, fig, ax = _figure(max(4.0, 0.8 * n + 2.5), max(3.5, 0.7 * n + 2))
    im = ax.imshow(rows, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="ground truth", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _to_bgr(plt, fig)


def side_by_side(pictures: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Pictures in one row, top-aligned, on white."""
    h = max(p.shape[0] for p in pictures)
    w = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    row = np.full((h, w, 3), 255, np.uint8)
    x = 0
    for p in pictures:
        row[:p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return row


def shown_ids(ids: Sequence[int], n: int = SHOWN_VAL_IMAGES) -> List[int]:
    """The fixed handful: the first ``n`` val images by id, the same at every evaluation."""
    return sorted(ids)[:n]


def write(stage_dir: str, tensorboard_dir: str, iteration: int,
          pictures: Mapping[str, np.ndarray]) -> List[str]:
    """Each picture as ``<stage_dir>/<name>.png`` and as a TensorBoard image at ``iteration``."""
    import cv2

    files = []
    for name, pic in pictures.items():
        path = os.path.join(stage_dir, f"{name}.png")
        cv2.imwrite(path + ".tmp.png", pic)
        os.replace(path + ".tmp.png", path)
        files.append(path)
    tensorboard_images(tensorboard_dir, "evaluation", {f"evaluation/{n}": p for n, p in pictures.items()}, iteration)
    return files


def _fitted(items: Sequence[Tuple[str, Any]], side: int) -> Iterator[Tuple[str, Any, np.ndarray, float]]:
    """(path, what to draw, the image fitted to ``side``, its scale) of each readable image."""
    import cv2

    from .previews import fit

    for path, payload in items:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is not None:
            yield (path, payload, *fit(img, side))


def predictions_row(items: Sequence[Tuple[str, Dict[str, np.ndarray]]], class_names: Sequence[str],
                    conf: float, side: int = 320) -> Optional[np.ndarray]:
    """The val images with their ground-truth boxes (thin white, ``truth``) and predicted boxes
    (and masks) from ``conf``, in one row."""
    import cv2

    from .previews import banner, draw_boxes, score_colour

    cells = []
    for path, pred, pic, scale in _fitted(items, side):
        for x1, y1, x2, y2 in (np.asarray(pred.get("truth", np.zeros((0, 4))), float) * scale).round().astype(int):
            cv2.rectangle(pic, (int(x1), int(y1)), (int(x2), int(y2)), (255, 255, 255), 1)
        keep = np.asarray(pred["scores"]) >= conf
        masks = pred["masks"][keep] if pred.get("masks") is not None else None
        draw_boxes(pic, np.asarray(pred["boxes"])[keep], np.asarray(pred["labels"])[keep],
                   np.asarray(pred["scores"])[keep], class_names, lambda s: score_colour(s, 0.5, conf), scale, masks)
        cells.append(banner(pic, [f"{os.path.basename(path)[:14]}: {int(keep.sum())} >= {conf:.2f}, "
                                  f"{len(pred.get('truth', []))} true"]))
    return side_by_side(cells) if cells else None


# a fixed colour per class id (BGR), the same in every picture of a run
PALETTE = np.array([[0, 0, 0], [60, 180, 75], [75, 25, 230], [200, 130, 0], [48, 130, 245], [180, 30, 145],
                    [240, 240, 70], [230, 50, 240], [60, 245, 210], [190, 190, 250], [128, 128, 0]], np.uint8)


def label_maps_row(items: Sequence[Tuple[str, np.ndarray]], class_names: Sequence[str],
                   side: int = 320, clear: Sequence[str] = ("ymir_background",)) -> Optional[np.ndarray]:
    """The val images with their predicted class map tinted over them (the learnt background
    left clear), in one row, over a legend of the class colours."""
    import cv2

    from .previews import banner

    cleared = np.asarray([i for i, n in enumerate(class_names) if n in clear], int)
    cells = []
    for path, labels, pic, _ in _fitted(items, side):
        lab = cv2.resize(labels, (pic.shape[1], pic.shape[0]), interpolation=cv2.INTER_NEAREST)
        on = ~np.isin(lab, cleared) & (lab < len(class_names))
        colours = PALETTE[lab % len(PALETTE)]
        pic[on] = (0.5 * pic[on] + 0.5 * colours[on]).astype(np.uint8)
        cells.append(banner(pic, [os.path.basename(path)[:40]]))
    if not cells:
        return None
    row = side_by_side(cells)
    legend = np.full((22, row.shape[1], 3), 255, np.uint8)
    x = 4
    for i, name in enumerate(class_names):
        if i in cleared:
            continue
        cv2.rectangle(legend, (x, 5), (x + 14, 17), tuple(int(c) for c in PALETTE[i % len(PALETTE)]), -1)
        cv2.putText(legend, name, (x + 18, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (40, 40, 40), 1, cv2.LINE_AA)
        x += 30 + 8 * len(name)
    return np.vstack([row, legend])
