"""The frame loop: each frame painted from the one before it, warped by the optical flow.

A frame with no painted frame before it is painted as a single image would be
(:class:`~impasto.run.loop.Stylizer`, every setting honoured, multi-scale
included). Every later frame starts from the earlier painted frame warped into it
(disoccluded pixels from the content frame) and is optimised under the Gatys loss
plus the temporal loss (:mod:`.temporal`), with the engine's evaluator, optimiser,
best iterate and stop test. The network, the style targets and the evaluator (a
CUDA graph on GPUs) are built once for all the frames; only the content targets
and the temporal targets change, in place.

:class:`FrameLoop` paints any range [start, end) of frames given the painted frames
before ``start`` (or none), so a long video can be cut into chunks painted apart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..devices import is_out_of_memory
from ..errors import SettingsError
from ..io import images
from ..optim import make_optimizer
from ..results import Progress, StopReason
from ..run.evaluate import make_evaluator
from ..run.inputs import ImageInput
from ..run.loop import Stylizer
from ..run.setup import RunSetup, prepare
from ..run.stopping import BestIterate, ToleranceStop
from ..settings import Settings
from . import flow as flows
from .progress import FrameResult, VideoEta, VideoProgress
from .settings import FRAME_ITERATIONS, VideoSettings
from .temporal import VideoLoss


@dataclass
class Painted:
    """What later frames need of a painted frame: its content (grey) and its paint."""

    grey: np.ndarray  # (H, W) uint8 content frame, for the flow
    paint: Image.Image  # the frame as optimised (before --preserve-colors)


def frame_iterations(settings: Settings) -> int:
    """Iterations of each frame after the first: --iterations, else the video default."""
    return FRAME_ITERATIONS if settings.iterations is None else settings.iterations


class FramePainter:
    """Paints frames one after another with one network, loss and evaluator."""

    def __init__(self, setup: RunSetup, video: VideoSettings, iterations: int):
        self.setup, self.video, self.iterations = setup, video, iterations
        self.settings, self.machine, self.targets = setup.settings, setup.machine, setup.targets
        self.size = setup.schedule.sizes[-1]
        w, h = self.size
        device = self.machine.device
        gatys = self.targets.loss(self.size)
        if getattr(gatys, "evaluator", None) is not None:  # a tiled loss evaluates itself
            raise SettingsError(
                f"video frames are not painted in tiles; {w}x{h} needs them here: use a "
                "smaller --size",
                "tile",
            )
        self.loss = VideoLoss(
            gatys,
            video.temporal_weight,
            len(video.temporal_frames),
            self.size,
            device,
        )
        self.x = torch.zeros(1, 3, h, w, device=device).requires_grad_(True)
        self.evaluator = make_evaluator(self.loss, self.machine, self.settings.cuda_graphs)
        self.stop_requested = False

    def paint(
        self, index: int, frame: Image.Image, earlier: Mapping[int, Painted]
    ) -> Generator[Progress, None, tuple[FrameResult, Painted] | None]:
        """Paint ``frame`` held to ``earlier`` (by offset); None if stopped before the end."""
        t0 = time.perf_counter()
        self.targets.inputs.content = frame  # render() and finish() use the frame's colours
        content = self.targets.as_network_sees(self.targets.tensor(frame, self.size))
        with self.machine.autocast():
            self.loss.gatys.set_content(content)
        grey = flows.grey(np.asarray(frame))
        start = self._start(index, content, grey, earlier)
        best, steps, reason = yield from self._optimise(start, t0)
        if reason in (StopReason.INTERRUPTED, StopReason.NAN):
            return None
        paint = self.targets.render(best.x)
        result = FrameResult(
            index=index,
            frames=0,
            image=self.targets.finish(paint),
            losses=best.losses,
            iterations=steps,
            seconds=time.perf_counter() - t0,
            stopped=reason,
        )
        return result, Painted(grey, paint)

    def _start(
        self, index: int, content: torch.Tensor, grey: np.ndarray, earlier: Mapping[int, Painted]
    ) -> torch.Tensor:
        """The first iterate; sets the temporal targets (none when painting independently)."""
        offsets = [k for k in sorted(self.video.temporal_frames) if k in earlier]
        if self.video.temporal_weight == 0 or not offsets:
            self.loss.clear_targets()
            generator = torch.Generator().manual_seed(self.settings.seed + index)
            return self.targets.start(self.size, generator)
        warped, weights, start = [], [], None
        for k in offsets:
            back = flows.flow(grey, earlier[k].grey, self.video.flow)
            forward = flows.flow(earlier[k].grey, grey, self.video.flow)
            reliable = flows.reliability(back, forward)
            paint = self.targets.as_network_sees(images.to_tensor(earlier[k].paint))
            omega = flows.warp(_hwc(paint), back, cubic=True)
            warped.append(omega)
            weights.append(reliable.weights)
            if start is None:  # from the nearest frame; disocclusions from the content
                keep = torch.from_numpy(~reliable.disoccluded)[None, None].to(content.device)
                start = torch.where(keep, _nchw(omega, content.device), content)
        weights = flows.long_term_weights(weights)
        slots = len(self.video.temporal_frames)
        w_all = np.zeros((slots, 1, *grey.shape), np.float32)
        o_all = np.zeros((slots, 3, *grey.shape), np.float32)
        for j, (omega, c) in enumerate(zip(warped, weights)):
            o_all[j], w_all[j, 0] = omega.transpose(2, 0, 1), c
        device = content.device
        self.loss.set_targets(
            torch.from_numpy(o_all).to(device), torch.from_numpy(w_all).to(device)
        )
        assert start is not None
        return start

    def _optimise(
        self, start: torch.Tensor, t0: float
    ) -> Generator[Progress, None, tuple[BestIterate, int, StopReason]]:
        """Optimise from ``start``: the best iterate, the steps run and why they ended."""
        with torch.no_grad():
            self.x.copy_(start)
        optimizer = make_optimizer(self.x, self.settings)
        best = BestIterate(self.x.detach().clone())
        stop = ToleranceStop(self.settings.tolerance)
        last: dict[str, float] = {}

        def closure() -> torch.Tensor:
            nonlocal last
            terms = self.evaluator(self.x)
            last = terms.as_floats()
            best.offer(self.x, last)  # the loss of the iterate before this step's update
            return terms.total.detach()

        steps, reason = 0, StopReason.DONE
        while steps < self.iterations:
            if self.stop_requested:
                return best, steps, StopReason.INTERRUPTED
            optimizer.step(closure)
            steps += 1
            if not math.isfinite(last["total"]):
                return best, steps, StopReason.NAN
            converged = stop.update(best.total)
            yield self._progress(steps, last, best, t0)
            if converged:
                reason = StopReason.CONVERGED
                break
        best.offer(self.x, self.evaluator.score(self.x).as_floats())  # the last update
        return best, steps, reason

    def _progress(
        self, steps: int, losses: dict[str, float], best: BestIterate, t0: float
    ) -> Progress:
        elapsed = time.perf_counter() - t0
        return Progress(
            iteration=steps,
            iterations=self.iterations,
            scale=0,
            scales=1,
            size=self.size,
            scale_iteration=steps,
            losses=losses,
            best_total=best.total,
            elapsed=elapsed,
            eta=elapsed / steps * (self.iterations - steps),
            _render=lambda: self.targets.render(self.x),
        )


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().cpu()[0].permute(1, 2, 0).contiguous().numpy()


def _nchw(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


Frames = Iterable[tuple[int, Image.Image]]  # (index, upright frame at the working size)
Writer = Callable[[FrameResult, Image.Image], None]  # a finished frame and its paint


class FrameLoop:
    """Paints the frames [start, end) of a video in order, writing each as it finishes.

    ``settings`` are the engine's for the working size (its long side as ``size``,
    the seed drawn); ``earlier`` holds the painted frames before ``start`` the
    temporal loss looks back to (by index; none: the first frame is painted from
    scratch). ``frames`` must begin early enough to include those frames' content.
    """

    def __init__(
        self,
        styles: Sequence[ImageInput],
        settings: Settings,
        video: VideoSettings,
        *,
        total: int,
        done: int = 0,
    ):
        self.styles, self.settings, self.video = list(styles), settings, video
        self.total, self.done = total, done
        self.eta = VideoEta(frame_iterations(settings))
        self.painter: FramePainter | None = None
        self.stopped: StopReason | None = None
        self.stop_detail: str | None = None
        self.elapsed = 0.0

    def request_stop(self) -> None:
        """Stop after the current iteration; the unfinished frame is painted again later."""
        self.stopped = StopReason.INTERRUPTED
        if self.painter is not None:
            self.painter.stop_requested = True

    def run(
        self,
        frames: Frames,
        start: int,
        end: int,
        earlier: Mapping[int, Image.Image],
        write: Writer,
        reference: Image.Image | None = None,
    ) -> Iterator[VideoProgress]:
        """Paint, yielding after every iteration. ``reference`` is the frame the colour
        maps are measured on where no frame is painted from scratch (default: the frame
        at ``start``)."""
        reach = max(self.video.temporal_frames)
        memory: dict[int, Painted] = {}
        t0 = time.perf_counter() - self.elapsed
        try:
            for index, frame in frames:
                if index >= end or self.stopped is not None:
                    break
                if index < start:  # painted before: its content is kept for the flow
                    if index in earlier:
                        memory[index] = Painted(flows.grey(np.asarray(frame)), earlier[index])
                    continue
                near = {
                    k: memory[index - k] for k in self.video.temporal_frames if index - k in memory
                }
                outcome = yield from self._paint(index, frame, near, end, reference, t0)
                if outcome is None:
                    return
                result, painted = outcome
                write(result, painted.paint)
                self.done += 1
                memory[index] = painted
                memory.pop(index - reach, None)
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            self.stopped = StopReason.OOM
            self.stop_detail = str(e).splitlines()[0]
        finally:
            self.elapsed = time.perf_counter() - t0
            if self.painter is not None:
                self.painter.machine.release()

    def _paint(
        self,
        index: int,
        frame: Image.Image,
        near: dict[int, Painted],
        end: int,
        reference: Image.Image | None,
        t0: float,
    ) -> Generator[VideoProgress, None, tuple[FrameResult, Painted] | None]:
        first = not near
        if self.painter is None and not first:
            setup = prepare(reference or frame, self.styles, self.settings)
            self.painter = FramePainter(setup, self.video, frame_iterations(self.settings))
        steps = self._first(frame) if first else self.painter.paint(index, frame, near)
        try:
            while True:
                step = next(steps)
                self.elapsed = time.perf_counter() - t0
                left = self.eta.left(step, first, end - index - 1)
                yield VideoProgress(index, self.total, self.done, step, self.elapsed, left)
        except StopIteration as stop:
            outcome = stop.value
        if outcome is None:
            self.stopped = self.stopped or StopReason.NAN
            return None
        outcome[0].index, outcome[0].frames = index, self.total
        self.eta.finished(outcome[0], first)
        return outcome

    def _first(
        self, frame: Image.Image
    ) -> Generator[Progress, None, tuple[FrameResult, Painted] | None]:
        """A frame with nothing painted before it: as a single image, every setting honoured."""
        settings = self.settings.replace(iterations=self.video.first_iterations)
        st = Stylizer(frame, self.styles, settings)
        for step in st.run():
            yield step
            if self.stopped is not None:
                break  # a Stylizer's run may be abandoned between any two iterations
        if self.stopped is not None or st.stopped is not None:
            self.stopped = self.stopped or st.stopped
            self.stop_detail = st.stop_detail
            return None
        result = st.result()
        if self.painter is None:  # the later frames reuse its network and colour maps
            setup = RunSetup(
                st.settings.replace(iterations=self.settings.iterations),
                st.machine,
                st.inputs,
                st.schedule,
                st.targets,
            )
            self.painter = FramePainter(setup, self.video, frame_iterations(self.settings))
        self.painter.machine.prepare(self.settings.threads)  # the Stylizer released it
        paint = st.targets.render(st.best.x)
        frame_result = FrameResult(
            index=0,
            frames=0,
            image=st.targets.finish(paint),
            losses=result.losses,
            iterations=result.iterations,
            seconds=result.seconds,
            stopped=result.stopped,
        )
        return frame_result, Painted(flows.grey(np.asarray(frame)), paint)
