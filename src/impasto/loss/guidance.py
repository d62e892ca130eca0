"""Spatial control (Gatys, Ecker, Bethge, Hertzmann & Shechtman, CVPR 2017, section 4).

A guidance mask T^r marks a region r of an image (white = inside). It is
propagated to every layer of the network by following the network's pooling, and
a style's Gram matrix is measured only inside the region:

    G_l^r = (F_l ⊙ T_l^r)(F_l ⊙ T_l^r)^T / (C_l * sum_p (T_l^r)_p^2)

The normalisation generalises the unguided G = F F^T / (C*H*W): it makes G_l^r the
mean of f_p f_p^T over the region's positions p, each weighted by T_p^2. An
all-white mask therefore gives exactly the unguided Gram matrix and loss, and a
region's statistics do not depend on its size, so that a small region is held to
its style as firmly as a large one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import SettingsError
from ..io import images
from ..model.topology import VGG19_LAYERS
from .gram import gram_product, wide


def load_mask(path: str | os.PathLike[str]) -> Image.Image:
    """A mask file as an 8-bit grey image (white = inside the region)."""
    return images.load_image(path).convert("L")


def mask_tensor(mask: Image.Image, size: tuple[int, int], *, what: str = "mask") -> torch.Tensor:
    """The mask resized to ``size`` (width, height) as a (1, 1, H, W) float tensor in [0, 1].

    The resampling filter averages (it never rings), so a soft edge stays in [0, 1];
    a white area stays exactly 1, so all-white masks reproduce the unguided loss.
    ``what`` names the mask in the error raised when the region is empty at this size.
    """
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(mask, dtype=np.float32) / 255.0
    if not array.any():
        raise SettingsError(
            f"{what} is black everywhere at {size[0]}x{size[1]} pixels: its style "
            "would apply nowhere"
        )
    return torch.from_numpy(array.copy())[None, None]


def layer_masks(mask: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """The mask at the resolution of each of ``layers`` (VGG19 names).

    Convolutions keep the resolution and each pooling halves it (rounding up, as
    the network's 2x2 pooling does), so the mask is average-pooled 2x2 at the same
    places: the paper's simplest propagation, a plain downsampling. Averaging even
    where the network max-pools keeps soft region borders soft.
    """
    wanted = set(layers)
    unknown = wanted - set(VGG19_LAYERS)
    if unknown:
        raise ValueError(f"unknown VGG19 layers {sorted(unknown)}")
    out: dict[str, torch.Tensor] = {}
    current = mask
    for name in VGG19_LAYERS:
        if len(out) == len(wanted):
            break
        if name.startswith("pool"):
            current = F.avg_pool2d(current, kernel_size=2, stride=2, ceil_mode=True)
        if name in wanted:
            out[name] = current
    return out


def masked_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """G^r = (F ⊙ T)(F ⊙ T)^T / (C * sum T^2) for features (N, C, H, W), mask (1, 1, H, W)."""
    n, c, h, w = features.shape
    if mask.shape[-2:] != (h, w):
        raise ValueError(f"mask of size {tuple(mask.shape[-2:])} for features of size {(h, w)}")
    wide_features = wide(features)  # summed in float32, like the unguided Gram matrix
    mask = mask.to(device=features.device, dtype=wide_features.dtype)
    f = (wide_features * mask).reshape(n, c, h * w)
    weight = (mask * mask).sum()
    return gram_product(f, c * weight)
