"""Uploaded images: copied under names the server makes up, then checked before any work.

A client's file name is never used for anything: the caller passes the destination,
which lives in the job's own folder. An upload is refused early and cheaply when it
is too large, then by its header (format, pixel count) before it is ever decoded, and
finally decoded in full, so a corrupt file fails the request instead of the job.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from ..errors import ImageError
from ..io import images

# Formats people upload; PIL can read many more, but every extra decoder is attack surface.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
CHUNK = 1024 * 1024


class UploadRejected(Exception):
    """An upload the server will not take; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def store(source: BinaryIO, dest: Path, *, label: str, max_bytes: int) -> int:
    """Copy an upload to ``dest``, refusing it once it passes ``max_bytes``."""
    written = 0
    with open(dest, "wb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise UploadRejected(
                    413, f"{label}: the file is larger than this server accepts ({_mib(max_bytes)})"
                )
            out.write(chunk)
    if written == 0:
        raise UploadRejected(422, f"{label}: the file is empty")
    return written


def check_image(path: Path, *, label: str, max_pixels: int) -> tuple[int, int]:
    """Check the header, then decode fully; returns (width, height) as the engine sees it."""
    try:
        with Image.open(path, formats=ALLOWED_FORMATS) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise UploadRejected(413, f"{label}: the image has too many pixels") from None
    except Exception:  # PIL raises many types for foreign or damaged files
        raise UploadRejected(
            422, f"{label}: not an image this server reads ({', '.join(ALLOWED_FORMATS)})"
        ) from None
    if width * height > max_pixels:
        raise UploadRejected(
            413,
            f"{label}: {width}x{height} is {width * height / 1e6:.1f} megapixels; this "
            f"server accepts at most {max_pixels / 1e6:g}",
        )
    try:
        decoded = images.load_image(path)
    except ImageError as e:
        # The message starts with the server-side path, which is no business of the client.
        raise UploadRejected(422, str(e).replace(str(path), label)) from None
    except Exception:
        raise UploadRejected(422, f"{label}: the image is damaged and cannot be decoded") from None
    return decoded.size


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
