"""The optimisation loop: from settings and images to a stylised image.

:class:`Stylizer` holds the whole state of a run (the iterate, the optimiser, the
best image so far), so a caller can stop it at any point, by Ctrl-C or otherwise,
and still take the best result.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from PIL import Image

from . import images, metadata
from .color import preserve_colors
from .errors import SettingsError
from .losses import GatysLoss
from .settings import VGG19_LAYERS, Settings
from .vgg import VGG19Features
from .weights import load_weights

ImageInput = str | os.PathLike | Image.Image

# Mean pixel of the ImageNet training set (RGB), the grey the noise start is centred on.
MEAN_PIXEL_RGB = (123.68, 116.779, 103.939)
# Standard deviation of the starting noise in pixel units, as in the reference.
NOISE_STD = 0.256


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise SettingsError(
            f"--device: unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError("--device: CUDA was asked for but this PyTorch sees no CUDA GPU")
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise SettingsError(f"--device: {spec} does not exist ({torch.cuda.device_count()} GPU(s))")
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise SettingsError("--device: MPS was asked for but is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise SettingsError(f"--device: unsupported device {spec!r}")
    return device


@lru_cache(maxsize=4)
def _cached_weights(spec: str):
    return load_weights(spec)


def build_network(settings: Settings, layers: set[str], device: torch.device) -> VGG19Features:
    """The frozen network, truncated after the deepest of ``layers``."""
    last = max(layers, key=VGG19_LAYERS.index) if layers else "relu1_1"
    net = VGG19Features(
        _cached_weights(settings.weights), pooling=settings.pooling, last_layer=last
    )
    net = net.to(device)
    if device.type == "cpu":
        # Channels-last convolutions are markedly faster on x86 CPUs (oneDNN).
        net.use_channels_last()
    return net


def open_image(source: ImageInput) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    return images.load_image(source)


def output_size(content: Image.Image, size: int) -> int:
    return max(content.size) if size == 0 else size


@dataclass
class Progress:
    """One optimisation step, as reported to callbacks."""

    iteration: int
    iterations: int
    losses: dict[str, float]
    best_total: float
    elapsed: float
    _stylizer: Stylizer = field(repr=False)

    def image(self) -> Image.Image:
        """The current iterate as an 8-bit image (costs a copy; call sparingly)."""
        return images.to_pil(self._stylizer.x)

    @property
    def eta(self) -> float:
        if self.iteration == 0:
            return math.nan
        return self.elapsed / self.iteration * (self.iterations - self.iteration)


@dataclass
class StylizeResult:
    image: Image.Image
    settings: Settings
    losses: dict[str, float]
    history: list[dict[str, float]]
    iterations: int
    seconds: float
    setup_seconds: float
    stopped: str  # "done", "interrupted", "nan"
    device: str
    peak_memory_bytes: int
    content_source: object = None
    style_sources: list[object] = field(default_factory=list)

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds / self.iterations if self.iterations else math.nan

    def provenance(self) -> dict[str, Any]:
        from . import __version__

        return metadata.provenance(
            __version__,
            self.settings.to_dict(),
            self.content_source,
            self.style_sources,
            self.losses,
            self.iterations,
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the image atomically; a PNG embeds the settings and inputs used."""
        images.check_output_path(path, overwrite=overwrite)
        text = {metadata.PNG_KEY: json.dumps(self.provenance())}
        images.save_image(self.image, path, text=text)

    def report(self) -> dict[str, Any]:
        """What ``--report`` writes: settings, losses, iterations, time and memory."""
        return {
            "settings": self.settings.to_dict(),
            "losses": self.losses,
            "iterations": self.iterations,
            "stopped": self.stopped,
            "wall_seconds": round(self.seconds, 3),
            "setup_seconds": round(self.setup_seconds, 3),
            "seconds_per_iteration": round(self.seconds_per_iteration, 4)
            if self.iterations
            else None,
            "device": self.device,
            "peak_memory_bytes": self.peak_memory_bytes,
            "loss_history": self.history,
        }


def peak_memory_bytes(device: torch.device) -> int:
    """Peak GPU memory on CUDA; peak resident memory of the process elsewhere."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # Windows has no resource module
        return 0


class Stylizer:
    """One stylisation run. Iterate :meth:`run` for progress; :meth:`result` any time."""

    def __init__(
        self,
        content: ImageInput,
        styles: Sequence[ImageInput],
        settings: Settings | None = None,
    ):
        t0 = time.perf_counter()
        settings = (settings or Settings()).replace()
        if isinstance(styles, (str, os.PathLike, Image.Image)):
            styles = [styles]
        settings.validate(n_styles=len(styles))
        if settings.seed is None:
            settings.seed = random.SystemRandom().randrange(2**31)
        self.settings = settings
        self.device = resolve_device(settings.device)

        self.content_source = content
        self.style_sources = list(styles)
        self.content_image = open_image(content)
        style_images = [open_image(s) for s in styles]
        size = output_size(self.content_image, settings.size)
        content_small = images.resize_long_side(self.content_image, size)
        self.content = self._to_device(images.to_tensor(content_small))
        self.styles = [
            self._to_device(
                images.to_tensor(
                    images.resize_long_side(s, max(16, round(size * settings.style_scale_for(i))))
                )
            )
            for i, s in enumerate(style_images)
        ]
        layers = set(settings.content_layer_weights()) | set(settings.style_layers)
        self.net = build_network(settings, layers, self.device)
        self.loss_fn = GatysLoss(
            self.net,
            self.content,
            self.styles,
            content_weight=settings.content_weight,
            content_layers=settings.content_layer_weights(),
            style_weight=settings.style_weight,
            style_layers=settings.style_layer_weights(),
            style_blend=settings.style_blend(len(self.styles)),
            tv_weight=settings.tv_weight,
        )
        generator = torch.Generator().manual_seed(settings.seed)
        self.x = self._initial_image(style_images, generator).requires_grad_(True)
        self.optimizer = self._make_optimizer()
        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self.best_total = math.inf
        self.best_losses: dict[str, float] = {}
        self.best_x = self.x.detach().clone()
        self.stopped = "done"
        self.setup_seconds = time.perf_counter() - t0
        self.run_seconds = 0.0

    # --- set-up ---------------------------------------------------------------
    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device)

    def _initial_image(self, style_images: list[Image.Image], gen: torch.Generator) -> torch.Tensor:
        s = self.settings
        shape = self.content.shape
        # Noise is drawn on the CPU so a seed gives the same start on every device.
        noise = torch.randn(shape, generator=gen) * NOISE_STD
        noise += torch.tensor(MEAN_PIXEL_RGB).view(1, 3, 1, 1)
        noise = self._to_device(noise)
        if s.initial == "noise":
            return noise
        h, w = shape[-2:]
        if s.initial == "content":
            start = self.content.clone()
        elif s.initial == "style":
            start = self._to_device(
                images.to_tensor(style_images[0].resize((w, h), Image.Resampling.LANCZOS))
            )
        else:
            start_img = images.load_image(s.initial).resize((w, h), Image.Resampling.LANCZOS)
            start = self._to_device(images.to_tensor(start_img))
        b = s.initial_noiseblend
        return (1 - b) * start + b * noise if b > 0 else start

    def _make_optimizer(self) -> torch.optim.Optimizer:
        s = self.settings
        lr = s.resolved_learning_rate()
        if s.optimizer == "lbfgs":
            # One iteration per step() so progress, checkpoints and interruption work
            # per iteration; no line search, one evaluation per iteration, as in the
            # reference implementations.
            return torch.optim.LBFGS([self.x], lr=lr, max_iter=1, history_size=100)
        return torch.optim.Adam([self.x], lr=lr, betas=(s.beta1, s.beta2), eps=s.epsilon)

    # --- the loop ---------------------------------------------------------------
    def _evaluate(self) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.loss_fn(self.x)
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

    def run(self) -> Iterator[Progress]:
        """Optimise, yielding after each iteration. Safe to abandon at any point."""
        s = self.settings
        start = time.perf_counter() - self.run_seconds
        while self.iteration < s.iterations:
            self.optimizer.step(self._evaluate)
            self.history.append(self._last)
            if not math.isfinite(self._last["total"]):
                self.stopped = "nan"
                break
            self.iteration += 1
            self.run_seconds = time.perf_counter() - start
            yield Progress(
                self.iteration, s.iterations, self._last, self.best_total, self.run_seconds, self
            )
        if self.stopped == "done":
            # The last update has not been scored yet: score it once, without a graph.
            with torch.no_grad():
                final = self.loss_fn(self.x).as_floats()
            if final["total"] < self.best_total:
                self.best_total, self.best_losses = final["total"], final
                self.best_x = self.x.detach().clone()
        self.run_seconds = time.perf_counter() - start

    def result(self, stopped: str | None = None) -> StylizeResult:
        """The best image so far (also valid after an interruption)."""
        if stopped:
            self.stopped = stopped
        img = images.to_pil(self.best_x)
        if self.settings.preserve_colors:
            img = preserve_colors(self.content_image, img)
        if not self.best_losses:  # zero iterations: score the start
            with torch.no_grad():
                self.best_losses = self.loss_fn(self.x).as_floats()
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
            peak_memory_bytes=peak_memory_bytes(self.device),
            content_source=self.content_source,
            style_sources=self.style_sources,
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
    >>> result.image.save("out.png")
    """
    settings = (settings or Settings()).replace(**overrides) if overrides else settings
    if isinstance(styles, (str, os.PathLike, Image.Image)):
        styles = [styles]
    stylizer = Stylizer(content, list(styles), settings)
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
    styles: Sequence[ImageInput],
    settings: Settings | None = None,
) -> dict[str, float]:
    """Loss terms of ``image`` under ``settings``, computed at the image's own size."""
    settings = (settings or Settings()).replace()
    img = open_image(image)
    settings = settings.replace(size=max(img.size), initial="content", iterations=0, seed=0)
    st = Stylizer(content, list(styles), settings)
    if st.content.shape[-2:] != (img.size[1], img.size[0]):
        # Rounding can make the resized content one pixel off: match exactly.
        resized = st.content_image.resize(img.size, Image.Resampling.LANCZOS)
        st = Stylizer(resized, list(styles), settings)
    x = st._to_device(images.to_tensor(img))
    with torch.no_grad():
        return st.loss_fn(x).as_floats()
