"""The losses of Gatys, Ecker & Bethge (2016), with the reference normalisation.

    L_total = content_weight * sum_l cw_l * mean((F_l(x) - F_l(c))^2)
            + style_weight   * sum_i b_i * sum_l w_l * mean((G_l(x) - G_l(s_i))^2)
            + tv_weight      * (mean(dy^2) + mean(dx^2))

with G_l = F F^T / (C*H*W). Normalising by the layer size (rather than the paper's
1/(4 N^2 M^2) and sum) follows anishathalye/neural-style, so that the default
weights 5 / 500 / 100 carry over; it changes the relative weight of layers of
different sizes, not the nature of the optimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .vgg import VGG19Features


def _wide(t: torch.Tensor) -> torch.Tensor:
    """Half-precision features (under AMP) are summed in float32; others stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C*H*W) for features of shape (N, C, H, W); returns (N, C, C)."""
    n, c, h, w = features.shape
    f = _wide(features.reshape(n, c, h * w))
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(
    features: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """sum_l cw_l * mean((F_l(x) - F_l(c))^2)."""
    terms = [
        w * torch.mean((_wide(features[layer]) - targets[layer]) ** 2)
        for layer, w in layer_weights.items()
    ]
    return torch.stack(terms).sum()


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Sequence[Mapping[str, torch.Tensor]],
    layer_weights: Mapping[str, float],
    blend: Sequence[float],
) -> torch.Tensor:
    """sum_i b_i * sum_l w_l * mean((G_l(x) - G_l(s_i))^2)."""
    grams = {layer: gram_matrix(features[layer]) for layer in layer_weights}
    terms = [
        b * w * torch.mean((grams[layer] - targets[layer]) ** 2)
        for targets, b in zip(target_grams, blend)
        for layer, w in layer_weights.items()
    ]
    return torch.stack(terms).sum()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """mean(dy^2) + mean(dx^2): squared differences between neighbouring pixels."""
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    return torch.mean(dy**2) + torch.mean(dx**2)


@dataclass
class LossTerms:
    """Weighted loss terms; ``total`` is their sum and carries the gradient."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    total: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {
            "content": self.content.item(),
            "style": self.style.item(),
            "tv": self.tv.item(),
            "total": self.total.item(),
        }


class GatysLoss(nn.Module):
    """The total loss of an image against fixed content and style targets.

    Targets are computed once, without a graph, when the loss is built: only the
    image being optimised goes through the network at each step.
    """

    def __init__(
        self,
        net: VGG19Features,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        *,
        content_weight: float,
        content_layers: Mapping[str, float],
        style_weight: float,
        style_layers: Mapping[str, float],
        style_blend: Sequence[float],
        tv_weight: float,
    ):
        super().__init__()
        self.net = net
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        # Layers with zero weight are dropped so they are never computed.
        self.content_layers = dict(content_layers) if content_weight > 0 else {}
        self.style_layers = dict(style_layers) if style_weight > 0 else {}
        self.style_blend = list(style_blend)
        with torch.no_grad():
            feats = net(content, self.content_layers) if self.content_layers else {}
            self.content_targets = {k: _wide(v) for k, v in feats.items()}
            self.style_targets = (
                [{k: gram_matrix(v) for k, v in net(s, self.style_layers).items()} for s in styles]
                if self.style_layers
                else []
            )

    @property
    def layers(self) -> set[str]:
        return set(self.content_layers) | set(self.style_layers)

    def forward(self, image: torch.Tensor) -> LossTerms:
        zero = image.new_zeros(())
        feats = self.net(image, self.layers) if self.layers else {}
        content = (
            self.content_weight * content_loss(feats, self.content_targets, self.content_layers)
            if self.content_layers
            else zero
        )
        style = (
            self.style_weight
            * style_loss(feats, self.style_targets, self.style_layers, self.style_blend)
            if self.style_layers
            else zero
        )
        # TV is measured in the network's input units, as in the reference.
        tv = self.tv_weight * tv_loss(self.net.preprocess(image)) if self.tv_weight > 0 else zero
        return LossTerms(content, style, tv, content + style + tv)
