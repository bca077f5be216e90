"""Pictures of what was mined: the first images of result.tsv with what made them uncertain.

Every kind draws its own evidence (regions to label, uncertain boxes and masks, a bird's-eye view
of a scan) with the helpers here; ``save_previews`` writes the pictures to
``/out/mining-previews/`` (``NN-<image stem>.png`` in result.tsv's order, and ``contact-sheet.png``)
and into the task's TensorBoard. Previews never fail a mining task: the result is written first.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from executor.report import CONTACT_SHEET, PREVIEW_DIR

log = logging.getLogger(__name__)

SIDE = 512  # longest side of a preview

# BGR: green certain, orange uncertain, red the least certain (boxes and masks by their score)
CERTAIN, UNSURE, DOUBT = (80, 200, 60), (0, 165, 255), (40, 40, 230)
REGION = (255, 60, 200)  # regions to label (seg)


def top_of_result(env, n: int) -> List[Tuple[str, float]]:
    """The first ``n`` lines of result.tsv as (path as in the candidate index, the miner's score);
    when the file holds rank scores of a diverse order, the miner's own from its side file."""
    from .diversity import SIDE_FILE

    if n <= 0:
        return []
    rows: List[Tuple[str, float]] = []
    with open(env.output.mining_result_file, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                path, score = line.rstrip("\n").split("\t")[:2]
                rows.append((path, float(score)))
            if len(rows) >= n:
                break
    side = os.path.join(env.output.root_dir, SIDE_FILE)
    if os.path.isfile(side):
        miner: Dict[str, float] = {}
        with open(side, encoding="utf-8") as f:
            for line in f:
                path, score = line.rstrip("\n").split("\t")[:2]
                miner[path] = float(score)
                if len(miner) >= n:
                    break
        rows = [(p, miner.get(p, s)) for p, s in rows]
    return rows


def fit(img: np.ndarray, side: int = SIDE) -> Tuple[np.ndarray, float]:
    """``img`` scaled so that its longest side is ``side``; returns (image, scale)."""
    import cv2

    h, w = img.shape[:2]
    scale = side / max(h, w)
    if abs(scale - 1.0) < 1e-3:
        return img.copy(), 1.0
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR), scale


def score_colour(score: float, certain: float, low: float) -> Tuple[int, int, int]:
    """Green from ``certain`` up, red at ``low`` and below, orange between."""
    if score >= certain:
        return CERTAIN
    return UNSURE if score >= (low + certain) / 2 else DOUBT


def draw_label(img: np.ndarray, text: str, x: int, y: int, colour: Tuple[int, int, int]) -> None:
    import cv2

    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    y = max(th + base + 1, y)
    cv2.rectangle(img, (x, y - th - base - 1), (x + tw + 2, y), colour, -1)
    cv2.putText(img, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)


def draw_boxes(img: np.ndarray, boxes: np.ndarray, labels: Sequence[int], scores: Sequence[float],
               class_names: Sequence[str], colour: Callable[[float], Tuple[int, int, int]],
               scale: float = 1.0, masks: Optional[np.ndarray] = None) -> np.ndarray:
    """Boxes (xyxy in the original pixels), their class and score, and masks tinted under them."""
    import cv2

    if masks is not None and len(masks):
        for m, s in zip(masks, scores):
            small = cv2.resize(m.astype(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
            img[small] = (0.55 * img[small] + 0.45 * np.asarray(colour(float(s)))).astype(np.uint8)
    order = np.argsort(np.asarray(scores, float))  # the least certain drawn last, on top
    for i in order:
        x1, y1, x2, y2 = (np.asarray(boxes[i], float) * scale).round().astype(int)
        c = colour(float(scores[i]))
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), c, 2)
        name = class_names[int(labels[i])] if 0 <= int(labels[i]) < len(class_names) else str(int(labels[i]))
        draw_label(img, f"{name} {float(scores[i]):.2f}", int(x1), int(y1), c)
    return img


def tint(img: np.ndarray, mask: np.ndarray, colour: Tuple[int, int, int], alpha: float = 0.5) -> np.ndarray:
    """``mask`` (any size; non-zero = on) tinted over ``img`` with its outline."""
    import cv2

    m = cv2.resize((mask > 0).astype(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    on = m > 0
    img[on] = ((1 - alpha) * img[on] + alpha * np.asarray(colour)).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, colour, 1)
    return img


def banner(img: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Text lines on a dark band above the picture."""
    import cv2

    band = np.full((16 * len(lines) + 6, img.shape[1], 3), 32, np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(band, text, (4, 16 * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([band, img])


def text_picture(text: str, title: str = "") -> np.ndarray:
    """A monospaced text block (a table) as a picture."""
    import cv2

    lines = ([title, ""] if title else []) + text.splitlines()
    width = max([len(ln) for ln in lines] + [20])
    img = np.full((18 * len(lines) + 12, 8 * width + 16, 3), 255, np.uint8)
    for k, ln in enumerate(lines):
        cv2.putText(img, ln, (8, 18 * (k + 1)), cv2.FONT_HERSHEY_PLAIN, 0.95, (30, 30, 30), 1, cv2.LINE_AA)
    return img


def contact_sheet(images: Sequence[np.ndarray], cols: int = 6, cell: int = 256) -> np.ndarray:
    """The pictures as thumbnails on a grid, in order, row by row."""
    import cv2

    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    sheet = np.full((rows * (cell + 4) + 4, cols * (cell + 4) + 4, 3), 255, np.uint8)
    for k, img in enumerate(images):
        h, w = img.shape[:2]
        s = cell / max(h, w)
        thumb = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        y, x = 4 + (k // cols) * (cell + 4), 4 + (k % cols) * (cell + 4)
        sheet[y:y + thumb.shape[0], x:x + thumb.shape[1]] = thumb
    return sheet


def caption(rank: int, path: str, score: float, algorithm: str, extra: str = "") -> List[str]:
    name = Path(path).name
    name = name if len(name) <= 24 else f"{name[:10]}..{name[-10:]}"
    line = f"#{rank + 1}  {name}  {algorithm} {score:.4g}"
    return [line, extra] if extra else [line]


def save_previews(ctx, pictures: Sequence[Tuple[str, np.ndarray]], tag: str = "mining") -> List[str]:
    """Write ``pictures`` ((image path, BGR picture) in result.tsv's order) and their contact
    sheet to /out/mining-previews and TensorBoard; returns the files written."""
    import cv2

    if not pictures:
        return []
    out_dir = os.path.join(ctx.env.output.root_dir, PREVIEW_DIR)
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for k, (path, pic) in enumerate(pictures):
        name = os.path.join(out_dir, f"{k + 1:02d}-{Path(path).stem}.png")
        cv2.imwrite(name, pic)
        files.append(name)
    sheet = contact_sheet([p for _, p in pictures])
    sheet_file = os.path.join(out_dir, CONTACT_SHEET)
    cv2.imwrite(sheet_file, sheet)
    files.append(sheet_file)
    tensorboard_images(ctx.env.output.tensorboard_dir, tag, {
        f"{tag}/contact sheet": sheet, **{f"{tag}/{k + 1:02d} {Path(path).name}": pic for k, (path, pic) in enumerate(pictures)}})
    log.info("mining: %d previews of result.tsv's first images in %s (contact sheet %s)", len(pictures), out_dir,
             CONTACT_SHEET)
    return files


def save_picture(ctx, name: str, pic: np.ndarray, tag: str) -> str:
    """One more picture of the mining task (e.g. the 3D bank table): /out/mining-previews/<name>.png
    and TensorBoard ``<tag>/<name>``."""
    import cv2

    out_dir = os.path.join(ctx.env.output.root_dir, PREVIEW_DIR)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.png")
    cv2.imwrite(path, pic)
    tensorboard_images(ctx.env.output.tensorboard_dir, tag, {f"{tag}/{name}": pic})
    return path


def tensorboard_images(tb_dir: str, suffix: str, pictures: Mapping[str, np.ndarray],
                       step: Optional[int] = None) -> None:
    """BGR ``pictures`` ({tag: picture}) into TensorBoard at ``step`` (best effort: without
    tensorboard the picture files are still there)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001
        return
    os.makedirs(tb_dir, exist_ok=True)
    with SummaryWriter(tb_dir, filename_suffix=f".{suffix}") as writer:
        for tag, pic in pictures.items():
            writer.add_image(tag, pic[:, :, ::-1].copy(), global_step=step, dataformats="HWC")


def previews_safely(ctx, make: Callable[[], Sequence[Tuple[str, np.ndarray]]], tag: str = "mining",
                    single: bool = False) -> None:
    """Draw and save the previews (``single``: each picture on its own, named by its key, no
    contact sheet); a failure here is logged and the mining result stands."""
    if int(ctx.cfg.params.get("preview_images", 0) or 0) <= 0:
        return
    try:
        if single:
            for name, pic in make():
                save_picture(ctx, name, pic, tag)
        else:
            save_previews(ctx, make(), tag)
    except Exception as err:  # noqa: BLE001 - pictures are a courtesy, result.tsv is the contract
        log.warning("mining previews not written: %s: %s", type(err).__name__, err)
