"""executor.images: format by content, header size, full decode to HxWx3 uint8 RGB."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from executor.errors import ErrorCode, YmirError
from executor.images import image_size, load_image, sniff_format


def _rgb(w: int = 5, h: int = 3) -> np.ndarray:
    # distinct value per pixel and channel so any transpose/flip shows up
    a = np.arange(h * w * 3, dtype=np.uint16).reshape(h, w, 3) * 7 % 256
    return a.astype(np.uint8)


def _save(path, arr_or_img, fmt: str, **kw) -> str:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(str(path), format=fmt, **kw)
    return str(path)


def _check(exc_info, code: ErrorCode, *needles: str) -> None:
    err = exc_info.value
    assert isinstance(err, YmirError)
    assert err.code == code
    text = str(err)
    assert "\n" not in text
    for n in needles:
        assert n in text, (n, text)


# --------------------------------------------------------------------------- valid inputs

@pytest.mark.parametrize("fmt,pil,name", [
    ("jpeg", "JPEG", "a.png"), ("png", "PNG", "b.jpg"), ("bmp", "BMP", "c.unknown"),
    ("gif", "GIF", "d.jpg"), ("tiff", "TIFF", "e"), ("webp", "WEBP", "f.bmp"),
])
def test_sniff_format_by_content_not_extension(tmp_path, fmt, pil, name):
    path = _save(tmp_path / name, _rgb(), pil)
    assert sniff_format(path) == fmt
    assert image_size(path) == (5, 3)
    arr = load_image(path)
    assert arr.shape == (3, 5, 3) and arr.dtype == np.uint8


def test_png_bmp_tiff_exact_pixels(tmp_path):
    src = _rgb(7, 4)
    for fmt, name in (("PNG", "x.jpg"), ("BMP", "x.bmp"), ("TIFF", "x.tif")):
        got = load_image(_save(tmp_path / name, src, fmt))
        assert np.array_equal(got, src), fmt


def test_jpeg_close_to_source(tmp_path):
    src = np.full((8, 16, 3), (200, 40, 90), dtype=np.uint8)
    got = load_image(_save(tmp_path / "a.jpg", src, "JPEG", quality=100))
    assert got.shape == (8, 16, 3)
    assert np.abs(got.astype(int) - src.astype(int)).max() <= 3


def test_grayscale_palette_rgba_converted(tmp_path):
    gray = np.array([[0, 10, 255], [128, 1, 2]], dtype=np.uint8)
    got = load_image(_save(tmp_path / "g.png", Image.fromarray(gray, "L"), "PNG"))
    assert np.array_equal(got, np.stack([gray] * 3, axis=-1))

    pal = Image.new("P", (3, 2))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2, 2, 1, 0])
    got = load_image(_save(tmp_path / "p.png", pal, "PNG"))
    exp = np.array([[[0, 0, 0], [255, 0, 0], [0, 255, 0]],
                    [[0, 255, 0], [255, 0, 0], [0, 0, 0]]], dtype=np.uint8)
    assert np.array_equal(got, exp)

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0
    got = load_image(_save(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"), "PNG"))
    assert np.array_equal(got, np.full((2, 2, 3), (10, 20, 30), dtype=np.uint8))  # raw colour kept


def test_16bit_gray_scaled_not_clipped(tmp_path):
    a16 = np.array([[0, 65535], [257 * 100, 257 * 3]], dtype=np.uint16)
    path = _save(tmp_path / "g16.png", Image.fromarray(a16), "PNG")
    got = load_image(path)
    exp = np.array([[0, 255], [100, 3]], dtype=np.uint8)
    assert got.dtype == np.uint8
    assert np.array_equal(got, np.stack([exp] * 3, axis=-1))


def test_no_exif_rotation(tmp_path):
    # Orientation 6 would rotate 90 degrees; annotations are on raw pixels so size stays WxH as stored.
    img = Image.fromarray(np.zeros((4, 10, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / "rot.jpg")
    img.save(path, format="JPEG", exif=exif.tobytes())
    assert Image.open(path).getexif().get(0x0112) == 6
    assert image_size(path) == (10, 4)
    assert load_image(path).shape == (4, 10, 3)


def test_truncated_images_flag_stays_false():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --------------------------------------------------------------------------- malformed inputs

def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(YmirError) as e:
        sniff_format(str(path))
    _check(e, ErrorCode.IMAGE_FORMAT, "empty.jpg", "empty")


def test_text_file_with_image_extension(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, not an image\n")
    with pytest.raises(YmirError) as e:
        load_image(str(path))
    _check(e, ErrorCode.IMAGE_FORMAT, "notes.jpg", "unknown image format")


def test_missing_image_file(tmp_path):
    with pytest.raises(YmirError) as e:
        image_size(str(tmp_path / "gone.png"))
    _check(e, ErrorCode.IMAGE_FORMAT, "gone.png")


def test_truncated_jpeg_fails_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert image_size(str(path)) == (64, 64)  # the header is intact
    with pytest.raises(YmirError) as e:
        load_image(str(path))
    _check(e, ErrorCode.IMAGE_FORMAT, "cut.jpg", "decode")


def test_truncated_png_fails_full_decode(tmp_path):
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) - 400])
    with pytest.raises(YmirError) as e:
        load_image(str(path))
    _check(e, ErrorCode.IMAGE_FORMAT, "cut.png")


def test_png_magic_with_garbage_header(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage-not-an-IHDR-chunk" * 3)
    with pytest.raises(YmirError) as e:
        image_size(str(path))
    _check(e, ErrorCode.IMAGE_FORMAT, "bad.png", "png")


def test_unsupported_format_by_content(tmp_path):
    path = tmp_path / "img.jpg"
    path.write_bytes(b"%PDF-1.4\n" + b"\x00" * 32)
    with pytest.raises(YmirError) as e:
        sniff_format(str(path))
    _check(e, ErrorCode.IMAGE_FORMAT, "img.jpg", "unknown image format")
