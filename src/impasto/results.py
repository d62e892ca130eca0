"""What a run reports while it works (:class:`Progress`) and at its end (:class:`StylizeResult`)."""

from __future__ import annotations

import enum
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .io import images, metadata
from .settings import Settings


class StopReason(str, enum.Enum):
    """Why a run ended. The value is what reports and the web API show."""

    DONE = "done"  # every planned iteration ran
    CONVERGED = "converged"  # the loss stopped improving (see --tolerance)
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM; the state can be resumed
    CANCELLED = "cancelled"  # a web job cancelled by its client
    NAN = "nan"  # the loss became NaN or infinite
    OOM = "oom"  # the device ran out of memory

    @property
    def failed(self) -> bool:
        """The run could not go on; the best image so far was kept."""
        return self in (StopReason.NAN, StopReason.OOM)

    def message(
        self, iterations: int, detail: str | None = None, *, name: Callable[[str], str] = str
    ) -> str:
        """One line for the user, without paths: what happened and what to change.

        ``name`` spells a setting the way the reader gives it: the command line passes
        :func:`impasto.settings.flag` (``--size``); by default it is the keyword (``size``).
        """
        n = iterations
        return {
            StopReason.DONE: f"finished {n} iterations",
            StopReason.CONVERGED: f"converged after {n} iterations (the loss had stopped "
            f"improving; see {name('tolerance')})",
            StopReason.INTERRUPTED: f"interrupted after {n} iterations",
            StopReason.CANCELLED: f"cancelled after {n} iterations",
            StopReason.NAN: f"the loss became NaN or infinite after {n} iterations (lower "
            f"{name('learning_rate')} or the loss weights, or use {name('precision')} fp32)",
            StopReason.OOM: f"ran out of memory after {n} iterations"
            + (f" ({detail})" if detail else "")
            + f"; try a smaller {name('size')}",
        }[self]


@dataclass
class Progress:
    """One optimisation step, as reported to callbacks and progress bars."""

    iteration: int  # counted over all scales
    iterations: int  # planned over all scales (the tolerance may stop sooner)
    scale: int  # index of the current scale, 0 = coarsest
    scales: int
    size: tuple[int, int]  # (width, height) being optimised
    scale_iteration: int
    losses: dict[str, float]
    best_total: float
    elapsed: float
    eta: float  # seconds, weighted by the cost of the scales still to run
    _render: Callable[[], Image.Image] = field(repr=False)

    def image(self) -> Image.Image:
        """The current iterate as an 8-bit image (costs a copy; call sparingly)."""
        return self._render()


@dataclass
class StylizeResult:
    image: Image.Image
    settings: Settings
    losses: dict[str, float]
    history: list[dict[str, float]]
    iterations: int
    seconds: float
    setup_seconds: float
    stopped: StopReason
    device: str
    peak_memory_bytes: int
    precision: str = "fp32"  # the precision the network ran in: fp32, bf16 or fp16
    stop_detail: str | None = None  # what ran out, for StopReason.OOM
    scale_sizes: list[int] = field(default_factory=list)
    scale_iterations: list[int] = field(default_factory=list)  # as run
    content_source: object = None
    style_sources: list[object] = field(default_factory=list)
    alpha: Image.Image | None = None

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / self.iterations if self.iterations else math.nan

    def provenance(self) -> dict[str, Any]:
        from . import __version__

        return metadata.provenance(
            __version__,
            self.settings.to_dict(),
            self.content_source,
            self.style_sources,
            self.losses,
            self.iterations,
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the image atomically; a PNG embeds the settings and inputs used."""
        images.check_output_path(path, overwrite=overwrite)
        text = {metadata.PNG_KEY: json.dumps(self.provenance())}
        img = self.image
        if self.alpha is not None and images.output_format(path) in ("PNG", "WEBP", "TIFF"):
            img = images.apply_alpha(img, self.alpha)
        images.save_image(img, path, text=text)

    def report(self) -> dict[str, Any]:
        """What ``--report`` writes: settings, losses, iterations, time and memory."""
        return {
            "settings": self.settings.to_dict(),
            "losses": self.losses,
            "iterations": self.iterations,
            "scale_sizes": self.scale_sizes,
            "scale_iterations": self.scale_iterations,
            "stopped": self.stopped,
            "stop_detail": self.stop_detail,
            "wall_seconds": round(self.seconds, 3),
            "setup_seconds": round(self.setup_seconds, 3),
            "seconds_per_iteration": round(self.seconds_per_iteration, 4)
            if self.iterations
            else None,
            "device": self.device,
            "precision": self.precision,
            "peak_memory_bytes": self.peak_memory_bytes,
            "loss_history": self.history,
        }
