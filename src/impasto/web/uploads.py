"""Uploaded images: copied under names the server makes up, then checked before any work.

A client's file name is never used for anything: the caller passes the destination,
which lives in the job's own folder. An upload is refused early and cheaply when it
is too large, then by its header (format, pixel count) before it is ever decoded, and
finally decoded in full, so a corrupt file fails the request instead of the job.
Decoding is the expensive part (a 25-megapixel float TIFF of 150 kB takes about half a
gigabyte and a second and a half), so the caller decodes only after every header of the
request passed, and only so many at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from ..errors import ImageError
from ..io import images
from ..io.files import atomic_file

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


def header_size(path: Path, *, label: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the file's header alone; nothing is decoded."""
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
    return width, height


def check_request_pixels(sizes: dict[str, tuple[int, int]], max_pixels: int) -> None:
    """Refuse a request whose images together have more than ``max_pixels`` pixels."""
    total = sum(w * h for w, h in sizes.values())
    if total > max_pixels:
        raise UploadRejected(
            413,
            f"the images of this job have {total / 1e6:.1f} megapixels together; this "
            f"server accepts at most {max_pixels / 1e6:g} per job",
        )


def decode(path: Path, *, label: str, max_side: int) -> tuple[int, int]:
    """Decode the whole image as the engine will; returns (width, height), upright.

    An image whose long side is above ``max_side`` is replaced by a copy of that size (a
    PNG, upright, in sRGB, its transparency kept): no job on this server uses more, and
    the worker then opens a small file instead of decoding the upload once more.
    """
    try:
        rgb, alpha = images.load_image_and_alpha(path)
    except ImageError as e:
        # The message starts with the server-side path, which is no business of the client.
        raise UploadRejected(422, str(e).replace(str(path), label)) from None
    except Exception:
        raise UploadRejected(422, f"{label}: the image is damaged and cannot be decoded") from None
    size = rgb.size
    if max(size) > max_side:
        rgb = images.resize_long_side(rgb, max_side)
        with atomic_file(path) as f:
            images.apply_alpha(rgb, alpha).save(f, format="PNG")
    return size


class DecodeSlots:
    """At most ``n`` images decoded at once in the whole server: by requests checking their
    uploads and by the worker opening a job's images."""

    def __init__(self, n: int):
        self._slots = threading.BoundedSemaphore(n)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """For threads: wait for a slot."""
        with self._slots:
            yield

    @contextlib.asynccontextmanager
    async def waited(self) -> AsyncIterator[None]:
        """For request handlers: wait for a slot without holding a thread meanwhile."""
        while not self._slots.acquire(blocking=False):
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            self._slots.release()


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
