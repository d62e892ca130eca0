"""The optimisation loop: from settings and images to a stylised image.

:class:`Stylizer` holds the whole state of a run (scale, iterate, optimiser, best
image so far), so a caller can stop it between any two iterations, take the best
result, save the state (:meth:`Stylizer.state_dict`) and resume it later to the
same result. The parts it drives each live in their own module: the schedule
(``schedule.py``), the inputs and loss at a size (``inputs.py``), the evaluator of
loss and gradient (``evaluate.py``), the optimiser (``impasto.optim``) and the stop
test (``stopping.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ..devices import is_out_of_memory
from ..optim import make_optimizer
from ..results import Progress, StopReason, StylizeResult
from ..settings import Settings
from .evaluate import CudaGraphEvaluator, Evaluator, make_evaluator
from .inputs import ImageInput
from .setup import prepare
from .stopping import BestIterate, ToleranceStop
from .tiled import TileMeter


class Stylizer:
    """One stylisation run. Iterate :meth:`run` for progress; :meth:`result` at any time."""

    def __init__(
        self,
        content: ImageInput,
        styles: ImageInput | Sequence[ImageInput],
        settings: Settings | None = None,
        *,
        content_mask_images: Sequence[Image.Image] | None = None,
        style_mask_images: Sequence[Image.Image] | None = None,
        state: dict[str, Any] | None = None,
        tiles: TileMeter | None = None,
    ):
        """Masks given as images are used instead of the files the settings name;
        ``state``, from :meth:`state_dict`, continues a run instead of starting one;
        ``tiles`` reports the tiles of a tiled size as they are done (the targets of
        the first scale are measured here), else ``self.targets.tiles`` does."""
        t0 = time.perf_counter()
        setup = prepare(
            content,
            styles,
            settings,
            content_mask_images=content_mask_images,
            style_mask_images=style_mask_images,
            tiles=tiles,
        )
        self.settings, self.machine, self.inputs = setup.settings, setup.machine, setup.inputs
        self.schedule, self.targets = setup.schedule, setup.targets

        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self.scale_runs: list[int] = []  # iterations actually run at each finished scale
        self.stopped: StopReason | None = None
        self.stop_detail: str | None = None
        self.run_seconds = 0.0
        self._stop_requested = False
        self._graphs = self.settings.cuda_graphs
        if state is None:
            generator = torch.Generator().manual_seed(self.settings.seed)
            self._enter_scale(0, self.targets.start(self.schedule.sizes[0], generator))
        else:
            self.load_state_dict(state)
        self.setup_seconds = time.perf_counter() - t0

    @property
    def device(self) -> torch.device:
        return self.machine.device

    @property
    def sizes(self) -> list[int]:
        """Long sides of the scales, coarse to fine."""
        return self.schedule.long_sides

    def restart(self, start: torch.Tensor) -> None:
        """Begin again at the first scale from ``start``, a (1, 3, H, W) image in 0-255."""
        self.iteration, self.run_seconds = 0, 0.0
        self.history, self.scale_runs = [], []
        self.stopped = self.stop_detail = None
        self._enter_scale(0, start.to(self.device))

    def _enter_scale(self, index: int, start: torch.Tensor) -> None:
        self.scale = index
        w, h = self.schedule.sizes[index]
        self.loss_fn = self.targets.loss((w, h))
        if start.shape[-2:] != (h, w):
            start = F.interpolate(start, size=(h, w), mode="bicubic", align_corners=False)
        self.x = start.detach().clone().contiguous().requires_grad_(True)
        self.optimizer = make_optimizer(self.x, self.settings)
        self.evaluator: Evaluator = make_evaluator(self.loss_fn, self.machine, self._graphs)
        self.scale_iteration = 0
        self.best = BestIterate(self.x.detach().clone())
        self.stop_test = ToleranceStop(self.settings.tolerance)
        self.converged = False
        self._last: dict[str, float] = {}

    # --- the loop -----------------------------------------------------------------
    def _closure(self) -> torch.Tensor:
        terms = self.evaluator(self.x)
        self._last = terms.as_floats()
        # The loss belongs to the iterate *before* this step's update.
        self.best.offer(self.x, self._last)
        return terms.total.detach()

    def request_stop(self) -> None:
        """Stop after the current iteration (safe to call from a signal handler)."""
        self._stop_requested = True

    def planned_iterations(self) -> int:
        """Iterations over all scales: as run where finished, as planned where still to run."""
        return self.schedule.iterations(
            self.scale_runs, self.scale, self.scale_iteration, self.converged
        )

    def run(self) -> Iterator[Progress]:
        """Optimise, yielding after each iteration. Safe to abandon at any point."""
        self._stop_requested = False
        self.stopped = self.stop_detail = None  # a run started again is no longer stopped
        start = time.perf_counter() - self.run_seconds
        try:
            while True:
                yield from self._run_scale(start)
                if self._stop_requested or self.stopped is not None:
                    return
                # The last update of a scale has not been scored yet.
                self.best.offer(self.x, self.evaluator.score(self.x).as_floats())
                self.scale_runs.append(self.scale_iteration)
                if self.scale + 1 == len(self.schedule.sizes):
                    self._release_optimizer()
                    return
                if isinstance(self.evaluator, CudaGraphEvaluator) and self.evaluator.failed:
                    self._graphs = False  # no point trying again at the next scale
                self._enter_scale(self.scale + 1, self.best.x)
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            self.stopped = StopReason.OOM
            self.stop_detail = f"at {self.sizes[self.scale]} px: {str(e).splitlines()[0]}"
        finally:
            self.run_seconds = time.perf_counter() - start
            self.machine.release()

    def _release_optimizer(self) -> None:
        """Free the gradient and the optimiser's history once the last scale is done:
        at print sizes they are a gigabyte that rendering and saving can use."""
        self.x.grad = None
        self.optimizer = make_optimizer(self.x, self.settings)

    def _run_scale(self, start: float) -> Iterator[Progress]:
        planned = self.schedule.planned[self.scale]
        while self.scale_iteration < planned and not self.converged and not self._stop_requested:
            self.optimizer.step(self._closure)
            if not math.isfinite(self._last["total"]):
                self.stopped = StopReason.NAN
                return
            self.run_seconds = time.perf_counter() - start
            self.history.append(
                {**self._last, "scale": self.sizes[self.scale], "seconds": self.run_seconds}
            )
            self.iteration += 1
            self.scale_iteration += 1
            self.converged = self.stop_test.update(self.best.total, self.best.losses)
            yield self._progress()

    def _progress(self) -> Progress:
        return Progress(
            iteration=self.iteration,
            iterations=self.planned_iterations(),
            scale=self.scale,
            scales=len(self.schedule.sizes),
            size=self.schedule.sizes[self.scale],
            scale_iteration=self.scale_iteration,
            losses=self._last,
            best_total=self.best.total,
            elapsed=self.run_seconds,
            eta=self.schedule.eta(
                self.run_seconds, self.scale_runs, self.scale, self.scale_iteration
            ),
            _render=lambda: self.targets.render(self.x),
        )

    # --- the result ---------------------------------------------------------------
    def stop_reason(self) -> StopReason:
        """Why the run ended (or would end now): as recorded, else done or converged."""
        if self.stopped is not None:
            return self.stopped
        return StopReason.CONVERGED if self.scale_runs and self.converged else StopReason.DONE

    def result(self, stopped: StopReason | str | None = None) -> StylizeResult:
        """The best image so far, at the final size (also after an interruption)."""
        if stopped:
            self.stopped = StopReason(stopped)
        best = self.best
        if not best.losses:  # nothing run yet: score the start
            best.losses = self.evaluator.score(self.x).as_floats()
        w, h = self.schedule.sizes[-1]
        x = best.x
        if x.shape[-2:] != (h, w):  # stopped at a coarser scale
            x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)
        scale_iterations = list(self.scale_runs)
        if len(self.scale_runs) == self.scale:
            scale_iterations.append(self.scale_iteration)
        return StylizeResult(
            image=self.targets.finish(self.targets.render(x)),
            settings=self.settings,
            losses=best.losses,
            history=self.history,
            iterations=self.iteration,
            seconds=self.run_seconds,
            setup_seconds=self.setup_seconds,
            stopped=self.stop_reason(),
            stop_detail=self.stop_detail,
            device=str(self.device),
            precision=self.machine.precision,
            peak_memory_bytes=self.machine.peak_memory_bytes(),
            scale_sizes=list(self.sizes),
            scale_iterations=scale_iterations,
            content_source=self.inputs.content_source,
            style_sources=list(self.inputs.style_sources),
            alpha=self.inputs.alpha,
        )

    # --- saving and resuming --------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything the next iteration depends on, beyond the settings and inputs."""
        return {
            "scale": self.scale,
            "scale_runs": list(self.scale_runs),
            "scale_iteration": self.scale_iteration,
            "iteration": self.iteration,
            "x": self.x.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "best_x": self.best.x.cpu(),
            "best_total": self.best.total,
            "best_losses": self.best.losses,
            "recent": list(self.stop_test.recent),
            "converged": self.converged,
            "last": self._last,
            "history": self.history,
            "run_seconds": self.run_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output, on this run's device."""
        device = self.machine.device
        self.scale_runs = list(state["scale_runs"])
        self.iteration = state["iteration"]
        self.history = list(state["history"])
        self.run_seconds = state["run_seconds"]
        self._enter_scale(state["scale"], state["x"].to(device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scale_iteration = state["scale_iteration"]
        self.best = BestIterate(
            state["best_x"].to(device), state["best_total"], dict(state["best_losses"])
        )
        self.stop_test = ToleranceStop(self.settings.tolerance, list(state["recent"]))
        self.converged = state["converged"]
        self._last = dict(state["last"])
