"""Shared test helpers."""

from __future__ import annotations

import torch

from impasto.model.topology import CONV_CHANNELS
from impasto.model.weights import CAFFE, VGGWeights


def random_vgg_weights(dtype: torch.dtype = torch.float32) -> VGGWeights:
    """VGG19 with random He-initialised weights: cheap, and enough to test the losses."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, (c_in, c_out) in CONV_CHANNELS.items():
        std = (2.0 / (9 * c_in)) ** 0.5
        state[name + ".weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen, dtype=dtype) * std
        state[name + ".bias"] = torch.randn(c_out, generator=gen, dtype=dtype) * 0.01
    return VGGWeights(state, CAFFE, "random")
