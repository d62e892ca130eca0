"""VGG19 feature extractor with named layers, truncated after the deepest layer used."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import SettingsError
from .topology import KERNEL_SIZE, LAYERS, POOL_SIZE, VGG19_LAYERS
from .weights import VGGWeights


class VGG19Features(nn.Module):
    """The conv part of VGG19, frozen, taking RGB images in pixel units (0-255).

    The :class:`~impasto.model.features.FeatureExtractor` impasto uses.

    Only layers up to ``last_layer`` are built, so deeper layers cost neither time
    nor memory. The weights' input convention (channel order, range, mean, std) is
    applied inside :meth:`forward`.
    """

    def __init__(self, weights: VGGWeights, *, pooling: str = "max", last_layer: str = "relu5_1"):
        super().__init__()
        if last_layer not in VGG19_LAYERS:
            raise SettingsError(f"unknown VGG19 layer {last_layer!r}")
        if pooling not in ("max", "avg"):
            raise SettingsError(f"pooling must be max or avg, got {pooling!r}")
        self.layer_names = VGG19_LAYERS[: VGG19_LAYERS.index(last_layer) + 1]
        layers: dict[str, nn.Module] = {}
        for name in self.layer_names:
            layer = LAYERS[name]
            if layer.kind == "conv":
                conv = nn.Conv2d(
                    layer.in_channels, layer.out_channels, kernel_size=KERNEL_SIZE, padding=1
                )
                conv.weight.data.copy_(weights.state_dict[name + ".weight"])
                conv.bias.data.copy_(weights.state_dict[name + ".bias"])
                layers[name] = conv
            elif layer.kind == "relu":
                layers[name] = nn.ReLU()  # applied functionally in forward()
            else:
                pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
                # ceil_mode: a side that is odd at some depth keeps its last row or
                # column as a window of one. Flooring drops it, and with it the image's
                # last (side mod 16) rows from relu5_1 and the deep layers: they got
                # little style, an unstyled strip along the bottom or right edge.
                layers[name] = pool(kernel_size=POOL_SIZE, stride=POOL_SIZE, ceil_mode=True)
        self.layers = nn.ModuleDict(layers)
        conv = weights.convention
        order = [0, 1, 2] if conv.channel_order == "RGB" else [2, 1, 0]
        self.register_buffer("order", torch.tensor(order), persistent=False)
        # x = (rgb255[order] * scale/255 - mean) / std, folded into one multiply-add.
        std = torch.tensor(conv.std).view(1, 3, 1, 1)
        self.register_buffer("gain", (conv.scale / 255.0) / std, persistent=False)
        self.register_buffer(
            "offset", torch.tensor(conv.mean).view(1, 3, 1, 1) / std, persistent=False
        )
        self.requires_grad_(False)
        self.eval()

        self.channels_last = False

    def use_channels_last(self) -> None:
        """Run the convolutions in channels-last layout (faster on CPUs).

        Only the network's tensors change layout: the image being optimised stays
        contiguous, as L-BFGS needs flat views of its gradient.
        """
        self.to(memory_format=torch.channels_last)
        self.channels_last = True

    def use_dtype(self, dtype: torch.dtype) -> None:
        """Store the weights of every convolution but the first in ``dtype`` (bf16).

        On CPUs this is faster than autocast, which casts every weight again at
        every step. The input conversion (``preprocess``) and the first convolution
        stay float32 (see :meth:`forward`); the features after ``relu1_1`` come out in
        ``dtype``.
        """
        for name, layer in self.layers.items():
            if name != "conv1_1":  # see forward()
                layer.to(dtype)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the convolutions after the first run in: that of their weights."""
        last_conv = [n for n in self.layer_names if LAYERS[n].kind == "conv"][-1]
        return self.layers[last_conv].weight.dtype

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return image.index_select(1, self.order) * self.gain - self.offset

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Features of ``image`` (N, 3, H, W, RGB 0-255) at the requested layers."""
        wanted = set(layers)
        missing = wanted - set(self.layer_names)
        if missing:
            raise SettingsError(f"layers {sorted(missing)} are beyond this network's last layer")
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(image)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        previous = ""
        for name in self.layer_names:
            kind = LAYERS[name].kind
            if kind == "relu":
                # In place unless the conv output itself is asked for: a ReLU's backward
                # needs only its output, so this halves the memory kept for backward.
                x = torch.relu_(x) if previous not in wanted else torch.relu(x)
            elif name == "conv1_1":
                # The first convolution always sees the image at full precision. In
                # bf16 the preprocessed pixels (about +-150) would be rounded to steps
                # of 0.5 or 1, the loss would not see L-BFGS's small steps, and its
                # curvature estimates would turn to noise: runs from the content image
                # diverged. This layer is 0.5% of the network's arithmetic.
                with torch.autocast(x.device.type, enabled=False):
                    x = self.layers[name](x)
            elif kind == "conv":
                conv = self.layers[name]
                x = conv(x.to(conv.weight.dtype))
            else:
                x = self.layers[name](x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
            previous = name
        return out
