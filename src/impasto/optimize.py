"""The optimisation loop: from settings and images to a stylised image.

:class:`Stylizer` holds the whole state of a run (scale, iterate, optimiser, best
image so far), so a caller can stop it between any two iterations, take the best
result, save the state and resume it later to the same result.

Multi-scale mode optimises first at a small size and uses each result, upsampled,
as the start of the next size: coarse structure is cheap to find at low
resolution, and the full-size iterations then only refine detail.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from . import devices, images
from .color import preserve_colors
from .errors import ImpastoError
from .losses import GatysLoss
from .results import Progress, StylizeResult
from .settings import TOLERANCE_WINDOW, VGG19_LAYERS, Settings
from .vgg import VGG19Features
from .weights import load_weights

ImageInput = str | os.PathLike | Image.Image

# Mean pixel of the ImageNet training set (RGB): the grey the noise start is centred on.
MEAN_PIXEL_RGB = (123.68, 116.779, 103.939)
# Standard deviation of the starting noise in pixel units, as in the reference.
NOISE_STD = 0.256


def build_network(settings: Settings, layers: set[str], device: torch.device) -> VGG19Features:
    """The frozen network, truncated after the deepest of ``layers``."""
    last = max(layers, key=VGG19_LAYERS.index) if layers else "relu1_1"
    net = VGG19Features(load_weights(settings.weights), pooling=settings.pooling, last_layer=last)
    net = net.to(device)
    if device.type == "cpu":
        # Channels-last convolutions are markedly faster on x86 CPUs (oneDNN).
        net.use_channels_last()
    return net


def open_image(source: ImageInput) -> tuple[Image.Image, Image.Image | None]:
    """RGB pixels and the alpha channel (None when opaque) of a file or PIL image."""
    if isinstance(source, Image.Image):
        return images.to_rgb_and_alpha(source)
    return images.load_image_and_alpha(source)


def size_for(img: Image.Image, long_side: int) -> tuple[int, int]:
    """(width, height) of ``img`` scaled so its long side is ``long_side``."""
    w, h = img.size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def is_out_of_memory(error: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", ())
    return isinstance(error, oom) or (
        isinstance(error, RuntimeError)
        and any(s in str(error) for s in ("out of memory", "can't allocate memory"))
    )


class Stylizer:
    """One stylisation run. Iterate :meth:`run` for progress; :meth:`result` at any time."""

    def __init__(
        self,
        content: ImageInput,
        styles: ImageInput | Sequence[ImageInput],
        settings: Settings | None = None,
        *,
        _start: bool = True,
    ):
        t0 = time.perf_counter()
        settings = (settings or Settings()).replace()
        if isinstance(styles, (str, os.PathLike, Image.Image)):
            styles = [styles]
        settings.validate(n_styles=len(styles))
        if settings.seed is None:
            settings.seed = random.SystemRandom().randrange(2**31)
        self.settings = settings
        self.device = devices.resolve_device(settings.device)
        self.amp_dtype = devices.resolve_precision(settings.precision, self.device)
        if self.device.type == "cpu":
            devices.configure_threads(settings.threads)
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes per scale: pick fastest kernels

        self.content_source = content
        self.style_sources = list(styles)
        self.content_image, self.alpha = open_image(content)
        self.style_images = [open_image(s)[0] for s in styles]
        final = max(self.content_image.size) if settings.size == 0 else settings.size
        self.sizes = settings.scale_sizes(final)
        self.planned = settings.scale_iterations(len(self.sizes))
        self._check_memory(size_for(self.content_image, final))

        layers = set(settings.content_layer_weights()) | set(settings.style_layers)
        self.net = build_network(settings, layers, self.device)
        if settings.compile:
            self.net.forward = torch.compile(self.net.forward)  # type: ignore[method-assign]

        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self.scale_runs: list[int] = []  # iterations actually run at each finished scale
        self.stopped = "done"
        self.run_seconds = 0.0
        self._stop_requested = False
        if _start:
            generator = torch.Generator().manual_seed(settings.seed)
            self._enter_scale(0, self._initial_image(generator))
        self.setup_seconds = time.perf_counter() - t0

    # --- set-up -----------------------------------------------------------------
    def _check_memory(self, size: tuple[int, int]) -> None:
        """Refuse, before any heavy work, a size that cannot fit in memory."""
        w, h = size
        free = devices.available_memory_bytes(self.device)
        need = devices.estimate_memory_bytes(h, w, self.amp_dtype)
        if free is not None and need > free:
            fits = devices.largest_size_that_fits(h, w, free, self.amp_dtype)
            raise ImpastoError(
                f"a {w}x{h} image needs about {need / 1e9:.1f} GB but only "
                f"{free / 1e9:.1f} GB is free on {self.device}; use --size {fits} or smaller"
            )

    def _tensor(self, img: Image.Image, size: tuple[int, int]) -> torch.Tensor:
        if img.size != size:
            img = img.resize(size, Image.Resampling.LANCZOS)
        return images.to_tensor(img).to(self.device)

    def _initial_image(self, gen: torch.Generator) -> torch.Tensor:
        s = self.settings
        w, h = size_for(self.content_image, self.sizes[0])
        # Noise is drawn on the CPU so a seed gives the same start on every device.
        noise = torch.randn((1, 3, h, w), generator=gen) * NOISE_STD
        noise = (noise + torch.tensor(MEAN_PIXEL_RGB).view(1, 3, 1, 1)).to(self.device)
        if s.initial == "noise":
            return noise
        if s.initial == "content":
            start_img = self.content_image
        elif s.initial == "style":
            start_img = self.style_images[0]
        else:
            start_img = images.load_image(s.initial)
        start = self._tensor(start_img, (w, h))
        b = s.initial_noiseblend
        return (1 - b) * start + b * noise if b > 0 else start

    # multiscale-ready: per-scale set-up happens in build_loss() and _enter_scale().
    def build_loss(self, size: tuple[int, int]) -> GatysLoss:
        """The loss at one output size; style images scale with it as --style-scales says."""
        s = self.settings
        content = self._tensor(self.content_image, size)
        styles = [
            self._tensor(img, size_for(img, max(16, round(max(size) * s.style_scale_for(i)))))
            for i, img in enumerate(self.style_images)
        ]
        with devices.autocast(self.device, self.amp_dtype):
            return GatysLoss(
                self.net,
                content,
                styles,
                content_weight=s.content_weight,
                content_layers=s.content_layer_weights(),
                style_weight=s.style_weight,
                style_layers=s.style_layer_weights(),
                style_blend=s.style_blend(len(styles)),
                tv_weight=s.tv_weight,
            )

    def _enter_scale(self, index: int, start: torch.Tensor) -> None:
        self.scale = index
        size = size_for(self.content_image, self.sizes[index])
        self.loss_fn = self.build_loss(size)
        if start.shape[-2:] != (size[1], size[0]):
            start = F.interpolate(
                start, size=(size[1], size[0]), mode="bicubic", align_corners=False
            )
        self.x = start.detach().clone().contiguous().requires_grad_(True)
        self.optimizer = self._make_optimizer()
        self.scale_iteration = 0
        self.best_total = math.inf
        self.best_losses: dict[str, float] = {}
        self.best_x = self.x.detach().clone()
        self._recent: deque[float] = deque(maxlen=TOLERANCE_WINDOW + 1)
        self.converged = False

    def _make_optimizer(self) -> torch.optim.Optimizer:
        s = self.settings
        lr = s.resolved_learning_rate()
        if s.optimizer == "lbfgs":
            # One iteration per step() so progress, checkpoints and interruption work
            # per iteration; no line search, one evaluation per iteration, as in the
            # reference implementations.
            return torch.optim.LBFGS([self.x], lr=lr, max_iter=1, history_size=100)
        return torch.optim.Adam([self.x], lr=lr, betas=(s.beta1, s.beta2), eps=s.epsilon)

    # --- the loop -----------------------------------------------------------------
    def _losses(self) -> Any:
        with devices.autocast(self.device, self.amp_dtype):
            return self.loss_fn(self.x)

    def _evaluate(self) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        terms = self._losses()
        total = terms.total
        if torch.isfinite(total):
            total.backward()
        self._last = terms.as_floats()
        # The loss belongs to the iterate *before* this step's update: keep it if best.
        if self._last["total"] < self.best_total:
            self.best_total = self._last["total"]
            self.best_losses = self._last
            self.best_x = self.x.detach().clone()
        return total.detach()

    def request_stop(self) -> None:
        """Stop after the current iteration (safe to call from a signal handler)."""
        self._stop_requested = True

    def _work(self, scale: int) -> int:
        w, h = size_for(self.content_image, self.sizes[scale])
        return w * h

    def _eta(self, elapsed: float) -> float:
        done = sum(n * self._work(k) for k, n in enumerate(self.scale_runs))
        done += self.scale_iteration * self._work(self.scale)
        left = (self.planned[self.scale] - self.scale_iteration) * self._work(self.scale)
        left += sum(self.planned[k] * self._work(k) for k in range(self.scale + 1, len(self.sizes)))
        return elapsed / done * left if done else math.nan

    def planned_iterations(self) -> int:
        """Iterations over all scales: as run where finished, as planned where still to run."""
        current = self.scale_iteration if self.converged else self.planned[self.scale]
        return sum(self.scale_runs) + current + sum(self.planned[self.scale + 1 :])

    def run(self) -> Iterator[Progress]:
        """Optimise, yielding after each iteration. Safe to abandon at any point."""
        self._stop_requested = False
        start = time.perf_counter() - self.run_seconds
        try:
            while True:
                while (
                    self.scale_iteration < self.planned[self.scale]
                    and not self.converged
                    and not self._stop_requested
                ):
                    self.optimizer.step(self._evaluate)
                    if not math.isfinite(self._last["total"]):
                        self.stopped = "nan"
                        return
                    self.history.append({**self._last, "scale": self.sizes[self.scale]})
                    self.iteration += 1
                    self.scale_iteration += 1
                    self._recent.append(self.best_total)
                    tol = self.settings.tolerance
                    if tol > 0 and len(self._recent) == self._recent.maxlen:
                        gain = (self._recent[0] - self._recent[-1]) / abs(self._recent[-1])
                        self.converged = gain < tol
                    self.run_seconds = time.perf_counter() - start
                    yield self._progress()
                if self._stop_requested:
                    return
                self._score_last_update()
                self.scale_runs.append(self.scale_iteration)
                if self.scale + 1 == len(self.sizes):
                    return
                self._enter_scale(self.scale + 1, self.best_x)
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            self.stopped = "oom"
            self.oom_message = str(e).splitlines()[0]
        finally:
            self.run_seconds = time.perf_counter() - start

    def _progress(self) -> Progress:
        w, h = size_for(self.content_image, self.sizes[self.scale])
        return Progress(
            iteration=self.iteration,
            iterations=self.planned_iterations(),
            scale=self.scale,
            scales=len(self.sizes),
            size=(w, h),
            scale_iteration=self.scale_iteration,
            losses=self._last,
            best_total=self.best_total,
            elapsed=self.run_seconds,
            eta=self._eta(self.run_seconds),
            _render=lambda: images.to_pil(self.x),
        )

    def _score_last_update(self) -> None:
        """The last update of a scale has not been scored yet: score it, without a graph."""
        with torch.no_grad():
            final = self._losses().as_floats()
        if final["total"] < self.best_total:
            self.best_total, self.best_losses = final["total"], final
            self.best_x = self.x.detach().clone()

    def result(self, stopped: str | None = None) -> StylizeResult:
        """The best image so far, at the final size (also after an interruption)."""
        if stopped:
            self.stopped = stopped
        elif self.stopped == "done" and self.scale_runs and self.converged:
            self.stopped = "converged"
        best = self.best_x
        if not self.best_losses:  # nothing run yet: score the start
            with torch.no_grad():
                self.best_losses = self._losses().as_floats()
        final = size_for(self.content_image, self.sizes[-1])
        if best.shape[-2:] != (final[1], final[0]):  # stopped at a coarser scale
            best = F.interpolate(
                best, size=(final[1], final[0]), mode="bicubic", align_corners=False
            )
        img = images.to_pil(best)
        if self.settings.preserve_colors:
            img = preserve_colors(self.content_image, img)
        return StylizeResult(
            image=img,
            settings=self.settings,
            losses=self.best_losses,
            history=self.history,
            iterations=self.iteration,
            seconds=self.run_seconds,
            setup_seconds=self.setup_seconds,
            stopped=self.stopped,
            device=str(self.device),
            peak_memory_bytes=devices.peak_memory_bytes(self.device),
            scale_sizes=list(self.sizes),
            scale_iterations=[
                *self.scale_runs,
                *([self.scale_iteration] if len(self.scale_runs) == self.scale else []),
            ],
            content_source=self.content_source,
            style_sources=self.style_sources,
            alpha=self.alpha,
        )


def stylize(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    *,
    callback: Callable[[Progress], None] | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> StylizeResult:
    """Paint ``content`` in the style of ``styles``; keyword arguments are settings.

    >>> result = stylize("photo.jpg", ["starry.jpg"], size=256, iterations=200)
    >>> result.save("out.png")

    Ctrl-C stops the run and returns the best image so far (``result.stopped``
    then says ``"interrupted"``).
    """
    settings = (settings or Settings()).replace(**overrides)
    stylizer = Stylizer(content, styles, settings)
    try:
        for progress in stylizer.run():
            if callback is not None:
                callback(progress)
    except KeyboardInterrupt:
        return stylizer.result("interrupted")
    return stylizer.result()


def score(
    image: ImageInput,
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    settings: Settings | None = None,
) -> dict[str, float]:
    """Loss terms of ``image`` under ``settings``, at the image's own size.

    The content is resized to the image and the styles scaled as in stylisation, so
    outputs of different runs, and of other tools, are compared on one definition.
    """
    img, _ = open_image(image)
    settings = (settings or Settings()).replace(size=max(img.size), scales=1, seed=0)
    st = Stylizer(content, styles, settings, _start=False)
    loss = st.build_loss(img.size)
    with torch.no_grad(), devices.autocast(st.device, st.amp_dtype):
        return loss(images.to_tensor(img).to(st.device)).as_floats()
