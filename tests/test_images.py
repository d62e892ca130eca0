"""Reading every kind of file a photo folder holds, and writing results safely.

The corpus of unusual and broken files is generated here, in each test's own folder, so
what is tested is exactly what is described.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageFile

from impasto.errors import ImageError
from impasto.io import images
from impasto.io.images import MultiFrameWarning

# ---------------------------------------------------------------------------------------
# Corpus builders


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG start declaring any size, with no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def marked(width: int, height: int) -> Image.Image:
    """Blue, with a red square in the top-left corner of the stored pixels."""
    img = Image.new("RGB", (width, height), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 10))
    return img


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def frames(*colours: str, size: tuple[int, int] = (16, 12)) -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for colour in colours]


def animated(fmt: str) -> bytes:
    first, *rest = frames("red", "blue", "lime")
    return encode(first, fmt, save_all=True, append_images=rest, duration=100)


def pixel(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def refused(path: Path | str, *fragments: str) -> str:
    """Assert that both loaders refuse ``path`` with one line naming it; the message."""
    with pytest.raises(ImageError) as info:
        images.load_image(path)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{images._shown(path)}: "), message
    for fragment in fragments:
        assert fragment in message, message
    with pytest.raises(ImageError):
        images.load_alpha(path)
    return message


def loaded(path: Path, size: tuple[int, int]) -> Image.Image:
    img = images.load_image(path)
    assert img.mode == "RGB"
    assert img.size == size
    return img


# ---------------------------------------------------------------------------------------
# Refusals


def test_postscript_is_not_handed_to_ghostscript(tmp_path: Path) -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto showpage\n%%EOF\n"
    refused(write(tmp_path, "drawing.eps", eps), "not an image")


def test_truncated_images_are_not_loaded_partially_by_default() -> None:
    # If anything in the package switched this on, truncated files would load half-grey.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.jpg", "no such file")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "photos.png"
    folder.mkdir()
    refused(folder, "is a folder")


def test_empty_file(tmp_path: Path) -> None:
    refused(write(tmp_path, "empty.png", b""), "empty")


def test_text_renamed_png(tmp_path: Path) -> None:
    refused(write(tmp_path, "notes.png", b"shopping list\n- eggs\n"), "not an image")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    refused(pipe, "not a regular file")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.png", encode(noise(8, 8), "PNG"))
    path.chmod(0)
    try:
        refused(path, "permission denied")
    finally:
        path.chmod(0o600)


def test_open_refused_by_the_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The test above is skipped for root, so also simulate the refusal itself.
    path = write(tmp_path, "locked.png", encode(noise(8, 8), "PNG"))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "open", denied, raising=False)
    refused(path, "permission denied")


def test_name_with_newline_still_gives_one_line(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "two\nlines.png", b"garbage"))
    assert "two\\nlines.png" in message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated(tmp_path: Path, fmt: str, keep: float) -> None:
    data = encode(noise(64, 48), fmt)
    path = write(tmp_path, f"cut.{fmt.lower()}", data[: int(len(data) * keep)])
    refused(path)


def test_truncated_jpeg_missing_only_its_last_bytes(tmp_path: Path) -> None:
    data = encode(noise(64, 48), "JPEG")
    refused(write(tmp_path, "cut.jpg", data[:-3]), "truncated")


def test_corrupt_png_data(tmp_path: Path) -> None:
    data = bytearray(encode(noise(32, 32), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start : start + 40] = bytes(40)  # zeroes are not a valid zlib stream
    refused(write(tmp_path, "corrupt.png", bytes(data)))


def test_decompression_bomb_header(tmp_path: Path) -> None:
    # 100000 x 100000 declared in 57 bytes: refused from the header alone.
    refused(write(tmp_path, "bomb.png", png_header_only(100_000, 100_000)), "too large")


def test_max_pixels_is_configurable_and_replaces_pillows_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 million pixels: above Pillow's warning threshold, below its hard limit.
    path = write(tmp_path, "big.png", png_header_only(10_000, 10_000))
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused(path, "too large", "10000x10000", "50,000,000")
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_small_limit_refuses_ordinary_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "photo.jpg", encode(noise(40, 30), "JPEG"))
    monkeypatch.setattr(images, "MAX_PIXELS", 40 * 30 - 1)
    refused(path, "too large")
    monkeypatch.setattr(images, "MAX_PIXELS", 40 * 30)
    loaded(path, (40, 30))


# ---------------------------------------------------------------------------------------
# Modes and formats that load


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_grey_is_scaled_not_clipped(tmp_path: Path, fmt: str) -> None:
    values = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16)
    source = Image.fromarray(values)
    assert source.mode == "I;16"
    path = write(tmp_path, f"deep.{fmt.lower()}", encode(source, fmt))
    img = loaded(path, (4, 1))
    assert [pixel(img, (x, 0)) for x in range(4)] == [
        (0, 0, 0),
        (100, 100, 100),
        (128, 128, 128),
        (255, 255, 255),
    ]


def test_16bit_big_endian_tiff(tmp_path: Path) -> None:
    source = Image.new("I;16B", (3, 2))
    source.putpixel((0, 0), 32768)
    img = loaded(write(tmp_path, "be.tif", encode(source, "TIFF")), (3, 2))
    assert pixel(img, (0, 0)) == (128, 128, 128)
    assert pixel(img, (1, 0)) == (0, 0, 0)


def test_16bit_grey_png_with_transparent_value(tmp_path: Path) -> None:
    source = Image.fromarray(np.array([[1000, 65535], [65535, 65535]], dtype=np.uint16))
    path = write(tmp_path, "keyed.png", encode(source, "PNG", transparency=1000))
    rgb, alpha = images.load_image_and_alpha(path)
    assert alpha is not None
    assert alpha.tobytes() == bytes([0, 255, 255, 255])
    assert pixel(rgb, (0, 0)) == (255, 255, 255)  # filled with the visible mean


def test_32bit_integer_tiff(tmp_path: Path) -> None:
    in_16bit_range = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), "I")
    img = loaded(write(tmp_path, "i16.tif", encode(in_16bit_range, "TIFF")), (2, 1))
    assert [pixel(img, (x, 0))[0] for x in range(2)] == [0, 255]
    wider = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32), "I")
    img = loaded(write(tmp_path, "i32.tif", encode(wider, "TIFF")), (3, 1))
    assert [pixel(img, (x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # normalised
        ([0.0, 100.0, 255.0], [0, 100, 255]),  # 8-bit levels
        ([-5.0, 0.0, 5.0], [0, 128, 255]),  # anything else is stretched
        ([float("nan"), 0.25, float("inf")], [0, 64, 255]),
        ([7.0, 7.0, 7.0], [7, 7, 7]),
        ([1e6, 1e6, 1e6], [255, 255, 255]),
    ],
)
def test_float_tiff(tmp_path: Path, values: list[float], expected: list[int]) -> None:
    source = Image.fromarray(np.array([values], dtype=np.float32), "F")
    img = loaded(write(tmp_path, "float.tif", encode(source, "TIFF")), (3, 1))
    assert [pixel(img, (x, 0)) for x in range(3)] == [(v, v, v) for v in expected]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    source = Image.new("CMYK", (24, 16), (0, 255, 255, 0))  # pure red ink
    img = loaded(write(tmp_path, "print.jpg", encode(source, "JPEG", quality=95)), (24, 16))
    assert close(pixel(img, (12, 8)), (255, 0, 0))


def test_cmyk_tiff_uses_the_usual_formula(tmp_path: Path) -> None:
    source = Image.new("CMYK", (4, 4), (100, 50, 0, 60))
    img = loaded(write(tmp_path, "print.tif", encode(source, "TIFF")), (4, 4))
    # R = 255 · (1 − C) · (1 − K), and likewise for G and B.
    assert close(pixel(img, (0, 0)), (119, 157, 195), tolerance=1)


def test_embedded_srgb_profile(tmp_path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = Image.new("RGB", (8, 8), (200, 120, 40))
    path = write(tmp_path, "tagged.png", encode(source, "PNG", icc_profile=profile))
    assert close(pixel(loaded(path, (8, 8)), (0, 0)), (200, 120, 40), tolerance=2)


def test_broken_profile_is_ignored(tmp_path: Path) -> None:
    source = Image.new("RGB", (8, 8), (200, 120, 40))
    path = write(tmp_path, "badicc.png", encode(source, "PNG", icc_profile=b"not a profile"))
    assert pixel(loaded(path, (8, 8)), (0, 0)) == (200, 120, 40)


def test_profile_not_matching_the_mode_is_ignored(tmp_path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = Image.new("L", (8, 8), 90)
    path = write(tmp_path, "grey.png", encode(source, "PNG", icc_profile=profile))
    assert pixel(loaded(path, (8, 8)), (0, 0)) == (90, 90, 90)


def palette_image(size: tuple[int, int] = (20, 10)) -> Image.Image:
    """Left half palette entry 0 (black), right half entry 1 (red)."""
    img = Image.new("P", size, 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    img.paste(1, (size[0] // 2, 0, size[0], size[1]))
    return img


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparent_entry(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, f"sticker.{fmt.lower()}", encode(palette_image(), fmt, transparency=0))
    rgb, alpha = images.load_image_and_alpha(path)
    assert rgb.mode == "RGB" and rgb.size == (20, 10)
    assert alpha is not None and alpha.mode == "L" and alpha.size == (20, 10)
    assert alpha.getpixel((2, 5)) == 0 and alpha.getpixel((17, 5)) == 255
    # The hidden black does not leak in: transparent pixels take the visible mean, red.
    assert pixel(rgb, (2, 5)) == (255, 0, 0)
    assert images.load_alpha(path).tobytes() == alpha.tobytes()  # type: ignore[union-attr]


def test_palette_png_with_alpha_table(tmp_path: Path) -> None:
    img = palette_image()
    img.info["transparency"] = bytes([64, 255])  # partial alpha per entry, as from tRNS
    path = write(tmp_path, "halftrans.png", encode(img, "PNG"))
    alpha = images.load_alpha(path)
    assert alpha is not None
    assert alpha.getpixel((2, 5)) == 64 and alpha.getpixel((17, 5)) == 255


def test_palette_without_transparency(tmp_path: Path) -> None:
    path = write(tmp_path, "flat.png", encode(palette_image(), "PNG"))
    img = loaded(path, (20, 10))
    assert pixel(img, (2, 5)) == (0, 0, 0) and pixel(img, (17, 5)) == (255, 0, 0)
    assert images.load_alpha(path) is None


def test_rgb_png_with_colour_key(tmp_path: Path) -> None:
    source = marked(20, 20)
    path = write(tmp_path, "keyed.png", encode(source, "PNG", transparency=(255, 0, 0)))
    alpha = images.load_alpha(path)
    assert alpha is not None
    assert alpha.getpixel((2, 2)) == 0 and alpha.getpixel((15, 15)) == 255


def test_grey_with_alpha(tmp_path: Path) -> None:
    grey = Image.new("L", (16, 8), 200)
    alpha = Image.linear_gradient("L").resize((16, 8))
    source = Image.merge("LA", (grey, alpha))
    path = write(tmp_path, "la.png", encode(source, "PNG"))
    rgb, mask = images.load_image_and_alpha(path)
    assert mask is not None and mask.tobytes() == alpha.tobytes()
    # Grey throughout, so the mean fill is the same grey and nothing shows through.
    assert rgb.getcolors() == [(16 * 8, (200, 200, 200))]


def test_rgba_with_hidden_colours(tmp_path: Path) -> None:
    data = np.zeros((10, 20, 4), dtype=np.uint8)
    data[:, 10:] = (30, 60, 200, 255)  # visible right half
    data[:, :10] = (0, 0, 0, 0)  # transparent black left half
    data[:, 9] = (30, 60, 200, 128)  # a soft edge
    path = write(tmp_path, "cutout.png", encode(Image.fromarray(data, "RGBA"), "PNG"))
    rgb, alpha = images.load_image_and_alpha(path)
    assert alpha is not None and alpha.getpixel((0, 0)) == 0 and alpha.getpixel((9, 0)) == 128
    # No black outline: the transparent half and the edge are the subject's colour.
    assert {pixel(rgb, (x, 5)) for x in range(20)} == {(30, 60, 200)}


def test_fully_transparent_image_keeps_its_colours(tmp_path: Path) -> None:
    source = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    rgb, alpha = images.load_image_and_alpha(write(tmp_path, "ghost.png", encode(source, "PNG")))
    assert pixel(rgb, (0, 0)) == (10, 20, 30)
    assert alpha is not None and alpha.getextrema() == (0, 0)


def test_opaque_rgba_has_no_alpha(tmp_path: Path) -> None:
    source = Image.new("RGBA", (5, 4), (1, 2, 3, 255))
    path = write(tmp_path, "opaque.png", encode(source, "PNG"))
    assert pixel(loaded(path, (5, 4)), (0, 0)) == (1, 2, 3)
    assert images.load_alpha(path) is None


@pytest.mark.parametrize(
    ("mode", "fmt", "suffix"),
    [
        ("1", "PNG", "png"),
        ("1", "TIFF", "tif"),
        ("L", "JPEG", "jpg"),
        ("L", "PNG", "png"),
        ("RGB", "WEBP", "webp"),
        ("RGBA", "WEBP", "webp"),
        ("RGB", "TIFF", "tif"),
        ("RGB", "BMP", "bmp"),
        ("RGB", "GIF", "gif"),
        ("LAB", "TIFF", "tif"),
        ("YCbCr", "JPEG", "jpg"),
        ("RGB", "PPM", "ppm"),
        ("RGB", "TGA", "tga"),
        ("RGBA", "ICO", "ico"),  # stores 16x11 as its largest size, from 24x16
    ],
)
def test_formats_and_modes_load_as_rgb(tmp_path: Path, mode: str, fmt: str, suffix: str) -> None:
    source = noise(24, 16).convert(mode)
    path = write(tmp_path, f"image.{suffix}", encode(source, fmt))
    width, height = (16, 11) if fmt == "ICO" else (24, 16)
    img = loaded(path, (width, height))
    assert images.to_tensor(img).shape == (1, 3, height, width)


def test_lossless_formats_keep_the_pixels(tmp_path: Path) -> None:
    source = noise(24, 16)
    for fmt in ["PNG", "TIFF", "BMP", "PPM"]:
        img = loaded(write(tmp_path, f"x.{fmt.lower()}", encode(source, fmt)), (24, 16))
        assert img.tobytes() == source.tobytes(), fmt
    webp = encode(source, "WEBP", lossless=True)
    assert loaded(write(tmp_path, "x.webp", webp), (24, 16)).tobytes() == source.tobytes()


@pytest.mark.parametrize(("orientation", "corner"), [(6, "top-right"), (8, "bottom-left")])
def test_exif_orientation(tmp_path: Path, orientation: int, corner: str) -> None:
    exif = exif_with_orientation(orientation)
    path = write(tmp_path, "phone.jpg", encode(marked(40, 20), "JPEG", exif=exif, quality=95))
    img = loaded(path, (20, 40))  # stored landscape, shown portrait
    x, y = (20 - 3, 2) if corner == "top-right" else (2, 40 - 3)
    assert close(pixel(img, (x, y)), (255, 0, 0), tolerance=40)
    for other in [(2, 2), (20 - 3, 40 - 3)]:
        assert close(pixel(img, other), (0, 0, 255), tolerance=40)


def test_exif_orientation_turns_alpha_too(tmp_path: Path) -> None:
    source = marked(40, 20).convert("RGBA")
    source.putalpha(Image.new("L", (40, 20), 255))
    source.paste((0, 0, 0, 0), (0, 0, 10, 10))  # transparent top-left of the stored pixels
    path = write(tmp_path, "turned.png", encode(source, "PNG", exif=exif_with_orientation(6)))
    rgb, alpha = images.load_image_and_alpha(path)
    assert alpha is not None and rgb.size == alpha.size == (20, 40)
    assert alpha.getpixel((20 - 3, 2)) == 0 and alpha.getpixel((2, 2)) == 255


def test_garbage_exif_does_not_lose_the_picture(tmp_path: Path) -> None:
    data = encode(marked(40, 20), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + bytes(20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow may say the EXIF is corrupt; fair enough
        loaded(write(tmp_path, "odd.jpg", data), (40, 20))


@pytest.mark.parametrize(("fmt", "suffix"), [("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp")])
def test_animation_uses_first_frame_and_says_so(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = write(tmp_path, f"anim.{suffix}", animated(fmt))
    with pytest.warns(MultiFrameWarning, match="only the first") as record:
        img = loaded(path, (16, 12))
    assert str(path) in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller, not at impasto
    assert close(pixel(img, (8, 6)), (255, 0, 0))


def test_multipage_tiff_uses_first_page(tmp_path: Path) -> None:
    path = write(tmp_path, "scan.tif", animated("TIFF"))
    with pytest.warns(MultiFrameWarning):
        assert pixel(loaded(path, (16, 12)), (0, 0)) == (255, 0, 0)


def test_camera_mpo_is_not_called_an_animation(tmp_path: Path) -> None:
    first, second = frames("red", "blue")
    path = write(
        tmp_path, "camera.jpg", encode(first, "MPO", save_all=True, append_images=[second])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", MultiFrameWarning)
        assert close(pixel(loaded(path, (16, 12)), (0, 0)), (255, 0, 0))


def test_to_rgb_and_alpha_for_in_memory_images() -> None:
    deep = Image.fromarray(np.full((3, 5), 65535, dtype=np.uint16))
    rgb, alpha = images.to_rgb_and_alpha(deep)
    assert rgb.mode == "RGB" and alpha is None and pixel(rgb, (0, 0)) == (255, 255, 255)
    assert images.to_tensor(deep).max().item() == 255.0


def test_to_tensor_and_back() -> None:
    source = noise(7, 5)
    tensor = images.to_tensor(source)
    assert tensor.shape == (1, 3, 5, 7) and tensor.dtype.is_floating_point
    assert images.to_pil(tensor).tobytes() == source.tobytes()


# ---------------------------------------------------------------------------------------
# Alpha and writing


def test_apply_alpha() -> None:
    rgb = noise(20, 10)
    assert images.apply_alpha(rgb, None) is rgb
    alpha = Image.new("L", (40, 20), 0)
    alpha.paste(255, (20, 0, 40, 20))
    out = images.apply_alpha(rgb, alpha)
    assert out.mode == "RGBA" and out.size == (20, 10)
    assert rgb.mode == "RGB"  # the caller's image is not touched
    assert out.getchannel("A").getpixel((2, 5)) == 0
    assert out.getchannel("A").getpixel((17, 5)) == 255
    assert out.convert("RGB").tobytes() == rgb.tobytes()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_save_keeps_alpha_where_the_format_can(tmp_path: Path, suffix: str) -> None:
    rgba = images.apply_alpha(noise(12, 8), Image.new("L", (12, 8), 77))
    out = tmp_path / f"out{suffix}"
    images.save_image(rgba, out)
    alpha = images.load_alpha(out)
    assert alpha is not None and close((alpha.getpixel((3, 3)),), (77,), tolerance=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp"])
def test_save_drops_alpha_where_the_format_cannot(tmp_path: Path, suffix: str) -> None:
    rgba = images.apply_alpha(Image.new("RGB", (12, 8), (10, 200, 30)), Image.new("L", (12, 8)))
    out = tmp_path / f"out{suffix}"
    images.save_image(rgba, out)
    with Image.open(out) as written:
        assert written.mode == "RGB"
        assert close(pixel(written.convert("RGB"), (4, 4)), (10, 200, 30))
    assert listing(tmp_path) == [out.name]


def test_save_png_text_and_odd_modes(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    images.save_image(noise(6, 4), out, text={"impasto": '{"a": 1}'})
    with Image.open(out) as written:
        assert written.info["impasto"] == '{"a": 1}'
    deep = Image.fromarray(np.full((4, 6), 32768, dtype=np.uint16))
    images.save_image(deep, tmp_path / "deep.jpg")
    assert pixel(images.load_image(tmp_path / "deep.jpg"), (0, 0)) == (128, 128, 128)


def test_save_gives_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    out = tmp_path / "out.png"
    images.save_image(noise(4, 4), out)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def failing_save(error: BaseException) -> Callable[..., None]:
    """A stand-in for Image.save that writes part of a file, then fails."""

    def save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        assert hasattr(fp, "write")
        fp.write(b"\x89PNG half an image")  # type: ignore[attr-defined]
        raise error

    return save


@pytest.mark.parametrize("existing", [False, True])
def test_failed_save_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    out = tmp_path / "result.png"
    if existing:
        out.write_bytes(b"the previous result")
    before = listing(tmp_path)
    monkeypatch.setattr(Image.Image, "save", failing_save(OSError(28, "No space left on device")))
    with pytest.raises(ImageError) as info:
        images.save_image(noise(8, 8), out)
    assert str(info.value).startswith(f"{out}: ") and "No space left" in str(info.value)
    assert listing(tmp_path) == before
    if existing:
        assert out.read_bytes() == b"the previous result"


def test_interrupted_save_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "result.jpg"
    monkeypatch.setattr(Image.Image, "save", failing_save(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        images.save_image(noise(8, 8), out)
    assert listing(tmp_path) == []


def test_save_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot write"):
        images.save_image(noise(4, 4), tmp_path / "nowhere" / "out.png")


def test_check_output_path(tmp_path: Path) -> None:
    existing = write(tmp_path, "done.png", b"x")
    with pytest.raises(ImageError, match="already exists"):
        images.check_output_path(existing, overwrite=False)
    assert images.check_output_path(existing, overwrite=True) == existing
    with pytest.raises(ImageError, match="unknown output extension"):
        images.check_output_path(tmp_path / "out.gif", overwrite=False)
    with pytest.raises(ImageError, match="does not exist"):
        images.check_output_path(tmp_path / "no" / "out.png", overwrite=False)
    with pytest.raises(ImageError, match="is a folder"):
        (tmp_path / "dir.png").mkdir()
        images.check_output_path(tmp_path / "dir.png", overwrite=True)


# ---------------------------------------------------------------------------------------
# Property-based


MAGIC = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    png_header_only(3, 2)[:-12],  # a valid IHDR, then whatever follows
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\xff\xd8\xff\xdb",
    b"GIF89a",
    b"GIF87a\x02\x00\x02\x00",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"P6\n2 2\n255\n",
    b"\x00\x00\x01\x00",
    b"8BPS",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",
]

# Real small files in each format, to be damaged at random.
SEEDS = [
    encode(noise(9, 7), "PNG"),
    encode(noise(9, 7), "JPEG"),
    encode(noise(9, 7).convert("P"), "GIF"),
    encode(noise(9, 7), "WEBP"),
    encode(noise(9, 7), "TIFF"),
    encode(noise(9, 7), "BMP"),
    encode(Image.fromarray(np.arange(63, dtype=np.uint16).reshape(7, 9) * 1000), "PNG"),
    animated("PNG"),
]


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=damaged_files())
def test_any_bytes_give_rgb_or_image_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "input.png"
    path.write_bytes(data)
    # A damaged header can declare a large size; keep decoding attempts cheap.
    with mock.patch.object(images, "MAX_PIXELS", 1_000_000), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img, alpha = images.load_image_and_alpha(path)
        except ImageError as e:
            assert "\n" not in str(e) and str(e).startswith(f"{path}: ")
        else:
            assert img.mode == "RGB"
            assert alpha is None or (alpha.mode == "L" and alpha.size == img.size)


# Which modes each format can store (as Pillow writes them).
WRITABLE = {
    "PNG": ["L", "RGB", "RGBA", "P", "I;16"],
    "JPEG": ["L", "RGB"],
    "WEBP": ["RGB", "RGBA"],
    "TIFF": ["L", "RGB", "RGBA", "P", "I;16", "F"],
    "BMP": ["L", "RGB", "P"],
    "GIF": ["L", "P"],
}
LOSSLESS = {"PNG", "TIFF", "BMP"}


def random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (height, width)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, shape, dtype=np.uint16))
    if mode == "F":
        scale = rng.choice([1.0, 255.0, 1e4])
        return Image.fromarray((rng.standard_normal(shape) * scale).astype(np.float32), "F")
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 16, shape, dtype=np.uint8), "L").convert("P")
        img.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        return img
    pixels = rng.integers(0, 256, (*shape, len(mode)), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)


@st.composite
def valid_images(draw: st.DrawFn) -> tuple[str, str, Image.Image]:
    fmt = draw(st.sampled_from(sorted(WRITABLE)))
    mode = draw(st.sampled_from(WRITABLE[fmt]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    return fmt, mode, random_image(mode, width, height, draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=80, deadline=None)
@given(case=valid_images())
def test_valid_images_load_as_rgb(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str, Image.Image]
) -> None:
    fmt, mode, source = case
    path = tmp_path_factory.mktemp("valid") / f"image.{fmt.lower()}"
    path.write_bytes(encode(source, fmt))
    img = images.load_image(path)
    assert img.mode == "RGB" and img.size == source.size
    tensor = images.to_tensor(img)
    assert tensor.shape == (1, 3, source.height, source.width)
    assert tensor.min().item() >= 0 and tensor.max().item() <= 255
    if fmt in LOSSLESS and mode == "RGB":
        assert img.tobytes() == source.tobytes()
    if fmt in LOSSLESS and mode == "L":
        assert img.convert("L").tobytes() == source.tobytes()
