"""When a scale has converged: the stop test and the best iterate so far."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from ..settings import TOLERANCE_WINDOW

# The loss terms the stop test watches, each on its own.
TERMS = ("content", "style", "tv")


class ToleranceStop:
    """Converged once no term of the best image's loss moved by more than ``tolerance``
    (a fraction of itself) over the last :data:`TOLERANCE_WINDOW` iterations; 0 never
    stops.

    The terms are watched apart, not as their sum: with styles that no image can match
    at once (a blend of two paintings) most of the style loss stays whatever the image
    does, and the total then moves by a tiny fraction of itself while the content term,
    and the image, still change. Given only totals (``terms`` None) it watches the total.

    ``recent`` holds the watched values after each of the last iterations; it is all the
    state the test has (saved and restored by the loop).
    """

    def __init__(self, tolerance: float, recent: Iterable[Iterable[float] | float] | None = None):
        self.tolerance = tolerance
        self.recent: deque[tuple[float, ...]] = deque(
            (_values(r) for r in recent or ()), maxlen=TOLERANCE_WINDOW + 1
        )

    def update(self, best_total: float, terms: Mapping[str, float] | None = None) -> bool:
        """Record the best image's loss after an iteration: its total, and its terms when
        given. True when the scale has converged."""
        watched = (best_total,) if not terms else tuple(terms[k] for k in TERMS if k in terms)
        self.recent.append(watched)
        if self.tolerance <= 0 or len(self.recent) < (self.recent.maxlen or 0):
            return False
        return self.change() < self.tolerance

    def change(self) -> float:
        """The largest move of a watched value over the window, as a fraction of its value."""
        old, new = self.recent[0], self.recent[-1]
        moves = [abs(a - b) / abs(b) for a, b in zip(old, new) if b and math.isfinite(a - b)]
        return max(moves, default=0.0)


def _values(record: Iterable[float] | float) -> tuple[float, ...]:
    # State saved before the terms were watched holds bare totals.
    return (float(record),) if isinstance(record, (int, float)) else tuple(record)


@dataclass
class BestIterate:
    """The lowest-loss iterate seen at a scale: the output is this, not the last one."""

    x: torch.Tensor
    total: float = math.inf
    losses: dict[str, float] = field(default_factory=dict)

    def offer(self, x: torch.Tensor, losses: dict[str, float]) -> None:
        """Keep ``x`` if ``losses`` (its loss terms) are the lowest yet."""
        if losses["total"] < self.total:
            self.total, self.losses = losses["total"], losses
            self.x = x.detach().clone()
