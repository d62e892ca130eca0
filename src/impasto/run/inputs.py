"""A run's inputs, decoded once, and what the loss and the start need at any size.

The images are kept at full size; every scale resizes from them, so a coarse
scale's rounding never reaches a finer one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from PIL import Image

from ..devices import Machine
from ..io import images
from ..io.images import size_for
from ..loss import guidance
from ..loss.color import (
    ColorPlan,
    ColorTransform,
    LuminanceView,
    plan_colors,
    preserve_colors,
    recombine_luminance,
    render_grey,
)
from ..loss.gatys import GatysLoss
from ..model.topology import VGG19_LAYERS
from ..model.vgg import VGG19Features
from ..model.weights import load_weights
from ..settings import Settings
from .sizes import check_working_sizes
from .tiled import TiledGatysLoss, TileMeter
from .tiling import is_tiled

ImageInput = str | os.PathLike | Image.Image

# Mean pixel of the ImageNet training set (RGB): the grey the noise start is centred on.
MEAN_PIXEL_RGB = (123.68, 116.779, 103.939)
# Standard deviation of the starting noise in pixel units, as in the reference.
NOISE_STD = 0.256


def open_image(source: ImageInput) -> tuple[Image.Image, Image.Image | None]:
    """RGB pixels and the alpha channel (None when opaque) of a file or PIL image."""
    if isinstance(source, Image.Image):
        return images.to_rgb_and_alpha(source)
    return images.load_image_and_alpha(source)


def build_network(settings: Settings, machine: Machine) -> VGG19Features:
    """The frozen network, truncated after the deepest layer the loss reads.

    On the CPU the network is converted to the run's reduced precision, if any; on
    GPUs autocast applies it instead (:attr:`Machine.autocast_dtype`).
    """
    layers = set(settings.content_layer_weights()) | settings.all_style_layers()
    last = max(layers, key=VGG19_LAYERS.index) if layers else "relu1_1"
    net = VGG19Features(load_weights(settings.weights), pooling=settings.pooling, last_layer=last)
    net = net.to(machine.device)
    if machine.device.type in ("cpu", "cuda"):
        # Channels-last convolutions are markedly faster on x86 CPUs (oneDNN) and
        # on NVIDIA GPUs, whose tensor cores read that layout natively.
        net.use_channels_last()
    if machine.device.type == "cpu" and machine.dtype is not None:
        net.use_dtype(machine.dtype)
    if settings.compile:
        net.forward = torch.compile(net.forward)  # type: ignore[method-assign]
    return net


@dataclass
class RunInputs:
    """The content, styles, masks and colour maps of a run, at full size."""

    content: Image.Image
    alpha: Image.Image | None  # the content's transparency, re-applied to the output
    styles: list[Image.Image]
    content_masks: list[Image.Image] | None
    style_masks: list[Image.Image] | None
    content_source: object = None  # a path, recorded in the output's provenance
    style_sources: Sequence[object] = ()

    @classmethod
    def open(
        cls,
        content: ImageInput,
        styles: Sequence[ImageInput],
        settings: Settings,
        *,
        content_mask_images: Sequence[Image.Image] | None = None,
        style_mask_images: Sequence[Image.Image] | None = None,
    ) -> RunInputs:
        """Decode the images; masks given as images are used instead of the files named."""
        content_image, alpha = open_image(content)
        return cls(
            content=content_image,
            alpha=alpha,
            styles=[open_image(s)[0] for s in styles],
            content_masks=_masks(content_mask_images, settings.content_masks),
            style_masks=_masks(style_mask_images, settings.style_masks),
            content_source=content,
            style_sources=list(styles),
        )

    def check_sizes(self, settings: Settings) -> None:
        """Refuse images that some scale would make too small for the network."""
        check_working_sizes(
            settings,
            self.content.size,
            [img.size for img in self.styles],
            content_name=_name(self.content_source, "the content image"),
            style_names=[
                _name(source, f"style image {i + 1}") for i, source in enumerate(self.style_sources)
            ],
        )

    def size(self, long_side: int) -> tuple[int, int]:
        """(width, height) of the output at a long side."""
        return size_for(self.content, long_side)

    def style_size(self, index: int, long_side: int, settings: Settings) -> tuple[int, int]:
        """(width, height) of style image ``index`` for an output whose long side is given."""
        scaled = round(long_side * settings.style_scale_for(index))
        return size_for(self.styles[index], max(16, scaled))


class Targets:
    """What a run's loss is built from at any size: inputs, colour maps and network."""

    def __init__(
        self,
        inputs: RunInputs,
        settings: Settings,
        machine: Machine,
        final: int,
        tiles: TileMeter | None = None,
    ):
        self.inputs = inputs
        self.settings = settings
        self.machine = machine
        self.net = build_network(settings, machine)
        self.colors = self._color_plan(final)
        self.content_color, self.style_colors = self.colors.content, self.colors.styles
        # What the loss runs: in luminance-only transfer the network sees grey alone.
        self.loss_net = LuminanceView(self.net) if self.colors.luminance_only else self.net
        self.tiles = tiles or TileMeter()  # tiles done within a pass, at tiled sizes

    def tensor(self, img: Image.Image, size: tuple[int, int]) -> torch.Tensor:
        if img.size != size:
            img = img.resize(size, Image.Resampling.LANCZOS)
        return images.to_tensor(img).to(self.machine.device)

    def _color_plan(self, final: int) -> ColorPlan:
        """Colour control: the maps applied to the content and to each style image.

        They are measured once, on the inputs at the final size, and applied at every
        scale: an affine colour map commutes with resampling, so each scale sees the
        same colours (None: the input is used as it is).
        """
        s, inputs = self.settings, self.inputs
        if s.color_control == "none":
            return plan_colors("none", inputs.content, inputs.styles)
        lanczos = Image.Resampling.LANCZOS
        content = inputs.content.resize(inputs.size(final), lanczos)
        styles = [
            img.resize(inputs.style_size(i, final, s), lanczos)
            for i, img in enumerate(inputs.styles)
        ]
        return plan_colors(s.color_control, content, styles, s.color_histogram_method)

    def loss(self, size: tuple[int, int]) -> GatysLoss:
        """The loss at one output size; style images scale with it as --style-scales says."""
        s, inputs = self.settings, self.inputs
        content = _recolor(self.content_color, self.tensor(inputs.content, size))
        style_sizes = [inputs.style_size(i, max(size), s) for i in range(len(inputs.styles))]
        styles = [
            _recolor(color, self.tensor(img, style_size))
            for img, color, style_size in zip(inputs.styles, self.style_colors, style_sizes)
        ]
        device = self.machine.device
        # Masks are resized from the full-size files at every scale.
        content_masks = inputs.content_masks and [
            guidance.mask_tensor(m, size, what=f"content mask {i + 1}").to(device)
            for i, m in enumerate(inputs.content_masks)
        ]
        style_masks = inputs.style_masks and [
            guidance.mask_tensor(m, style_size, what=f"style mask {i + 1}").to(device)
            for i, (m, style_size) in enumerate(zip(inputs.style_masks, style_sizes))
        ]
        tiled = is_tiled(s.tile, size)
        make = partial(TiledGatysLoss, tile=s.tile, meter=self.tiles) if tiled else GatysLoss
        with self.machine.autocast():
            return make(
                self.loss_net,
                content,
                styles,
                content_weight=s.content_weight,
                content_layers=s.content_layer_weights(),
                style_weight=s.style_weight * s.strength,
                style_layers=s.style_layer_weights(),
                style_blend=s.style_blend(len(styles)),
                tv_weight=s.tv_weight,
                style_layers_per_style=s.style_layer_weights_per_style(),
                style_balance=s.style_layer_balance,
                content_masks=content_masks,
                style_masks=style_masks,
            )

    def start(self, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        """The first iterate, as the settings' ``initial`` and ``initial_noiseblend`` say."""
        s, inputs = self.settings, self.inputs
        w, h = size
        # Noise is drawn on the CPU so a seed gives the same start on every device.
        noise = torch.randn((1, 3, h, w), generator=generator) * NOISE_STD
        noise = (noise + torch.tensor(MEAN_PIXEL_RGB).view(1, 3, 1, 1)).to(self.machine.device)
        initial = s.resolved_initial()
        if initial == "noise":
            return noise
        if initial == "content":
            start_img, recolor = inputs.content, self.content_color
        elif initial == "style":
            start_img, recolor = inputs.styles[0], self.style_colors[0]
        else:
            start_img, recolor = images.load_image(initial), None
        start = self.tensor(start_img, (w, h))
        if recolor is not None:  # start from the input as the network sees it
            start = recolor.apply_tensor(start)
        b = s.initial_noiseblend
        return (1 - b) * start + b * noise if b > 0 else start

    def as_network_sees(self, image: torch.Tensor) -> torch.Tensor:
        """An output image as the network saw it while it was made (luminance only)."""
        return _recolor(self.content_color, image)

    def render(self, x: torch.Tensor) -> Image.Image:
        """An iterate as an 8-bit image; luminance-only transfer gets the content's chroma,
        and a run on black-and-white styles is grey."""
        if self.colors.rendering == "rgb":
            return images.to_pil(x)
        # From the float iterate: Y is taken before any clipping or rounding.
        pixels = x.detach().float().cpu()[0].permute(1, 2, 0).double().numpy()
        if self.colors.rendering == "grey":
            return render_grey(pixels)
        return recombine_luminance(pixels, self.inputs.content)

    def finish(self, image: Image.Image) -> Image.Image:
        """The output as saved: with the content's colours when asked to preserve them."""
        if self.settings.preserve_colors:
            return preserve_colors(self.inputs.content, image)
        return image


def _name(source: object, otherwise: str) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else otherwise


def _recolor(color: ColorTransform | None, image: torch.Tensor) -> torch.Tensor:
    return image if color is None else color.apply_tensor(image)


def _masks(
    given: Sequence[Image.Image] | None, paths: Sequence[str] | None
) -> list[Image.Image] | None:
    """Mask images (8-bit grey, full size): those given, else the files named, else None."""
    if given is not None:
        return [m.convert("L") for m in given]
    return [guidance.load_mask(p) for p in paths] if paths else None
