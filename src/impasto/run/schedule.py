"""The scale schedule and the time left: pure functions of sizes and counts.

Multi-scale mode optimises first at a small size and uses each result, upsampled,
as the start of the next size: coarse structure is cheap to find at low
resolution, and the full-size iterations then only refine detail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SINGLE_SCALE_ITERATIONS = 500
FINAL_SCALE_ITERATIONS = 40


def fit_long_side(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) of an image of ``size`` scaled so its long side is ``long_side``."""
    w, h = size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def scale_sizes(final_size: int, *, scales: int, min_size: int, ratio: float) -> list[int]:
    """Long sides of the scales, coarse to fine, ending at ``final_size``.

    ``scales`` 1 is single-scale; 0 fits as many sizes as the ratio allows between
    ``min_size`` and ``final_size``; N > 1 spans them evenly (geometrically).
    """
    if scales == 1 or final_size <= min_size:
        return [final_size]
    if scales == 0:
        count = 1 + math.floor(math.log(final_size / min_size, ratio) + 1e-9)
    else:
        count = scales
        ratio = (final_size / min_size) ** (1 / (count - 1))
    sizes = [round(final_size / ratio**k) for k in range(count)][::-1]
    return sorted(set(sizes))


def scale_iterations(n_scales: int, *, iterations: int | None, coarse_iterations: int) -> list[int]:
    """Iterations (at most) at each scale, coarse to fine."""
    if iterations is not None:
        final = iterations
    else:
        final = SINGLE_SCALE_ITERATIONS if n_scales == 1 else FINAL_SCALE_ITERATIONS
    if n_scales == 1:
        return [final]
    # Geometric from the coarsest scale down to the final one: a step at a coarse
    # scale is cheap (cost grows with pixels) and finds the large structures, so
    # most steps are spent there and the full size only refines detail.
    first = coarse_iterations
    if first == 0 or final == 0:
        return [first] * (n_scales - 1) + [final]
    ratio = (final / first) ** (1 / (n_scales - 1))
    return [round(first * ratio**k) for k in range(n_scales - 1)] + [final]


@dataclass(frozen=True)
class Schedule:
    """The sizes a run works at and the iterations planned at each, coarse to fine."""

    sizes: tuple[tuple[int, int], ...]  # (width, height) of each scale
    planned: tuple[int, ...]  # iterations (at most) of each scale
    # Cost of an iteration per pixel at each scale, relative to an untiled one (a tiled
    # scale runs halos and a second forward pass); empty = 1 everywhere.
    costs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.planned) or not self.sizes:
            raise ValueError("a schedule needs one iteration count per size")
        if self.costs and len(self.costs) != len(self.sizes):
            raise ValueError("a schedule needs one cost per size, or none")

    @property
    def long_sides(self) -> list[int]:
        return [max(size) for size in self.sizes]

    def work(self, scale: int) -> float:
        """The cost of one iteration at ``scale``, in pixels (a step's cost grows with them)."""
        w, h = self.sizes[scale]
        return w * h * (self.costs[scale] if self.costs else 1)

    def iterations(self, runs: Sequence[int], scale: int, done: int, finished: bool) -> int:
        """Iterations over all scales: ``runs`` at the scales before ``scale``, ``done``
        there if the scale has ``finished`` early, else as planned."""
        current = done if finished else self.planned[scale]
        return sum(runs) + current + sum(self.planned[scale + 1 :])

    def eta(self, elapsed: float, runs: Sequence[int], scale: int, done: int) -> float:
        """Seconds left, from the time the work done so far took (NaN before any).

        ``runs`` are the iterations run at the scales before ``scale`` and ``done``
        those run at ``scale``; work is weighted by pixels, so a coarse scale's fast
        steps do not make the fine scales look fast.
        """
        work_done = sum(n * self.work(k) for k, n in enumerate(runs)) + done * self.work(scale)
        left = (self.planned[scale] - done) * self.work(scale)
        left += sum(self.planned[k] * self.work(k) for k in range(scale + 1, len(self.sizes)))
        return elapsed / work_done * left if work_done else math.nan
