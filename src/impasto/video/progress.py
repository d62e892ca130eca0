"""What a video run reports: the frame being painted, the iteration inside it, the time left."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from ..results import Progress, StopReason


@dataclass
class FrameResult:
    """A finished frame, as the per-frame callback receives it."""

    index: int  # in the output, from 0
    frames: int  # frames in the output
    image: Image.Image  # the frame as written
    losses: dict[str, float]
    iterations: int
    seconds: float
    stopped: StopReason  # done (every planned iteration) or converged

    def stats(self) -> dict[str, object]:
        """The frame's line in a report (without the image)."""
        return {
            "frame": self.index,
            "iterations": self.iterations,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped.value,
            "losses": self.losses,
        }


@dataclass
class VideoProgress:
    """One iteration of one frame, with the video's progress around it."""

    frame: int  # index of the frame being painted
    frames: int  # frames in the output
    done: int  # frames finished, by this run or an earlier one
    step: Progress  # the iteration inside the frame
    elapsed: float  # seconds this run has been painting
    eta: float  # seconds left for the whole video (NaN until there is a measure)

    def image(self) -> Image.Image:
        """The frame being painted, as it is now (costs a copy; call sparingly)."""
        return self.step.image()


@dataclass
class VideoEta:
    """Seconds left for a video, from the time its iterations have taken so far.

    A frame after the first is expected to take as many iterations as the later
    frames finished so far took on average (the tolerance stops most early), or
    ``planned`` before any has finished; an iteration as long as they took on
    average, or as the first frame's before that.
    """

    planned: int  # iterations planned for a frame after the first
    seconds: float = 0.0  # spent on finished later frames
    iterations: int = 0  # run on finished later frames
    counted: int = 0  # later frames finished
    first_rate: float = math.nan  # seconds per iteration of the first frame

    def finished(self, result: FrameResult, first: bool) -> None:
        if first:
            self.first_rate = result.seconds / max(1, result.iterations)
            return
        self.seconds += result.seconds
        self.iterations += result.iterations
        self.counted += 1

    def expected_iterations(self) -> float:
        return self.iterations / self.counted if self.counted else float(self.planned)

    def rate(self) -> float:
        return self.seconds / self.iterations if self.iterations else self.first_rate

    def left(self, step: Progress, first: bool, frames_after: int) -> float:
        """Seconds left: the rest of the current frame and ``frames_after`` more frames."""
        later = frames_after * self.expected_iterations()
        if first:  # the first frame's own estimate knows its scales
            rate = self.rate() if self.counted else step.elapsed / max(1, step.iteration)
            return step.eta + later * rate
        current = max(0.0, self.expected_iterations() - step.iteration)
        rate = self.rate()
        if math.isnan(rate):
            rate = step.elapsed / max(1, step.iteration)
        return (current + later) * rate
