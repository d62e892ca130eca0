"""When a scale has converged: the stop test and the best iterate so far."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import torch

from ..settings import TOLERANCE_WINDOW


class ToleranceStop:
    """Converged once the best loss improved by less than ``tolerance`` (a fraction)
    over the last :data:`TOLERANCE_WINDOW` iterations; 0 never stops."""

    def __init__(self, tolerance: float, recent: list[float] | None = None):
        self.tolerance = tolerance
        self.recent: deque[float] = deque(recent or (), maxlen=TOLERANCE_WINDOW + 1)

    def update(self, best_total: float) -> bool:
        """Record the best loss after an iteration; True when the scale has converged."""
        self.recent.append(best_total)
        if self.tolerance <= 0 or len(self.recent) < (self.recent.maxlen or 0):
            return False
        gain = (self.recent[0] - self.recent[-1]) / abs(self.recent[-1])
        return gain < self.tolerance


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
