"""What every weights source ends as: a state dict and the input it expects."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class InputConvention:
    """How an RGB image in [0, 1] becomes the network's input.

    ``x = (rgb[order] * scale - mean) / std`` with ``mean`` and ``std`` given in the
    network's channel order.
    """

    channel_order: str  # "RGB" or "BGR"
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


# The original Caffe VGG19 (Simonyan & Zisserman), as used by Gatys et al.
CAFFE = InputConvention("BGR", 255.0, (103.939, 116.779, 123.68))
# torchvision's retrained VGG19 (IMAGENET1K_V1).
TORCHVISION = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass
class VGGWeights:
    """``conv{block}_{k}.weight`` (out, in, 3, 3) and ``.bias`` of all 16 convolutions."""

    state_dict: dict[str, torch.Tensor]
    convention: InputConvention
    source: str


def describe(convention: InputConvention) -> str:
    """The convention in a few words, for the ``source`` line of loaded weights."""
    if convention == CAFFE:
        return "Caffe input: BGR 0-255"
    if convention == TORCHVISION:
        return "torchvision input: RGB 0-1 normalised"
    mean = ", ".join(f"{m:.1f}" for m in convention.mean)
    return f"{convention.channel_order} 0-{convention.scale:g} minus ({mean})"
