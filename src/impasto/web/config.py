"""Limits and locations of the web server, and the ``impasto serve`` options built from them.

Like :class:`impasto.settings.Settings`, every knob is written once, with its default
and help text, and the command line is generated from it. Nothing here imports
FastAPI, so ``impasto --help`` works without the ``web`` extra. The options that run
the jobs as Ray tasks (:class:`RayOptions`) are separate: they pick the engine, not a
limit.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..console import add_ray_arguments
from ..errors import ImpastoError

MIB = 1024 * 1024
# Addresses that accept connections from this machine only.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _opt(default: Any, help: str, *, metavar: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass(frozen=True)
class ServerConfig:
    """Where the server listens, where it keeps files, and what it accepts."""

    host: str = _opt(
        "127.0.0.1",
        "address to listen on; the default accepts connections from this machine only",
        metavar="ADDR",
    )
    port: int = _opt(8000, "port to listen on", metavar="PORT")
    workdir: str | None = _opt(
        None,
        "folder for uploads, results and the job database; a restart on the same folder "
        "finds its jobs again (default: a new temporary folder, removed on exit)",
        metavar="DIR",
    )
    device: str = _opt(
        "auto", "device every job runs on: auto, cpu, cuda, cuda:N or mps", metavar="DEV"
    )
    weights: str = _opt(
        "default", "VGG19 weights every job uses (see impasto stylize --help)", metavar="SRC"
    )
    max_upload_mb: float = _opt(20.0, "largest accepted image file, in MiB", metavar="MB")
    max_megapixels: float = _opt(
        25.0, "largest accepted image, in millions of pixels", metavar="MP"
    )
    max_request_megapixels: float = _opt(
        50.0,
        "most pixels of all the images of one job together, in millions (read from the "
        "files' headers, before anything is decoded)",
        metavar="MP",
    )
    max_decodes: int = _opt(
        1,
        "images decoded at once, by submissions and the running job together (a "
        "25-megapixel float TIFF takes about 0.5 GB while it is decoded)",
        metavar="N",
    )
    max_styles: int = _opt(4, "most style images per job", metavar="N")
    max_queue: int = _opt(8, "most jobs waiting behind the running one", metavar="N")
    max_size: int = _opt(
        1024, "largest output long side (the size setting) in pixels", metavar="PX"
    )
    max_iterations: int = _opt(1000, "most iterations per job", metavar="N")
    keep_minutes: float = _opt(
        1440.0,
        "finished jobs and their files are deleted after this many minutes (they survive "
        "restarts on the same --workdir)",
        metavar="MIN",
    )
    keep_jobs: int = _opt(
        20, "finished jobs kept at most; the oldest are deleted first", metavar="N"
    )
    preview_seconds: float = _opt(
        1.0, "seconds between preview images of a running job", metavar="S"
    )
    max_video_mb: float = _opt(100.0, "largest accepted video file, in MiB", metavar="MB")
    max_video_seconds: float = _opt(
        60.0, "longest accepted video, in seconds (read from its header)", metavar="S"
    )
    max_video_frames: int = _opt(
        300,
        "most frames one video job paints (after its fps and frames settings; read from "
        "the header first)",
        metavar="N",
    )

    # --- derived values -----------------------------------------------------------
    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MIB)

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * MIB)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)

    @property
    def max_request_pixels(self) -> int:
        return int(self.max_request_megapixels * 1_000_000)

    @property
    def keep_seconds(self) -> float:
        return self.keep_minutes * 60.0

    @property
    def max_request_bytes(self) -> int:
        # Every image at its limit, plus room for the settings field and multipart framing.
        content = max(self.max_upload_bytes, self.max_video_bytes)
        return content + self.max_upload_bytes * self.max_styles + MIB

    def validate(self) -> ServerConfig:
        """Raise :class:`ImpastoError` naming the first option that makes no sense."""
        if not 0 <= self.port <= 65535:
            raise ImpastoError(f"--port: must be between 0 and 65535, got {self.port}")
        for name in (
            "max_upload_mb",
            "max_megapixels",
            "max_request_megapixels",
            "keep_minutes",
            "preview_seconds",
            "max_video_mb",
            "max_video_seconds",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ImpastoError(f"--{_flag(name)}: must be a number > 0, got {value}")
        for name in (
            "max_styles",
            "max_queue",
            "max_iterations",
            "keep_jobs",
            "max_decodes",
            "max_video_frames",
        ):
            if getattr(self, name) < 1:
                raise ImpastoError(f"--{_flag(name)}: must be >= 1, got {getattr(self, name)}")
        if self.max_size < 16:
            raise ImpastoError(f"--max-size: must be >= 16 pixels, got {self.max_size}")
        return self

    def limits(self) -> dict[str, Any]:
        """The limits a client may want to know before it uploads anything."""
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_pixels": self.max_pixels,
            "max_request_pixels": self.max_request_pixels,
            "max_styles": self.max_styles,
            "max_queue": self.max_queue,
            "max_size": self.max_size,
            "max_iterations": self.max_iterations,
            "keep_seconds": self.keep_seconds,
            "keep_jobs": self.keep_jobs,
            "max_video_bytes": self.max_video_bytes,
            "max_video_seconds": self.max_video_seconds,
            "max_video_frames": self.max_video_frames,
        }


def _flag(name: str) -> str:
    return name.replace("_", "-")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`ServerConfig` field, each help text showing its default;
    then the Ray options."""
    for f in dataclasses.fields(ServerConfig):
        kind = float if isinstance(f.default, float) else int if isinstance(f.default, int) else str
        shown = "" if f.default is None else f" (default: {f.default})"
        parser.add_argument(
            "--" + _flag(f.name),
            dest=f.name,
            type=kind,
            default=argparse.SUPPRESS,
            metavar=f.metadata["metavar"],
            help=f"{f.metadata['help']}{shown}",
        )
    _add_ray_arguments(parser)


def _add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = add_ray_arguments(parser, "the jobs, several at once,")
    group.add_argument(
        "--ray-jobs",
        type=int,
        metavar="N",
        help="jobs running at once on the cluster (default: as many tasks as its nodes "
        "can run at once, at least 1); more wait in Ray's queue, shown as running",
    )


@dataclass(frozen=True)
class RayOptions:
    """``impasto serve --ray``: where the jobs run, how many at once, what each claims."""

    address: str | None = None  # None: RAY_ADDRESS, else a local instance
    jobs: int | None = None  # None: as many as the cluster runs at once
    task_cpus: float | None = None
    task_gpus: float | None = None


def ray_options_from_args(args: argparse.Namespace) -> RayOptions | None:
    """The Ray options given, checked; None without ``--ray`` (jobs run in this process)."""
    ray = getattr(args, "ray", None)
    given = {
        name: getattr(args, name.replace("-", "_"), None)
        for name in ("ray-jobs", "task-cpus", "task-gpus")
    }
    if ray is None:
        for name, value in given.items():
            if value is not None:
                raise ImpastoError(f"--{name}: jobs run in this process without --ray")
        return None
    jobs, cpus, gpus = given.values()
    if jobs is not None and jobs < 1:
        raise ImpastoError(f"--ray-jobs: must be >= 1, got {jobs}")
    for name, value in (("task-cpus", cpus), ("task-gpus", gpus)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ImpastoError(f"--{name}: must be a number >= 0, got {value}")
    return RayOptions(None if ray is True else str(ray), jobs, cpus, gpus)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    names = {f.name for f in dataclasses.fields(ServerConfig)}
    return ServerConfig(**{k: v for k, v in vars(args).items() if k in names}).validate()
