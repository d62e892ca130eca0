"""A whole video run: input checked, frames painted into the work folder, output written.

:class:`VideoStylizer` is what the command line, the Python API and a web job drive:
:meth:`~VideoStylizer.run` paints the frames still missing, yielding after every
iteration; :meth:`~VideoStylizer.request_stop` stops it between two iterations
(the frames written are kept; the same job started again continues at the next
one); :meth:`~VideoStylizer.finish` writes the output once every frame is painted,
or, asked for a part, the frames painted so far.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import SettingsError, VideoError
from ..io import images
from ..io.files import sha256_file
from ..results import StopReason
from ..run.inputs import ImageInput, open_image
from ..settings import Settings, flag
from . import io as video_io
from .loop import FrameLoop
from .mux import OutputKind, Timing, output_kind, write_output
from .progress import FrameResult, VideoProgress
from .settings import VideoSettings
from .work import WorkFolder, read_record, work_path


@dataclass
class VideoResult:
    """The end of a video run: what was written, or why not yet."""

    output: Path
    written: bool  # False: stopped before every frame was painted (see ``work``)
    work: Path  # the work folder (removed once the output is written)
    frames: int  # frames in the output
    done: int  # frames painted so far, by this run and earlier ones
    painted: int  # frames painted by this run
    size: tuple[int, int]  # (width, height) of the frames as shown
    seconds: float  # this run's painting time
    stopped: StopReason
    stop_detail: str | None = None
    note: str | None = None  # about the audio, where it could not be copied
    frame_stats: list[dict[str, Any]] = field(default_factory=list)
    settings: Settings | None = None
    video: VideoSettings | None = None
    part: bool = False  # the output holds only the first ``done`` frames

    def message(self) -> str:
        """The last line of a run: what was written, or where the frames wait."""
        if self.written:
            note = f" ({self.note})" if self.note else ""
            frames = f"the first {self.done} of {self.frames}" if self.part else self.frames
            return (
                f"impasto: wrote {self.output}: {frames} frames, "
                f"{self.painted} painted in {self.seconds:.1f} s{note}"
            )
        frame = f"frame {self.done + 1}"
        why = {
            StopReason.NAN: f"the loss became NaN or infinite at {frame} (lower "
            f"{flag('learning_rate')} or the loss weights, or use {flag('precision')} fp32)",
            StopReason.OOM: f"ran out of memory at {frame} ({self.stop_detail}); try a "
            f"smaller {flag('size')}",
        }.get(self.stopped, "interrupted")
        return (
            f"impasto: {why}; {self.done} of {self.frames} frames are in {self.work}; "
            "run the same command again to continue"
        )

    def report(self) -> dict[str, Any]:
        """What ``--report`` writes."""
        return {
            "output": os.fspath(self.output),
            "written": self.written,
            "part": self.part,
            "frames": self.frames,
            "done": self.done,
            "painted_by_this_run": self.painted,
            "size": list(self.size),
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped.value,
            "stop_detail": self.stop_detail,
            "note": self.note,
            "settings": self.settings.to_dict() if self.settings else None,
            "video": self.video.to_dict() if self.video else None,
            "frame_stats": self.frame_stats,
        }


def _fingerprint(source: ImageInput, image: Image.Image) -> str:
    """What identifies a style image across runs: its file's hash, or its pixels'."""
    if isinstance(source, (str, os.PathLike)):
        return sha256_file(Path(source))
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


def check_output(output: Path, kind: OutputKind, overwrite: bool) -> Path:
    """Refuse, before any work, an output that exists (without ``overwrite``) or can't be made."""
    if kind.name != "folder":
        return images.check_writable(output, overwrite=overwrite)
    if output.exists() and not overwrite:
        raise VideoError(f"{os.fspath(output)}: already exists; pass --overwrite to replace it")
    if output.exists() and not output.is_dir():
        raise VideoError(f"{os.fspath(output)}: is a file; a folder of frames was asked for")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise VideoError(
            f"{os.fspath(output)}: folder {os.fspath(parent)} is missing or not writable"
        )
    return output


class VideoStylizer:
    """One video: paint its frames (resuming a work folder of the same job), then write it."""

    def __init__(
        self,
        input: str | os.PathLike[str],
        styles: ImageInput | Sequence[ImageInput],
        output: str | os.PathLike[str],
        settings: Settings | None = None,
        video: VideoSettings | None = None,
        *,
        overwrite: bool = False,
    ):
        styles = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
        settings = (settings or Settings()).replace().validate(n_styles=len(styles))
        self.video = (video or VideoSettings()).replace().validate()
        self.output = Path(output)
        self.kind = output_kind(self.output)
        check_output(self.output, self.kind, overwrite)
        self.info = video_io.probe(input)
        timeline = self.info.timeline(self.video.fps)
        self.first, end = self.video.frame_range(len(timeline))
        self.times = timeline[self.first : end]
        self.following = timeline[end] if end < len(timeline) else self.info.end
        self.size = video_io.working_size(self.info, settings.size, self.kind.even)
        if settings.tile and max(self.size) > settings.tile:
            raise SettingsError("video frames are not painted in tiles; use --tile 0", "tile")
        self.styles = [open_image(s)[0] for s in styles]  # a bad style fails here, early
        record = self._record(settings, [_fingerprint(s, i) for s, i in zip(styles, self.styles)])
        self.work = WorkFolder.open(work_path(self.output), record, overwrite=overwrite)
        seed = self.work.record["settings"]["seed"]
        self.settings = settings.replace(seed=seed)
        self.engine_settings = self.settings.replace(size=max(self.size))
        self.loop: FrameLoop | None = None
        self.done_at_start = self.work.done()
        self.on_frame: list[Callable[[FrameResult], None]] = []  # called as frames finish
        self.stop_requested = False

    def _record(self, settings: Settings, styles: list[str]) -> dict[str, Any]:
        path = work_path(self.output)
        if settings.seed is None:  # continue a job with the seed it drew
            existing = read_record(path) if path.exists() else None
            seed = existing and existing.get("settings", {}).get("seed")
            settings = settings.replace(seed=seed if isinstance(seed, int) else None)
        if settings.seed is None:
            settings = settings.replace(seed=random.SystemRandom().randrange(2**31))
        stat = self.info.path.stat()
        return {
            "input": {
                "path": os.fspath(self.info.path.resolve()),
                "bytes": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            },
            "styles": styles,
            "settings": settings.to_dict(),
            "video": self.video.to_dict(),
            "frames": len(self.times),
            "size": list(self.size),
        }

    @property
    def frames(self) -> int:
        return len(self.times)

    def request_stop(self) -> None:
        """Stop after the current iteration (safe from a signal handler)."""
        self.stop_requested = True
        if self.loop is not None:
            self.loop.request_stop()

    def run(self) -> Iterator[VideoProgress]:
        """Paint the frames still missing, writing each to the work folder as it finishes."""
        done = self.work.done()
        if done >= self.frames:
            return
        offsets = self.video.temporal_frames
        earlier = {done - k: self.work.paint(done - k) for k in offsets if done - k >= 0}
        frames = video_io.read_frames(self.info, self.times, self.size, max(0, done - max(offsets)))
        reference = None
        if done > 0:  # the colour maps are measured on the first frame, as when it was painted
            with contextlib.closing(video_io.read_frames(self.info, self.times, self.size)) as it:
                reference = next(it)[1]
        self.loop = FrameLoop(
            self.styles, self.engine_settings, self.video, total=self.frames, done=done
        )
        if self.stop_requested:  # asked while the frames were being opened
            self.loop.request_stop()
        yield from self.loop.run(frames, done, self.frames, earlier, self._write, reference)

    def _write(self, result: FrameResult, paint: Image.Image) -> None:
        self.work.write(result, paint)
        for call in self.on_frame:
            call(result)

    def finish(self, *, part: bool = False) -> VideoResult:
        """Write the output if every frame is painted; say where things stand either way.

        With ``part``, a run stopped for good writes the frames painted so far (with the
        audio that goes with them) and keeps its work folder.
        """
        loop = self.loop
        done = self.work.done()
        stopped = (loop.stopped if loop else None) or StopReason.DONE
        result = VideoResult(
            output=self.output,
            written=False,
            work=self.work.path,
            frames=self.frames,
            done=done,
            painted=done - self.done_at_start,
            size=self.size,
            seconds=loop.elapsed if loop else 0.0,
            stopped=stopped,
            stop_detail=loop.stop_detail if loop else None,
            frame_stats=self.work.stats(done),
            settings=self.settings,
            video=self.video,
        )
        if done < self.frames:
            if result.stopped is StopReason.DONE:
                result.stopped = StopReason.INTERRUPTED
            if not (part and done):
                return result
        t0 = time.perf_counter()
        result.note = write_output(
            self.output,
            self.kind,
            self.work.frame,
            done,
            self.info,
            self._timing(done),
            crf=self.video.crf,
        )
        result.written, result.part = True, done < self.frames
        result.seconds += time.perf_counter() - t0
        if not (self.video.keep_frames or result.part):
            self.work.remove()
        return result

    def _timing(self, count: int) -> Timing:
        """The times of the first ``count`` frames, and the span of audio that goes with them."""
        whole = self.video.frames is None and count == self.frames
        shift = 0.0 if self.video.frames is None else self.times[0]
        if self.video.fps is None:
            rate, time_base = self.info.rate, self.info.time_base
        else:
            rate = Fraction(self.video.fps).limit_denominator(100_000)
            time_base = 1 / rate
        following = self.following if count == self.frames else self.times[count]
        first = -float("inf") if self.video.frames is None else self.times[0]
        clip = (-float("inf"), float("inf")) if whole else (first, following)
        return Timing([t - shift for t in self.times[:count]], rate, time_base, clip, shift)
