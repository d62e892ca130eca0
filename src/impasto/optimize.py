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
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from . import devices
from .errors import ImpastoError
from .io import images
from .io.images import size_for
from .loss import guidance
from .loss.color import (
    ColorTransform,
    grey_transform,
    histogram_transform,
    luminance_transform,
    preserve_colors,
    recombine_luminance,
)
from .loss.gatys import GatysLoss, LossTerms
from .model.vgg import VGG19Features
from .model.weights import load_weights
from .optim.lbfgs import LBFGS
from .results import Progress, StylizeResult
from .settings import TOLERANCE_WINDOW, VGG19_LAYERS, Settings

ImageInput = str | os.PathLike | Image.Image

# Mean pixel of the ImageNet training set (RGB): the grey the noise start is centred on.
MEAN_PIXEL_RGB = (123.68, 116.779, 103.939)
# Standard deviation of the starting noise in pixel units, as in the reference.
NOISE_STD = 0.256


def build_network(
    settings: Settings, layers: set[str], device: torch.device, dtype: torch.dtype | None = None
) -> VGG19Features:
    """The frozen network, truncated after the deepest of ``layers``.

    ``dtype`` is the reduced precision the run uses, if any: on the CPU the network is
    converted to it; on GPUs autocast applies it instead (``Stylizer.autocast_dtype``).
    """
    last = max(layers, key=VGG19_LAYERS.index) if layers else "relu1_1"
    net = VGG19Features(load_weights(settings.weights), pooling=settings.pooling, last_layer=last)
    net = net.to(device)
    if device.type in ("cpu", "cuda"):
        # Channels-last convolutions are markedly faster on x86 CPUs (oneDNN) and
        # on NVIDIA GPUs, whose tensor cores read that layout natively.
        net.use_channels_last()
    if device.type == "cpu" and dtype is not None:
        net.use_dtype(dtype)
    return net


def open_image(source: ImageInput) -> tuple[Image.Image, Image.Image | None]:
    """RGB pixels and the alpha channel (None when opaque) of a file or PIL image."""
    if isinstance(source, Image.Image):
        return images.to_rgb_and_alpha(source)
    return images.load_image_and_alpha(source)


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
        content_mask_images: Sequence[Image.Image] | None = None,
        style_mask_images: Sequence[Image.Image] | None = None,
        _start: bool = True,
    ):
        """``content_mask_images`` and ``style_mask_images``, when given, are used
        instead of reading the files that the settings name (spatial control)."""
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
        # The CPU runs a bf16 network directly (build_network); GPUs use autocast.
        self.autocast_dtype = self.amp_dtype if self.device.type != "cpu" else None
        if self.device.type == "cpu":
            devices.configure_threads(settings.threads)
            devices.keep_freed_memory()
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
        self.content_masks = _masks(content_mask_images, settings.content_masks)
        self.style_masks = _masks(style_mask_images, settings.style_masks)
        self.content_color, self.style_colors = self._color_transforms(final)

        layers = set(settings.content_layer_weights()) | settings.all_style_layers()
        self.net = build_network(settings, layers, self.device, self.amp_dtype)
        if settings.compile:
            self.net.forward = torch.compile(self.net.forward)  # type: ignore[method-assign]

        self._graph_failed = False
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

    def _style_size(self, index: int, long_side: int) -> tuple[int, int]:
        """(width, height) of style image ``index`` for an output whose long side is given."""
        img = self.style_images[index]
        return size_for(img, max(16, round(long_side * self.settings.style_scale_for(index))))

    def _color_transforms(
        self, final: int
    ) -> tuple[ColorTransform | None, list[ColorTransform | None]]:
        """Colour control: the maps applied to the content and to each style image.

        They are measured once, on the inputs at the final size, and applied at every
        scale: an affine colour map commutes with resampling, so each scale sees the
        same colours (None: the input is used as it is).
        """
        s = self.settings
        if s.color_control == "none":
            return None, [None] * len(self.style_images)
        lanczos = Image.Resampling.LANCZOS
        content = self.content_image.resize(size_for(self.content_image, final), lanczos)
        styles = [
            img.resize(self._style_size(i, final), lanczos)
            for i, img in enumerate(self.style_images)
        ]
        if s.color_control == "luminance":
            return grey_transform(), [luminance_transform(content, img) for img in styles]
        return None, [histogram_transform(content, img, s.color_histogram_method) for img in styles]

    def _initial_image(self, gen: torch.Generator) -> torch.Tensor:
        s = self.settings
        w, h = size_for(self.content_image, self.sizes[0])
        # Noise is drawn on the CPU so a seed gives the same start on every device.
        noise = torch.randn((1, 3, h, w), generator=gen) * NOISE_STD
        noise = (noise + torch.tensor(MEAN_PIXEL_RGB).view(1, 3, 1, 1)).to(self.device)
        initial = s.resolved_initial()
        if initial == "noise":
            return noise
        if initial == "content":
            start_img, recolor = self.content_image, self.content_color
        elif initial == "style":
            start_img, recolor = self.style_images[0], self.style_colors[0]
        else:
            start_img, recolor = images.load_image(initial), None
        start = self._tensor(start_img, (w, h))
        if recolor is not None:  # start from the input as the network sees it
            start = recolor.apply_tensor(start)
        b = s.initial_noiseblend
        return (1 - b) * start + b * noise if b > 0 else start

    # multiscale-ready: per-scale set-up happens in build_loss() and _enter_scale().
    def build_loss(self, size: tuple[int, int]) -> GatysLoss:
        """The loss at one output size; style images scale with it as --style-scales says."""
        s = self.settings
        content = _recolor(self.content_color, self._tensor(self.content_image, size))
        style_sizes = [self._style_size(i, max(size)) for i in range(len(self.style_images))]
        styles = [
            _recolor(color, self._tensor(img, style_size))
            for img, color, style_size in zip(self.style_images, self.style_colors, style_sizes)
        ]
        # Masks are resized from the full-size files at every scale.
        content_masks = self.content_masks and [
            guidance.mask_tensor(m, size, what=f"content mask {i + 1}").to(self.device)
            for i, m in enumerate(self.content_masks)
        ]
        style_masks = self.style_masks and [
            guidance.mask_tensor(m, style_size, what=f"style mask {i + 1}").to(self.device)
            for i, (m, style_size) in enumerate(zip(self.style_masks, style_sizes))
        ]
        with devices.autocast(self.device, self.autocast_dtype):
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
                style_layers_per_style=s.style_layer_weights_per_style(),
                content_masks=content_masks,
                style_masks=style_masks,
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
        # A CUDA graph of one evaluation at this scale, captured at its first step.
        self._graph: tuple[torch.cuda.CUDAGraph, LossTerms] | None = None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        s = self.settings
        lr = s.resolved_learning_rate()
        if s.optimizer == "lbfgs":
            # One evaluation per step(), no line search, as in the reference
            # implementations, so progress, checkpoints and interruption work per
            # iteration (see lbfgs.py for how it differs from torch.optim.LBFGS).
            return LBFGS([self.x], lr=lr, history_size=s.lbfgs_history)
        return torch.optim.Adam([self.x], lr=lr, betas=(s.beta1, s.beta2), eps=s.epsilon)

    # --- the loop -----------------------------------------------------------------
    def _losses(self) -> LossTerms:
        # The loss is that of the image as it will be saved, clipped to 0-255: values
        # outside would be scored but never shown. (A deviation from the reference,
        # which clips only the output; it lowers the loss of the saved image.) The
        # gradient passes the clip unchanged: a plain clamp has zero gradient outside
        # the range, and a pixel thrown out by one large step would stay dead there.
        clipped = self.x + (self.x.clamp(0, 255) - self.x).detach()
        with devices.autocast(self.device, self.autocast_dtype):
            return self.loss_fn(clipped)

    def _evaluate(self) -> torch.Tensor:
        terms = self._replay() if self._use_graph else None
        if terms is None:
            self.optimizer.zero_grad(set_to_none=True)
            terms = self._losses()
            # Backward even from a NaN loss: checking first would make a GPU wait
            # mid-step, and the optimiser takes no step on a non-finite gradient.
            terms.total.backward()
        self._last = terms.as_floats()
        # The loss belongs to the iterate *before* this step's update.
        self._keep_if_best(self._last)
        return terms.total.detach()

    @property
    def _use_graph(self) -> bool:
        return self.settings.cuda_graphs and self.device.type == "cuda" and not self._graph_failed

    def _replay(self) -> LossTerms | None:
        """One evaluation (loss and gradient) replayed from a CUDA graph; None if
        the graph could not be captured (the caller then evaluates step by step).

        At 512 px a step's ~300 kernels take less time to run on a large GPU than to
        launch one by one from Python: replaying them as one graph made a step twice
        as fast on an H100 (8.1 to 4.2 ms, benchmarks/results/gpu.md). The graph reads
        the iterate and writes its gradient in place, so the optimiser is unchanged.
        """
        if self._graph is None:
            try:
                self._graph = self._capture()
            except RuntimeError as e:  # e.g. an operation a graph cannot hold
                self._graph_failed = True
                warnings.warn(
                    f"CUDA graph capture failed ({str(e).splitlines()[0]}); "
                    "running without (--no-cuda-graphs avoids this message)",
                    stacklevel=2,
                )
                return None
        graph, terms = self._graph
        graph.replay()
        return terms

    def _capture(self) -> tuple[torch.cuda.CUDAGraph, LossTerms]:
        # Warm-up evaluations on a side stream first, as PyTorch requires: cuDNN picks
        # its kernels and the allocator settles. They leave the iterate unchanged.
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self.x.grad = None
                self._losses().total.backward()
        torch.cuda.current_stream(self.device).wait_stream(side)
        # With no gradient before capture, the replayed backward writes x.grad afresh
        # each time instead of adding to it.
        self.x.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            terms = self._losses()
            terms.total.backward()
        return graph, terms

    def _keep_if_best(self, losses: dict[str, float]) -> None:
        """Remember the current iterate if ``losses`` (its loss terms) are the lowest yet."""
        if losses["total"] < self.best_total:
            self.best_total, self.best_losses = losses["total"], losses
            self.best_x = self.x.detach().clone()

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
                    self.run_seconds = time.perf_counter() - start
                    self.history.append(
                        {**self._last, "scale": self.sizes[self.scale], "seconds": self.run_seconds}
                    )
                    self.iteration += 1
                    self.scale_iteration += 1
                    self._recent.append(self.best_total)
                    tol = self.settings.tolerance
                    if tol > 0 and len(self._recent) == self._recent.maxlen:
                        gain = (self._recent[0] - self._recent[-1]) / abs(self._recent[-1])
                        self.converged = gain < tol
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
            if self.device.type == "cpu":
                devices.release_freed_memory()  # kept for reuse during the run

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
            _render=lambda: self._to_image(self.x),
        )

    def _score_last_update(self) -> None:
        """The last update of a scale has not been scored yet: score it, without a graph."""
        with torch.no_grad():
            self._keep_if_best(self._losses().as_floats())

    def _to_image(self, x: torch.Tensor) -> Image.Image:
        """An iterate as an 8-bit image; luminance-only transfer gets the content's chroma."""
        if self.settings.color_control == "luminance":
            # From the float iterate: Y is taken before any clipping or rounding.
            return recombine_luminance(
                x.detach().float().cpu()[0].permute(1, 2, 0).double().numpy(), self.content_image
            )
        return images.to_pil(x)

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
        img = self._to_image(best)
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


def _recolor(color: ColorTransform | None, image: torch.Tensor) -> torch.Tensor:
    return image if color is None else color.apply_tensor(image)


def _masks(
    given: Sequence[Image.Image] | None, paths: Sequence[str] | None
) -> list[Image.Image] | None:
    """Mask images (8-bit grey, full size): those given, else the files named, else None."""
    if given is not None:
        return [m.convert("L") for m in given]
    return [guidance.load_mask(p) for p in paths] if paths else None


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
    settings = settings or Settings()
    # Scores are float32 unless a precision is asked for: the definition stays the
    # same on every machine, whatever precision the runs being compared used.
    precision = "fp32" if settings.precision == "auto" else settings.precision
    settings = settings.replace(size=max(img.size), scales=1, seed=0, precision=precision)
    st = Stylizer(content, styles, settings, _start=False)
    loss = st.build_loss(img.size)
    x = images.to_tensor(img).to(st.device)
    if settings.color_control == "luminance":  # the network saw only the luminance
        x = grey_transform().apply_tensor(x)
    with torch.no_grad(), devices.autocast(st.device, st.autocast_dtype):
        return loss(x).as_floats()
