"""A video painted in chunks by Ray tasks, side by side.

The frames are cut into chunks of consecutive frames, one Ray task each. A chunk
starting at frame s is painted from frame s - ``warmup``: that frame from scratch, as
the first frame of a video is, and the next ones each held to the one before it by the
temporal loss, so that by frame s the painting has settled into the sequence; the
warm-up frames are thrown away. Each task runs the video package's own frame loop
(:class:`impasto.video.FrameLoop`) over its range; its first frame, painted from
scratch, is where colour control (``color_control``) measures its colour maps, as
frame 0 is for a whole video. The video file travels to the workers once,
as bytes through the object store; the finished frames come back as PNG bytes and the
driver writes them into the job's work folder, from which :meth:`VideoStylizer.finish`
writes the output. A chunk whose frames are all there already is not painted again.

Where two chunks meet, :func:`seam_errors` measures the temporal error (the frame
against the previous one warped by the optical flow, where the flow is reliable)
and puts it next to the same measure one frame either side, inside the chunks.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from ..console import add_ray_arguments
from ..errors import ImpastoError
from .cluster import MAX_RETRIES, connect, png_bytes, png_image, task_resources

WARMUP_FRAMES = 3


def chunks(frames: int, size: int) -> list[tuple[int, int]]:
    """[start, end) ranges of ``size`` frames (the last one shorter) covering ``frames``."""
    return [(s, min(s + size, frames)) for s in range(0, frames, size)]


def chunk_task(
    video: bytes,
    suffix: str,
    job: dict[str, Any],
    start: int,
    end: int,
    warmup: int,
    *styles: bytes,
) -> list[tuple[Any, bytes, bytes | None]]:
    """Paint frames [start, end) from ``start - warmup``; each kept frame as
    (FrameResult without its image, frame PNG, paint PNG or None when the same)."""
    from ..settings import Settings
    from ..video import io as video_io
    from ..video.loop import FrameLoop
    from ..video.settings import VideoSettings

    with tempfile.TemporaryDirectory(prefix="impasto-chunk-") as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(video)
        info = video_io.probe(path)
        times, size = job["times"], tuple(job["size"])
        first = max(0, start - warmup)
        loop = FrameLoop(
            [png_image(s) for s in styles],
            Settings.from_dict(job["settings"]),
            VideoSettings.from_dict(job["video"]),
            total=len(times),
        )
        kept: list[tuple[Any, bytes, bytes | None]] = []

        def keep(result: Any, paint: Image.Image) -> None:
            if result.index >= start:
                own = None if paint is result.image else png_bytes(paint)
                frame, result.image = png_bytes(result.image), None  # it travels as the PNG
                kept.append((result, frame, own))

        frames = video_io.read_frames(info, times, size, first)
        for _ in loop.run(frames, first, end, {}, keep):
            pass
        if loop.stopped is not None:
            detail = f" ({loop.stop_detail})" if loop.stop_detail else ""
            raise ImpastoError(
                f"painting frames {start + 1} to {end} stopped: {loop.stopped.value}{detail}"
            )
    return kept


@functools.cache
def _remote(ray: ModuleType) -> Any:
    return ray.remote(max_calls=0)(chunk_task)


@dataclass
class ChunkDone:
    """A chunk back from its task: its range and the seconds since the video started."""

    start: int
    end: int
    seconds: float


def paint_video_on_ray(
    st: Any,
    address: str | None = None,
    *,
    chunk_frames: int = 0,
    warmup: int = WARMUP_FRAMES,
    task_cpus: float | None = None,
    task_gpus: float | None = None,
    on_chunk: Callable[[ChunkDone], None] | None = None,
) -> list[tuple[int, int]]:
    """Paint the missing frames of ``st`` (a :class:`VideoStylizer`) as Ray tasks.

    ``chunk_frames`` = 0 gives every task an equal share of the frames. Returns the
    chunks painted. Ctrl-C cancels the chunks not finished; those finished are kept.
    """
    if chunk_frames < 0 or warmup < 0:
        raise ImpastoError("--chunk-frames and --warmup-frames must be >= 0")
    connection = connect(address)
    ray = connection.ray
    t0 = time.perf_counter()
    try:
        resources = task_resources(ray, task_cpus, task_gpus)
        size = chunk_frames or max(1, math.ceil(st.frames / resources.slots))
        todo = [c for c in chunks(st.frames, size) if not _painted(st, *c)]
        job = {
            "times": list(st.times),
            "size": list(st.size),
            "settings": st.engine_settings.replace(
                threads=st.engine_settings.threads or resources.threads
            ).to_dict(),
            "video": st.video.to_dict(),
        }
        task = _remote(ray).options(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,
        )
        video = ray.put(st.info.path.read_bytes())
        styles = [ray.put(png_bytes(s)) for s in st.styles]
        suffix = st.info.path.suffix
        pending = {task.remote(video, suffix, job, s, e, warmup, *styles): (s, e) for s, e in todo}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    s, e = pending.pop(ref)
                    _write(st, _fetch(ray, ref))
                    if on_chunk is not None:
                        on_chunk(ChunkDone(s, e, time.perf_counter() - t0))
        finally:
            for ref in pending:
                ray.cancel(ref)
        return todo
    finally:
        connection.close()


def _painted(st: Any, start: int, end: int) -> bool:
    return all(st.work.frame_path(i).is_file() for i in range(start, end))


def _fetch(ray: ModuleType, ref: Any) -> list[tuple[Any, bytes, bytes | None]]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, ImpastoError):
            raise cause from None
        raise


def _write(st: Any, frames: Sequence[tuple[Any, bytes, bytes | None]]) -> None:
    for result, frame, paint in frames:
        result.image = png_image(frame)
        st.work.write(result, result.image if paint is None else png_image(paint))


def temporal_error(
    previous: Image.Image, current: Image.Image, content: tuple[np.ndarray, np.ndarray]
) -> float:
    """RMS difference (grey levels) between ``current`` and ``previous`` warped onto it
    by the flow between the two content frames, over the pixels where it is reliable."""
    from ..video import flow as flows

    before, now = (flows.grey(c) for c in content)
    back, forward = flows.flow(now, before), flows.flow(before, now)
    weights = flows.reliability(back, forward).weights
    warped = flows.warp(np.asarray(previous, np.float32), back)
    squared = ((np.asarray(current, np.float32) - warped) ** 2).mean(axis=-1)
    return float(np.sqrt((squared * weights).sum() / max(weights.sum(), 1.0)))


def seam_errors(st: Any, starts: Sequence[int]) -> list[dict[str, float]]:
    """At each chunk start s: the temporal error of frame s (the seam) and of frames
    s - 1 and s + 1 (inside the two chunks), from the frames in the work folder."""
    from ..video import io as video_io

    wanted = {i for s in starts for i in (s - 2, s - 1, s, s + 1) if 0 <= i < st.frames}
    content = {
        i: np.asarray(img)
        for i, img in video_io.read_frames(st.info, st.times, st.size)
        if i in wanted
    }

    def error(i: int) -> float:
        if i - 1 not in content or i not in content:
            return math.nan
        pair = (content[i - 1], content[i])
        return temporal_error(st.work.frame(i - 1), st.work.frame(i), pair)

    return [
        {"frame": s, "seam": error(s), "before": error(s - 1), "after": error(s + 1)}
        for s in starts
        if s > 0
    ]


def run_video_command(args: Any, st: Any) -> int:
    """``impasto video ... --ray``: paint in chunks, measure the seams, write the video."""
    import json
    import sys

    from tqdm import tqdm

    from ..console import EXIT_INTERRUPTED
    from ..io.files import atomic_file

    bar = None if args.quiet else tqdm(total=st.frames, initial=st.work.done(), unit="frame")

    def show(chunk: ChunkDone) -> None:
        if bar is not None:
            bar.update(chunk.end - chunk.start)
            bar.write(f"frames {chunk.start + 1}-{chunk.end} painted", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        painted = paint_video_on_ray(
            st,
            None if args.ray is True else args.ray,
            chunk_frames=args.chunk_frames,
            warmup=args.warmup_frames,
            task_cpus=args.task_cpus,
            task_gpus=args.task_gpus,
            on_chunk=show,
        )
    except KeyboardInterrupt:
        painted = None
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    seams = seam_errors(st, [s for s, _ in painted or []]) if painted is not None else []
    result = st.finish()
    result.seconds += seconds  # the chunks' painting, which the video's own loop did not time
    if args.report:
        data = {**result.report(), "ray_chunks": painted, "seams": seams}
        with atomic_file(args.report) as f:
            f.write(json.dumps(data, indent=2).encode() + b"\n")
    if not args.quiet:
        for seam in seams:
            print(
                f"impasto: seam at frame {seam['frame'] + 1}: temporal error {seam['seam']:.2f} "
                f"grey levels (inside the chunks: {seam['before']:.2f}, {seam['after']:.2f})",
                file=sys.stderr,
            )
        print(result.message(), file=sys.stderr)
    if result.written:
        return 0
    return EXIT_INTERRUPTED if painted is None else 1


def add_video_ray_arguments(p: Any) -> None:
    """The options of ``impasto video`` for painting on Ray."""
    g = add_ray_arguments(p, "chunks of frames, side by side,")
    g.add_argument(
        "--chunk-frames",
        type=int,
        default=0,
        metavar="N",
        help="frames per chunk (default: the frames shared equally among the "
        "tasks the cluster can run at once)",
    )
    g.add_argument(
        "--warmup-frames",
        type=int,
        default=WARMUP_FRAMES,
        metavar="N",
        help="frames each chunk paints before its first, and throws away, so that "
        f"its first frame is consistent with the ones before (default: {WARMUP_FRAMES})",
    )
