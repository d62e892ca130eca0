"""Writing files so that a crash or Ctrl-C never leaves a half-written one behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def create_temp(path: Path) -> tuple[int, Path]:
    """A new file next to ``path``, created with the permissions a plain open would give.

    ``tempfile.mkstemp`` makes files private (0600), which would survive the rename and
    leave results unreadable to, say, a web server; ``os.open`` applies the umask instead.
    """
    mode = 0o666
    with contextlib.suppress(OSError):
        # Replacing a file keeps its permissions, as editing it in place would.
        mode = os.stat(path).st_mode & 0o777
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:100]}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"no free temporary file name next to {path}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only once it is completely written."""
    target = Path(path)
    fd, tmp = create_temp(target)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            # Without this a crash soon after the rename can leave an empty file behind
            # on some file systems, which is what the rename is meant to prevent.
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
