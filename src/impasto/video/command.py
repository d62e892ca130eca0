"""``impasto video``: running a video from the command line, with progress and Ctrl-C.

The options are generated in :mod:`impasto.cli` from :class:`~impasto.Settings` and
:class:`VideoSettings`; this module drives the run. Ctrl-C or SIGTERM stops after
the current iteration, keeping every frame written; the same command continues.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from ..console import EXIT_INTERRUPTED
from ..results import StopReason
from ..settings import Settings
from .job import VideoStylizer
from .progress import VideoProgress
from .settings import VideoSettings


def video_settings_from_args(args: argparse.Namespace) -> VideoSettings:
    names = {f.name for f in dataclasses.fields(VideoSettings)}
    return VideoSettings(**{k: v for k, v in vars(args).items() if k in names})


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class _Display:
    """One line: frame k of N, the iteration bar of that frame, and the video's ETA."""

    def __init__(self, args: argparse.Namespace, print_every: int):
        self.quiet, self.print_every = args.quiet, print_every
        self.bar: Any = None
        self.frame = -1
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=1, unit="it", dynamic_ncols=True, file=sys.stderr)

    def show(self, p: VideoProgress) -> None:
        losses = " ".join(f"{k} {v:.4g}" for k, v in p.step.losses.items() if k != "total")
        if self.bar is not None:
            if p.frame != self.frame:
                self.frame = p.frame
                self.bar.reset(total=p.step.iterations)
                self.bar.set_description(f"frame {p.frame + 1}/{p.frames}", refresh=False)
            self.bar.total = p.step.iterations
            self.bar.set_postfix_str(f"video ETA {_clock(p.eta)}; {losses}", refresh=False)
            self.bar.update(p.step.iteration - self.bar.n)
        if self.print_every and p.step.iteration % self.print_every == 0 and not self.quiet:
            line = (
                f"frame {p.frame + 1}/{p.frames} iteration {p.step.iteration}/"
                f"{p.step.iterations}: {losses}, video ETA {_clock(p.eta)}"
            )
            (self.bar.write if self.bar is not None else print)(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_video(
    args: argparse.Namespace,
    settings: Settings,
    stop_on_signal: Callable[[Any], contextlib.AbstractContextManager[Any]],
) -> int:
    """Run ``impasto video``; ``stop_on_signal`` turns Ctrl-C/SIGTERM into request_stop()."""
    from ..io.files import atomic_file
    from ..io.images import check_writable

    video = video_settings_from_args(args)
    if args.report:
        check_writable(args.report, overwrite=True)
    st = VideoStylizer(
        args.input, args.styles, args.output, settings, video, overwrite=args.overwrite
    )
    w, h = st.size
    resumed = f", continuing at frame {st.done_at_start + 1}" if st.done_at_start else ""
    _say(args, f"impasto: {st.frames} frames at {w}x{h} on {settings.device}{resumed}")
    if getattr(args, "ray", None) is not None:  # chunks as Ray tasks (impasto.distributed)
        from ..distributed.video import run_video_command

        return run_video_command(args, st)
    display = _Display(args, settings.print_every)
    with stop_on_signal(st) as signals:
        try:
            for progress in st.run():
                display.show(progress)
        except KeyboardInterrupt:
            signals.count += 1
        finally:
            display.close()
    if st.work.done() >= st.frames:
        _say(args, f"impasto: writing {args.output}")
    result = st.finish()
    if args.report:
        with atomic_file(args.report) as f:
            f.write(json.dumps(result.report(), indent=2).encode() + b"\n")
    _say(args, result.message())
    if result.written:
        return 0
    return EXIT_INTERRUPTED if result.stopped is StopReason.INTERRUPTED else 1


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)
