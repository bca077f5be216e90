"""Image decoding by content.

YMIR names assets ``<sha1>.<ext>`` with ext from a type guess (``jpg|png|bmp|unknown``),
and single-image infer keeps the upload's name, so the extension is never trusted:
the format comes from the magic bytes and PIL is told to use only that decoder.

Every failure is a :class:`~executor.errors.YmirError` with code 300003 naming the file.

**Orientation: the stored pixels, never the EXIF orientation tag.** YMIR itself works in that
frame: it records an asset's width and height from PIL's ``Image.open(...).size`` (the stored
size), copies assets byte for byte on import and export, writes ark / voc / coco coordinates
and mask sizes in it, and applies no orientation anywhere. So every reader, loader, size probe
and writer of this package uses the stored pixels too, training pipelines included (mmcv's
loader would apply the tag, :class:`ymir_tasks.common.loading.YmirLoadImage` replaces it).
``ImageFile.LOAD_TRUNCATED_IMAGES`` is deliberately left False: a truncated asset must
fail loudly instead of training on grey padding.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image

from .errors import image_error

# format name -> PIL decoder name
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "gif": "GIF", "tiff": "TIFF", "webp": "WEBP"}

_HEADER_BYTES = 16

# Decoded pixels an image may have (10 000 x 10 000). Checked from the header before any pixel is
# decoded, so a decompression bomb (a few KB of PNG that would decode to gigabytes) costs nothing;
# PIL's own guard is set to the same limit so it neither warns below it nor lets more through.
MAX_IMAGE_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def _format_from_header(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    # classic TIFF and BigTIFF, little and big endian
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return ""


def sniff_format(path: str) -> str:
    """The image format of ``path`` from its magic bytes: jpeg, png, bmp, gif, tiff or webp."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
    except OSError as e:
        raise image_error(f"cannot read image: {e.strerror or e}", file=path) from None
    if not head:
        raise image_error("image file is empty", file=path)
    fmt = _format_from_header(head)
    if not fmt:
        raise image_error(f"unsupported or unknown image format (first bytes {head[:8].hex()})", file=path)
    return fmt


def _open(path: str) -> Image.Image:
    fmt = sniff_format(path)
    try:
        # formats=[...] stops PIL from falling back to other decoders by extension/guess.
        img = Image.open(path, formats=[_PIL_FORMATS[fmt]])
    except MemoryError:
        raise
    except Image.DecompressionBombError:
        raise image_error(f"too large to decode (more than {MAX_IMAGE_PIXELS} pixels)", file=path) from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error ...
        raise image_error(f"cannot decode {fmt} header: {_reason(e)}", file=path) from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        img.close()
        raise image_error(f"too large to decode: {w}x{h} is more than {MAX_IMAGE_PIXELS} pixels", file=path)
    return img


def _reason(e: BaseException) -> str:
    text = str(e).replace("\n", " ").strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) read from the header only (no pixel decode).

    The raw stored size: EXIF orientation is ignored, as in :func:`load_image` (see the module
    docstring for why).
    """
    img = _open(path)
    with img:
        w, h = img.size
    if w <= 0 or h <= 0:
        raise image_error(f"image has an empty size {w}x{h}", file=path)
    return int(w), int(h)


def load_image(path: str) -> np.ndarray:
    """Fully decode ``path`` to an ``HxWx3`` uint8 RGB array.

    No EXIF rotation is applied: YMIR annotations are in the stored (raw) pixel
    frame, so rotating would misalign every box and mask.
    Multi-frame GIF/TIFF: the first frame. Alpha is dropped (not composited),
    keeping the raw colour values.
    """
    img = _open(path)
    with img:
        try:
            img.load()  # full decode: truncated/corrupt data raises here
            arr = _to_rgb(img)
        except MemoryError:
            raise
        except Exception as e:
            raise image_error(f"cannot decode image data: {_reason(e)}", file=path) from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise image_error(f"decoded image has unexpected shape {arr.shape}", file=path)
    return arr


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # PIL's convert('L') clips 16/32-bit values instead of scaling them.
        a = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and a.size and a.max() > 255):
            a = a / 257.0  # 0..65535 -> 0..255
        elif mode == "F" and a.size and a.max() <= 1.0:
            a = a * 255.0
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([g, g, g], axis=-1))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when converting palette+transparency straight to RGB
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))



def check_image(path: str) -> Tuple[int, int]:
    """(width, height) of an image after decoding all of its data, or 300003 naming the file.

    Training checks every image this way before it starts, with the readers inference and
    mining use: a truncated JPEG would otherwise be trained on silently (decoders pad it with
    grey) and a broken PNG would fail mid-run. JPEGs decode at 1/8 scale (DCT scaling): every
    byte of the entropy-coded data is still read, at a fraction of the cost.
    """
    img = _open(path)
    with img:
        w, h = img.size
        try:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, w // 8), max(1, h // 8)))
            img.load()
        except MemoryError:
            raise
        except Exception as e:
            raise image_error(f"cannot decode image data: {_reason(e)}", file=path) from None
    if w <= 0 or h <= 0:
        raise image_error(f"image has an empty size {w}x{h}", file=path)
    return int(w), int(h)


def check_images(paths: Sequence[str], workers: int = 0) -> List[Tuple[int, int]]:
    """:func:`check_image` of every path, in order, in ``workers`` processes (0: this one)."""
    if workers <= 0 or len(paths) < 64:
        return [check_image(p) for p in paths]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(check_image, paths, chunksize=32)
