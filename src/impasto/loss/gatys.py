"""The losses of Gatys, Ecker & Bethge (2016), with the reference normalisation.

    L_total = content_weight * sum_l cw_l * mean((F_l(x) - F_l(c))^2)
            + style_weight   * sum_i b_i * sum_l w_l * mean((G_l(x) - G_l(s_i))^2)
            + tv_weight      * (mean(dy^2) + mean(dx^2))

with G_l = F F^T / (C*H*W). Normalising by the layer size (rather than the paper's
1/(4 N^2 M^2) and sum) follows anishathalye/neural-style, so that the reference
weights 5 / 500 / 100 carry over; it changes the relative weight of layers of
different sizes, not the nature of the optimum.

Spatial and scale control (Gatys et al., CVPR 2017) generalise the style term
(:func:`guided_style_loss`): style i drives its own layers L_i, and may be matched
only inside a region r_i of the output and measured only inside a region of its
image, with guided Gram matrices G^r (see :mod:`impasto.guidance`):

    style_weight * sum_i b_i * sum_{l in L_i} w_il * mean((G_l^{r_i}(x) - G_l^{r_i'}(s_i))^2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..model.vgg import VGG19Features
from .gram import gram_product, wide
from .guidance import layer_masks, masked_gram


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C*H*W) for features of shape (N, C, H, W); returns (N, C, C)."""
    n, c, h, w = features.shape
    return gram_product(features.reshape(n, c, h * w), c * h * w)


def content_loss(
    features: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """sum_l cw_l * mean((F_l(x) - F_l(c))^2)."""
    terms = [
        w * torch.mean((wide(features[layer]) - targets[layer]) ** 2)
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


def guided_style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Sequence[Mapping[str, torch.Tensor]],
    layer_weights: Sequence[Mapping[str, float]],
    blend: Sequence[float],
    masks: Sequence[Mapping[str, torch.Tensor] | None],
) -> torch.Tensor:
    """sum_i b_i * sum_{l in L_i} w_il * mean((G_l^{r_i}(x) - G_l^{r_i'}(s_i))^2).

    Style i has its own layer weights (scale control) and, unless its entry of
    ``masks`` is None, is matched only inside its region (spatial control), whose
    mask is given at each of its layers. ``target_grams`` are computed by the caller,
    guided by the style masks where there are any. With one set of layers and no
    masks this is :func:`style_loss`, term for term.
    """
    plain: dict[str, torch.Tensor] = {}  # unguided Gram matrices, shared by the styles
    terms = []
    for targets, b, weights, region in zip(target_grams, blend, layer_weights, masks):
        for layer, w in weights.items():
            if region is None:
                if layer not in plain:
                    plain[layer] = gram_matrix(features[layer])
                gram = plain[layer]
            else:
                gram = masked_gram(features[layer], region[layer])
            terms.append(b * w * torch.mean((gram - targets[layer]) ** 2))
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
        # One transfer for all four: on a GPU each .item() waits for the device.
        terms = (self.content, self.style, self.tv, self.total)
        content, style, tv, total = torch.stack([t.detach().float() for t in terms]).tolist()
        return {"content": content, "style": style, "tv": tv, "total": total}


class GatysLoss(nn.Module):
    """The total loss of an image against fixed content and style targets.

    Targets are computed once, without a graph, when the loss is built: only the
    image being optimised goes through the network at each step.

    The optional controls of Gatys et al. (2017), one entry per style image:
    ``style_layers_per_style`` gives each style its own layer weights in place of
    ``style_layers`` (scale control); ``content_masks`` (at the content image's
    size) and ``style_masks`` (at that style image's size) are (1, 1, H, W) masks in
    [0, 1], or None for the whole image (spatial control).
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
        style_layers_per_style: Sequence[Mapping[str, float]] | None = None,
        content_masks: Sequence[torch.Tensor | None] | None = None,
        style_masks: Sequence[torch.Tensor | None] | None = None,
        style_balance: str = "reference",
    ):
        super().__init__()
        self.net = net
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        n = len(styles)
        for name, given in (
            ("style_layers_per_style", style_layers_per_style),
            ("content_masks", content_masks),
            ("style_masks", style_masks),
        ):
            if given is not None and len(given) != n:
                raise ValueError(f"{name}: {len(given)} entries for {n} style image(s)")
        # Layers with zero weight are dropped so they are never computed.
        self.content_layers = dict(content_layers) if content_weight > 0 else {}
        self.style_layers = dict(style_layers) if style_weight > 0 else {}
        self.style_blend = list(style_blend)
        # The layers (and their weights) that each style drives.
        per_style = style_layers_per_style or [style_layers] * n
        self.style_layer_sets = [dict(w) for w in per_style] if style_weight > 0 else []
        # Every layer the loss reads, fixed from here on. A tuple, not a set:
        # torch.compile (2.11) failed to trace set(a_set) in the network's forward.
        self.layers = tuple(sorted(set(self.content_layers).union(*self.style_layer_sets)))
        content_masks = content_masks or [None] * n
        style_masks = style_masks or [None] * n
        self.guided = style_layers_per_style is not None or any(
            m is not None for m in (*content_masks, *style_masks)
        )
        # Each style's output region, at the resolution of each of its layers.
        self.region_masks = [
            None if m is None else layer_masks(_check_size(m, content, "content"), layers)
            for m, layers in zip(content_masks, self.style_layer_sets)
        ]
        with torch.no_grad():
            self.content_targets = self.content_features(content)
            self.style_targets = [
                self.style_grams(s, layers, mask)
                for s, layers, mask in zip(styles, self.style_layer_sets, style_masks)
            ]
        if style_balance == "relative":
            self.balance_style_layers()
        elif style_balance != "reference":
            raise ValueError(f"style_balance: reference or relative, got {style_balance!r}")

    def balance_style_layers(self) -> None:
        """Give every style layer its say: each layer's weight is divided by the mean
        square of its target Gram matrix and multiplied by their mean over the layers.

        The layers' Gram matrices differ in size by orders of magnitude (relu5_1's
        are about 10^4 times smaller than relu4_1's), so with the reference's weights
        the deepest layer, which carries a painting's large-scale structure, hardly
        counts. Divided by its target's mean square each term is a relative error;
        the mean keeps the style term's overall scale.
        """
        self.style_layer_sets = [
            _balanced(weights, targets)
            for weights, targets in zip(self.style_layer_sets, self.style_targets)
        ]
        self.guided = True  # the weights now differ from style to style

    # The two ways targets are measured; a tiled loss measures them tile by tile.
    def content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """The content image's features at the content layers (the content targets)."""
        feats = self.net(content, self.content_layers) if self.content_layers else {}
        return {k: wide(v) for k, v in feats.items()}

    def style_grams(
        self, style: torch.Tensor, layers: Mapping[str, float], mask: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """A style image's (guided) Gram matrices at ``layers`` (its style targets)."""
        return _style_grams(self.net, style, layers, mask)

    def set_content(self, content: torch.Tensor) -> None:
        """Match a new content image of the same size (a video's next frame).

        The style targets are kept: they do not depend on the content. The content
        targets are overwritten in place, so an evaluator that captured this loss
        (a CUDA graph) reads the new ones.
        """
        with torch.no_grad():
            feats = self.net(content, self.content_layers) if self.content_layers else {}
            for layer, target in self.content_targets.items():
                if feats[layer].shape != target.shape:
                    raise ValueError(f"a content image of another size: {tuple(content.shape)}")
                target.copy_(wide(feats[layer]))

    def forward(self, image: torch.Tensor) -> LossTerms:
        zero = image.new_zeros(())
        feats = self.net(image, self.layers) if self.layers else {}
        content = (
            self.content_weight * content_loss(feats, self.content_targets, self.content_layers)
            if self.content_layers
            else zero
        )
        if not any(self.style_layer_sets):
            style = zero
        elif self.guided:
            style = self.style_weight * guided_style_loss(
                feats,
                self.style_targets,
                self.style_layer_sets,
                self.style_blend,
                self.region_masks,
            )
        else:
            style = self.style_weight * style_loss(
                feats, self.style_targets, self.style_layers, self.style_blend
            )
        # TV is measured in the network's input units, as in the reference.
        tv = self.tv_weight * tv_loss(self.net.preprocess(image)) if self.tv_weight > 0 else zero
        return LossTerms(content, style, tv, content + style + tv)


def _balanced(
    weights: Mapping[str, float], targets: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Layer weights divided by the mean square of each layer's target, times their mean."""
    squares = {layer: float(torch.mean(targets[layer].float() ** 2)) for layer in weights}
    if not all(v > 0 for v in squares.values()):
        return dict(weights)  # a flat style image: nothing to balance against
    mean = sum(squares.values()) / len(squares)
    return {layer: w * mean / squares[layer] for layer, w in weights.items()}


def _check_size(mask: torch.Tensor, image: torch.Tensor, what: str) -> torch.Tensor:
    if mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"a {what} mask of size {tuple(mask.shape[-2:])} for an image of size "
            f"{tuple(image.shape[-2:])}"
        )
    return mask


def _style_grams(
    net: VGG19Features,
    style: torch.Tensor,
    layers: Mapping[str, float],
    mask: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """A style image's (guided) Gram matrices at ``layers``."""
    if not layers:
        return {}
    feats = net(style, layers)
    if mask is None:
        return {k: gram_matrix(v) for k, v in feats.items()}
    masks = layer_masks(_check_size(mask, style, "style"), layers)
    return {k: masked_gram(v, masks[k]) for k, v in feats.items()}
