"""The work folder of a video run: painted frames kept as they finish, for resuming.

``OUTPUT.frames/`` (next to the output) holds ``job.json`` (what is being painted:
the input, the styles, the settings and the frames) and one PNG per finished
frame, written atomically, plus ``NNNNNN.paint.png`` where ``--preserve-colors``
makes the frame written differ from the frame the next one is held to, and one
line of statistics per frame in ``frames.jsonl``. A run started again with the
same input, styles and settings continues at the first frame missing; the folder
is removed once the output is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import VideoError
from ..io import images
from ..io.files import atomic_file
from .progress import FrameResult

FORMAT = "impasto-video-work"
VERSION = 1
# Settings that change how a run computes or reports, not what it paints.
NOT_COMPARED = {
    "settings": (
        "device",
        "threads",
        "precision",
        "compile",
        "cuda_graphs",
        "print_every",
        "checkpoint_every",
    ),
    "video": ("crf", "keep_frames"),
}


def work_path(output: Path) -> Path:
    return output.with_name(output.name + ".frames")


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for part, names in NOT_COMPARED.items():
        out[part] = {k: v for k, v in record.get(part, {}).items() if k not in names}
    return out


def read_record(path: Path) -> dict[str, Any] | None:
    """The job of an existing work folder (None if there is none or it is unreadable)."""
    try:
        data = json.loads((path / "job.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


class WorkFolder:
    """The frames of one job, numbered from 0 in the output's order."""

    def __init__(self, path: Path, record: dict[str, Any]):
        self.path = path
        self.record = record

    @classmethod
    def open(cls, path: Path, record: dict[str, Any], *, overwrite: bool) -> WorkFolder:
        """Continue the folder's job if it is this one; else start afresh (with ``overwrite``)."""
        record = {"format": FORMAT, "version": VERSION, **record}
        existing = read_record(path) if path.exists() else None
        if existing is not None and _comparable(existing) == _comparable(record):
            return cls(path, existing)
        if path.exists():
            # A job that never finished a frame has nothing to lose.
            unfinished = existing is not None and cls(path, existing).done() == 0
            if not (overwrite or unfinished):
                why = "frames of another run" if existing else "files impasto did not write"
                raise VideoError(
                    f"{os.fspath(path)}: holds {why} (different input, styles or settings); "
                    "delete it or pass --overwrite to start again"
                )
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        try:
            path.mkdir()
            with atomic_file(path / "job.json") as f:
                f.write(json.dumps(record, indent=1).encode())
        except OSError as e:
            raise VideoError(f"{os.fspath(path)}: cannot make the work folder ({e})") from None
        return cls(path, record)

    def frame_path(self, index: int) -> Path:
        return self.path / f"{index:06d}.png"

    def paint_path(self, index: int) -> Path:
        return self.path / f"{index:06d}.paint.png"

    def done(self) -> int:
        """Frames finished, counted from 0 up to the first missing one."""
        count = 0
        while self.frame_path(count).is_file():
            count += 1
        return count

    def write(self, result: FrameResult, paint: Image.Image) -> None:
        """Keep a finished frame; the frame file is written last, as the mark of done."""
        if paint is not result.image:
            images.save_image(paint, self.paint_path(result.index))
        with open(self.path / "frames.jsonl", "a") as f:
            f.write(json.dumps(result.stats()) + "\n")
        images.save_image(result.image, self.frame_path(result.index))

    def frame(self, index: int) -> Image.Image:
        return images.load_image(self.frame_path(index))

    def paint(self, index: int) -> Image.Image:
        """The frame as optimised: what the frames after it are held to."""
        path = self.paint_path(index)
        return images.load_image(path if path.is_file() else self.frame_path(index))

    def stats(self, frames: int) -> list[dict[str, Any]]:
        """The last statistics line of each of the first ``frames`` frames."""
        found: dict[int, dict[str, Any]] = {}
        with contextlib.suppress(OSError):
            for line in (self.path / "frames.jsonl").read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    if entry["frame"] < frames:
                        found[entry["frame"]] = entry
        return [found[k] for k in sorted(found)]

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
