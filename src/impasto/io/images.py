"""Reading, resizing, converting and writing images.

Inputs come from people's photo folders, so :func:`load_image` expects anything: every
Pillow mode, rotated camera JPEGs, 16-bit and floating-point scans, animations, files with
transparency, and files that are empty, truncated, mislabelled or hostile. It either returns
an 8-bit RGB image or raises :class:`~impasto.errors.ImageError` whose message is one line,
``"<path>: <problem>"``; no other exception escapes it.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import (
    Image,
    ImageCms,
    ImageOps,
    ImageStat,
    PngImagePlugin,
    UnidentifiedImageError,
)

from ..errors import ImageError
from ..run.schedule import fit_long_side
from .files import atomic_file

OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}

MAX_PIXELS: int = 178_956_970
"""Largest image (width × height) that :func:`load_image` decodes; larger ones are refused
from their header, before any pixel is decoded. The default is Pillow's own hard limit
(twice ``PIL.Image.MAX_IMAGE_PIXELS``); to go beyond it, raise that too, because Pillow
refuses above it on its own. Pillow's softer DecompressionBombWarning (at half the default)
is superseded by this limit rather than printed."""

# Everything Pillow's plugins have been seen to raise on damaged or hostile input. Listed
# rather than ``Exception`` so that a genuine bug in impasto is not reported as a bad file;
# ``Warning`` is here because under ``python -W error`` Pillow's warnings become exceptions.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    struct.error,
    EOFError,
    TypeError,
    LookupError,
    ArithmeticError,
    AttributeError,
    RuntimeError,
    AssertionError,  # Pillow narrows types with asserts that odd files can trip
    ImageCms.PyCMSError,
    Warning,
)

# Modes whose samples are not 8-bit and need scaling rather than Pillow's clipping convert.
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

# Modes each output format stores faithfully; anything else is converted first.
_SAVE_MODES = {
    "PNG": frozenset({"RGB", "RGBA", "L", "LA"}),
    "WEBP": frozenset({"RGB", "RGBA"}),
    "TIFF": frozenset({"RGB", "RGBA", "L", "LA"}),
    "JPEG": frozenset({"RGB", "L"}),
    # Pillow writes 32-bit BMPs, but few readers honour their alpha, so BMP gets none.
    "BMP": frozenset({"RGB", "L"}),
}


class MultiFrameWarning(UserWarning):
    """An animation or multi-page file, of which only the first frame is used."""


# ---------------------------------------------------------------------------------------
# Reading


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as 8-bit RGB, upright according to its EXIF orientation.

    Any Pillow mode is accepted: grey and bilevel images become grey RGB; CMYK and images
    with an embedded ICC profile are converted to sRGB through the profile (plain formulas
    when the profile is missing or broken); 16-bit samples are scaled 0–65535 → 0–255 and
    32-bit integer and float images are mapped as described in :func:`to_rgb_and_alpha`.
    Of an animation or multi-page file only the first frame is used, with a
    :class:`MultiFrameWarning`.

    Transparent pixels are filled with the image's mean visible colour, for the reasons
    given in :func:`to_rgb_and_alpha`; :func:`load_alpha` returns the transparency itself.

    Raises :class:`ImageError` (``"<path>: <problem>"``, one line) for a missing,
    unreadable, empty, truncated, corrupt or non-image file, a folder, or an image larger
    than :data:`MAX_PIXELS`; sizes are checked from the header, before decoding.
    """
    return _load(path)[0]


def load_alpha(path: str | os.PathLike[str]) -> Image.Image | None:
    """The transparency of an image file as a mode "L" image, or None if it has none.

    The mask has the same orientation and size as :func:`load_image`'s result. Files with
    an alpha channel or a transparent palette entry or colour key count as transparent
    unless every pixel is fully opaque. Raises :class:`ImageError` like
    :func:`load_image`. Use :func:`load_image_and_alpha` to decode the file only once.
    """
    return _load(path)[1]


def load_image_and_alpha(
    path: str | os.PathLike[str],
) -> tuple[Image.Image, Image.Image | None]:
    """:func:`load_image` and :func:`load_alpha` of one file, decoding it once."""
    return _load(path)


def _load(path: str | os.PathLike[str]) -> tuple[Image.Image, Image.Image | None]:
    img, several = _decode(path)
    if several:
        warnings.warn(
            f"{_shown(path)}: has several frames or pages; only the first is used",
            MultiFrameWarning,
            stacklevel=3,  # whoever called load_image, load_alpha or load_image_and_alpha
        )
    try:
        return to_rgb_and_alpha(img)
    except MemoryError:
        raise ImageError(f"{_shown(path)}: not enough memory to convert this image") from None
    except _DECODE_ERRORS as e:
        raise ImageError(f"{_shown(path)}: cannot convert image ({_one_line(e)})") from None


def to_rgb_and_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """An image of any mode as (8-bit RGB, alpha mask or None); also for in-memory images.

    Sample scaling, for modes Pillow would otherwise clip:

    * ``I;16`` (any byte order): 0–65535 → 0–255, rounded.
    * ``I`` (32-bit integer): as 16-bit when every value lies in 0–65535, which is where
      such files come from (16-bit PNG, PGM and TIFF); otherwise the range min–max is
      stretched to 0–255.
    * ``F`` (float): values within 0–1 are taken as normalised (×255), values within 0–255
      as 8-bit levels, anything else is stretched min–max; NaN becomes 0 and infinities the
      ends of the range. Float images have no agreed scale, and these three cover the ones
      scientific and HDR tools write without turning an ordinary image black or white.

    Transparent pixels are filled with the mean colour of the mostly opaque pixels
    (alpha ≥ 128), blended by alpha. The colours stored under transparent pixels are
    arbitrary, often black, and would otherwise be copied as content; filling with white
    or black instead draws a hard outline round the subject that the style loss turns
    into a painted contour. The image's own mean colour keeps that edge as soft as a flat
    fill can be. The alpha mask is returned as it was so that the result can be cut out
    again (:func:`apply_alpha`); a mask that is fully opaque everywhere is returned as None.
    """
    rgb, alpha = _rgb_and_raw_alpha(img)
    if alpha is None or alpha.getextrema()[0] == 255:
        return rgb, None
    return _fill_transparent(rgb, alpha), alpha


def apply_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """``rgb`` with ``alpha`` (resized to fit) as its transparency; ``rgb`` itself if None.

    Meant for putting a content image's transparency back on the stylised result, which
    is usually of a different size.
    """
    if alpha is None:
        return rgb
    mask = alpha if alpha.mode == "L" else alpha.convert("L")
    if mask.size != rgb.size:
        # Bilinear has no negative lobes, so unlike Lanczos it cannot ring, which in a
        # mask would show as faint halos just outside a hard silhouette.
        mask = mask.resize(rgb.size, Image.Resampling.BILINEAR)
    out = rgb.convert("RGB")  # a copy even when already RGB: the caller's image is kept
    out.putalpha(mask)
    return out


def _decode(path: str | os.PathLike[str]) -> tuple[Image.Image, bool]:
    """The first frame of ``path``, decoded, upright, in its stored mode; and whether
    the file holds more frames than that."""
    shown = _shown(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{shown}: no such file") from None
    except PermissionError:
        raise ImageError(f"{shown}: permission denied") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise ImageError(f"{shown}: cannot access ({_one_line(e)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{shown}: is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or device would block or never end; Pillow needs a seekable file anyway.
        raise ImageError(f"{shown}: is not a regular file")
    if info.st_size == 0:
        raise ImageError(f"{shown}: is empty (0 bytes)")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after decoding
    except PermissionError:
        raise ImageError(f"{shown}: permission denied") from None
    except OSError as e:
        raise ImageError(f"{shown}: cannot open ({_one_line(e)})") from None

    with f:
        try:
            with warnings.catch_warnings():
                # The header's size is checked against MAX_PIXELS just below, which takes
                # the place of this warning.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(f, formats=_readable_formats())
            _check_size(shown, img.size)
            # MPO is how cameras store a JPEG plus previews or a depth map; the first
            # image is the photo, so saying that the rest were skipped would be noise.
            several = bool(getattr(img, "is_animated", False)) and img.format != "MPO"
            with warnings.catch_warnings():
                # Raised while decoding only for inner parts (tiles, frames) larger than
                # the image itself, which no honest file has.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
            img = _upright(img)
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(
                f"{shown}: not an image, or not in a format impasto can read"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"{shown}: image too large ({_one_line(e)})") from None
        except MemoryError:
            raise ImageError(f"{shown}: not enough memory to decode this image") from None
        except _DECODE_ERRORS as e:
            raise ImageError(
                f"{shown}: cannot read image, damaged or unsupported ({_one_line(e)})"
            ) from None
    return img, several


def _readable_formats() -> list[str]:
    # EPS is drawn by running Ghostscript, a whole interpreter, over the file: not a thing
    # to do to whatever turns up in a photo folder or a web upload.
    Image.init()  # so that plugins registered since import (HEIF, say) are included
    return [name for name in Image.OPEN if name != "EPS"]


def _check_size(shown: str, size: tuple[int, int]) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{shown}: image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{shown}: image too large ({width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_PIXELS:,}, impasto.images.MAX_PIXELS)"
        )


def _upright(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except MemoryError:
        raise
    except _DECODE_ERRORS:
        # Damaged EXIF should not cost the user an otherwise good picture: keep the
        # orientation the pixels are stored in.
        return img


def _rgb_and_raw_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Colour as sRGB (transparent pixels untouched) and the alpha channel, if any."""
    icc = img.info.get("icc_profile")
    if img.mode in _WIDE_MODES:
        return _wide_to_rgb(img)
    if img.mode in ("La", "RGBa"):  # premultiplied; Pillow converts these only to LA/RGBA
        img = img.convert(img.mode.upper())
    elif img.has_transparency_data and img.mode not in ("LA", "RGBA"):
        # Palette (with tRNS or an RGBA palette), PA, and colour-keyed L/RGB files: let
        # Pillow turn whatever form the transparency takes into a real alpha channel.
        img = img.convert("LA" if img.mode in ("1", "L") else "RGBA")
    alpha = None
    if img.mode in ("LA", "RGBA"):
        alpha = img.getchannel("A")
        img = img.getchannel("L") if img.mode == "LA" else img.convert("RGB")
    elif img.mode == "P":
        img = img.convert("RGB")  # no transparency here: handled above
    return _colour_to_srgb(img, icc), alpha


def _colour_to_srgb(img: Image.Image, icc: object) -> Image.Image:
    if isinstance(icc, bytes) and icc and img.mode in ("RGB", "CMYK", "L"):
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, profile, _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            # A broken profile, or one that does not match the mode (it happens): the
            # plain conversion below is close enough and much better than refusing.
            pass
        else:
            if converted is not None:
                return converted
    return img.convert("RGB")


_SRGB: ImageCms.ImageCmsProfile | None = None


def _srgb() -> ImageCms.ImageCmsProfile:
    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB


def _wide_to_rgb(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """I;16*, I and F images: scaled to 8 bits as documented in to_rgb_and_alpha."""
    values = np.asarray(img)
    alpha = None
    key = img.info.get("transparency")
    if isinstance(key, int) and not isinstance(key, bool):
        # A PNG colour key on 16-bit grey: the one pixel value that is transparent.
        alpha = Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8), "L")
    if img.mode.startswith("I;16"):
        grey = _scale_16bit(values)
    elif img.mode == "I":
        low, high = int(values.min()), int(values.max())
        grey = _scale_16bit(values) if low >= 0 and high <= 65535 else _stretch(values)
    else:
        grey = _float_to_8bit(values)
    return Image.fromarray(grey, "L").convert("RGB"), alpha


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    # Integer rounding of v * 255 / 65535; a plain convert would clip everything above 255.
    wide = values.astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.full(values.shape, np.uint8(np.clip(round(low), 0, 255)))
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.rint(scaled).astype(np.uint8)


def _float_to_8bit(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    low, high = float(values[finite].min()), float(values[finite].max())
    if low >= 0 and high <= 1:
        scaled = values * np.float32(255)
    elif low >= 0 and high <= 255:
        scaled = values.copy()
    elif high == low:
        scaled = np.full(values.shape, np.float32(np.clip(low, 0, 255)))
    else:
        scaled = (values - np.float32(low)) * np.float32(255 / (high - low))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def _fill_transparent(rgb: Image.Image, alpha: Image.Image) -> Image.Image:
    """``rgb`` over its own mean visible colour, blended by ``alpha``."""
    mask = alpha.point(lambda a: 255 if a >= 128 else 0)
    if mask.getbbox() is None:  # only faint pixels: use whatever is visible at all
        mask = alpha.point(lambda a: 255 if a > 0 else 0)
    if mask.getbbox() is None:
        # Nothing is visible, so there is no better guess than the stored colours.
        return rgb
    # ImageStat works from histograms, so this stays cheap on very large images.
    mean = ImageStat.Stat(rgb, mask).mean
    background = Image.new("RGB", rgb.size, tuple(round(c) for c in mean[:3]))
    return Image.composite(rgb, background, alpha)


def _shown(path: str | os.PathLike[str]) -> str:
    """The path for a one-line message: quoted if it holds newlines or other controls."""
    text = os.fsdecode(path)
    return text if text.isprintable() else ascii(text)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ---------------------------------------------------------------------------------------
# Converting


def size_for(img: Image.Image, long_side: int) -> tuple[int, int]:
    """(width, height) of ``img`` scaled so its long side is ``long_side``."""
    return fit_long_side(img.size, long_side)


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Scale so the longer side is ``size`` pixels (both up and down)."""
    if max(img.size) == size:
        return img
    return img.resize(size_for(img, size), Image.Resampling.LANCZOS)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a (1, 3, H, W) float32 tensor in pixel units 0-255.

    Other modes go through :func:`to_rgb_and_alpha`, so 16-bit and float images are
    scaled rather than clipped and transparent areas filled.
    """
    if img.mode != "RGB":
        img = to_rgb_and_alpha(img)[0]
    # One float copy, made from the 8-bit pixels (a print's pixels take 151 MB in float32).
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0).float()


def to_pil(image: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) tensor in pixel units as an 8-bit RGB image (clamped, rounded)."""
    array = image.detach().float().cpu()[0].clamp(0, 255).round_().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB")


# ---------------------------------------------------------------------------------------
# Writing


def output_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format name for an output path's extension; ImageError if unknown."""
    suffix = Path(path).suffix.lower()
    try:
        return OUTPUT_FORMATS[suffix]
    except KeyError:
        raise ImageError(
            f"{_shown(path)}: unknown output extension {suffix or '(none)'!r}; use one of "
            + ", ".join(sorted(OUTPUT_FORMATS))
        ) from None


def save_image(
    img: Image.Image, path: str | os.PathLike[str], *, text: dict[str, str] | None = None
) -> None:
    """Write atomically (temporary file, then rename); PNGs get ``text`` as metadata.

    PNG, WebP and TIFF keep an alpha channel (see :func:`apply_alpha`); JPEG and BMP drop
    it, keeping the colours. On any failure the destination is left as it was and the
    temporary file is removed; write errors become :class:`ImageError`.
    """
    path = Path(path)
    fmt = output_format(path)
    img = _for_format(img, fmt)
    kwargs: dict[str, object] = {}
    if fmt == "PNG" and text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value)
        kwargs["pnginfo"] = info
    if fmt == "JPEG":
        kwargs["quality"] = 95
    try:
        with atomic_file(path) as f:
            img.save(f, format=fmt, **kwargs)
    except BaseException as e:
        if not isinstance(e, _DECODE_ERRORS):  # KeyboardInterrupt, MemoryError, bugs
            raise
        raise ImageError(f"{_shown(path)}: cannot write image ({_one_line(e)})") from None


def _for_format(img: Image.Image, fmt: str) -> Image.Image:
    if img.mode in _SAVE_MODES[fmt]:
        return img
    rgb, alpha = _rgb_and_raw_alpha(img)
    if alpha is not None and "RGBA" in _SAVE_MODES[fmt]:
        return apply_alpha(rgb, alpha)
    return rgb


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse, before any heavy work, an output that could not or should not be written."""
    output_format(path)
    return check_writable(path, overwrite=overwrite)


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Refuse a file name that is a folder, exists (unless ``overwrite``) or can't be made."""
    path = Path(path)
    shown = _shown(path)
    if path.is_dir():
        raise ImageError(f"{shown}: is a folder, not a file name")
    if path.exists() and not overwrite:
        raise ImageError(f"{shown}: already exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ImageError(f"{shown}: folder {_shown(parent)} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ImageError(f"{shown}: folder {_shown(parent)} is not writable")
    return path
