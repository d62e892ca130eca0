"""Evaluators: the loss of an iterate and its gradient, computed one way or another.

An evaluator is called once per optimiser step with the iterate ``x`` (a leaf
tensor that requires a gradient); it returns the weighted loss terms of ``x`` and
leaves their gradient in ``x.grad``. How it gets there is its own business: the
eager evaluator runs the network step by step, the CUDA-graph evaluator replays a
captured step. The loop does not know which one it has.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Protocol

import torch

from ..devices import Machine
from ..loss.gatys import LossTerms

LossFunction = Callable[[torch.Tensor], LossTerms]


class Evaluator(Protocol):
    def __call__(self, x: torch.Tensor) -> LossTerms:
        """The loss terms of ``x``, with their gradient written to ``x.grad``."""
        ...

    def score(self, x: torch.Tensor) -> LossTerms:
        """The loss terms of ``x`` without a gradient."""
        ...


def loss_of_saved_image(loss: LossFunction, x: torch.Tensor, machine: Machine) -> LossTerms:
    """The loss of ``x`` as it will be saved, clipped to 0-255.

    Values outside would be scored but never shown. (A deviation from the reference,
    which clips only the output; it lowers the loss of the saved image.) The gradient
    passes the clip unchanged: a plain clamp has zero gradient outside the range, and
    a pixel thrown out by one large step would stay dead there.
    """
    clipped = x + (x.clamp(0, 255) - x).detach()
    with machine.autocast():
        return loss(clipped)


class EagerEvaluator:
    """Runs the network forward and backward, operation by operation."""

    def __init__(self, loss: LossFunction, machine: Machine):
        self.loss = loss
        self.machine = machine

    def __call__(self, x: torch.Tensor) -> LossTerms:
        x.grad = None
        terms = loss_of_saved_image(self.loss, x, self.machine)
        # Backward even from a NaN loss: checking first would make a GPU wait
        # mid-step, and the optimiser takes no step on a non-finite gradient.
        terms.total.backward()
        return terms

    def score(self, x: torch.Tensor) -> LossTerms:
        with torch.no_grad():
            return loss_of_saved_image(self.loss, x, self.machine)


class CudaGraphEvaluator(EagerEvaluator):
    """Replays one evaluation captured as a CUDA graph at its first call.

    At 512 px a step's ~300 kernels take less time to run on a large GPU than to
    launch one by one from Python; replayed as one graph they do not wait for
    Python (docs/performance.md). The graph reads the iterate and writes its
    gradient in place, so the optimiser is unchanged. If the capture fails, it warns
    once and evaluates eagerly from then on.
    """

    def __init__(self, loss: LossFunction, machine: Machine):
        super().__init__(loss, machine)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.terms: LossTerms | None = None
        self.failed = False

    def __call__(self, x: torch.Tensor) -> LossTerms:
        if self.failed:
            return super().__call__(x)
        if self.graph is None:
            try:
                self.graph, self.terms = self.capture(x)
            except RuntimeError as e:  # e.g. an operation a graph cannot hold
                self.failed = True
                warnings.warn(
                    f"CUDA graph capture failed ({str(e).splitlines()[0]}); "
                    "running without (--no-cuda-graphs avoids this message)",
                    stacklevel=2,
                )
                return super().__call__(x)
        self.graph.replay()
        assert self.terms is not None
        return self.terms

    def capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, LossTerms]:
        device = self.machine.device
        # Warm-up evaluations on a side stream first, as PyTorch requires: cuDNN picks
        # its kernels and the allocator settles. They leave the iterate unchanged.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                x.grad = None
                loss_of_saved_image(self.loss, x, self.machine).total.backward()
        torch.cuda.current_stream(device).wait_stream(side)
        # With no gradient before capture, the replayed backward writes x.grad afresh
        # each time instead of adding to it.
        x.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            terms = loss_of_saved_image(self.loss, x, self.machine)
            terms.total.backward()
        return graph, terms


def make_evaluator(loss: LossFunction, machine: Machine, cuda_graphs: bool) -> Evaluator:
    """The fastest evaluator this machine allows, or the loss's own (a tiled loss has one)."""
    own = getattr(loss, "evaluator", None)
    if own is not None:
        return own(machine)
    if cuda_graphs and machine.device.type == "cuda":
        return CudaGraphEvaluator(loss, machine)
    return EagerEvaluator(loss, machine)
