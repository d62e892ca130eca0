"""The optimisers of the image, and the contract every one of them keeps.

The step contract, which the run loop relies on:

- ``optimizer.step(closure)`` makes one update of the iterate and calls
  ``closure`` exactly once per step; the closure returns the loss (a 0-d tensor)
  of the iterate as it was before the update and leaves its gradient in
  ``x.grad``. One evaluation per step is what lets progress, checkpoints,
  interruption and the best-iterate bookkeeping work per iteration.
- The iterate is updated in place: the loop, the evaluators and a captured CUDA
  graph keep reading the same tensor.
- ``state_dict()`` and ``load_state_dict()`` round-trip everything the next step
  depends on, so that a resumed run continues to the image an uninterrupted run
  reaches.
- A non-finite gradient makes no step (the loop then stops the run).

A new optimiser is a function ``(x, settings) -> torch.optim.Optimizer`` added to
:data:`OPTIMIZERS` (and its name to the ``optimizer`` setting's choices).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..run.tiling import is_tiled
from ..settings import Settings
from .lbfgs import LBFGS

# Pairs of L-BFGS history at tiled sizes, each 12 bytes per pixel in bf16: together as
# much as the five float32 images a run keeps anyway (docs/tiled.md measures the cost).
PRINT_HISTORY = 5

OptimizerFactory = Callable[[torch.Tensor, Settings], torch.optim.Optimizer]


def _lbfgs(x: torch.Tensor, settings: Settings) -> torch.optim.Optimizer:
    # One evaluation per step, no line search, as in the reference implementations
    # (see lbfgs.py for how it differs from torch.optim.LBFGS).
    lr = settings.resolved_learning_rate()
    if is_tiled(settings.tile, (x.shape[-1], x.shape[-2])):
        # A print: the history in bf16, and at most PRINT_HISTORY pairs (docs/tiled.md).
        m = min(settings.lbfgs_history, PRINT_HISTORY)
        return LBFGS([x], lr=lr, history_size=m, history_dtype=torch.bfloat16)
    return LBFGS([x], lr=lr, history_size=settings.lbfgs_history)


def _adam(x: torch.Tensor, settings: Settings) -> torch.optim.Optimizer:
    lr = settings.resolved_learning_rate()
    return torch.optim.Adam(
        [x], lr=lr, betas=(settings.beta1, settings.beta2), eps=settings.epsilon
    )


OPTIMIZERS: dict[str, OptimizerFactory] = {"lbfgs": _lbfgs, "adam": _adam}


def make_optimizer(x: torch.Tensor, settings: Settings) -> torch.optim.Optimizer:
    """The optimiser the settings name, over the iterate ``x``."""
    return OPTIMIZERS[settings.optimizer](x, settings)
