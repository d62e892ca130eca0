"""Exact tiled evaluation: the loss and gradient of an image too large to run at once.

The loss is a sum over positions (content, total variation) plus functions of Gram
matrices, which are themselves sums over positions. So (DESIGN.md section 5):

1. A first pass runs the network on each tile (core plus halo, no graph kept) and
   adds the core's share of every Gram matrix, Σ_core F Fᵀ / (C·N), into G_l; the
   style loss of the whole image and D_l = ∂L/∂G_l follow from the G_l alone.
2. A second pass runs each tile again with a graph and back-propagates the content
   and TV terms of its core plus ⟨D_l, Σ_core F Fᵀ / (C·N)⟩, whose gradient is the
   tile's share of the style gradient; the tiles' input gradients add up to ∂L/∂x.

With the full halo (:mod:`impasto.run.tiling`) every core feature equals the whole
image's, so the loss and gradient are the untiled ones up to float rounding, while
memory is bounded by the tile. The content targets and the style images' Gram
matrices are measured tile by tile the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..devices import Machine
from ..loss.gatys import GatysLoss, LossTerms
from ..loss.gram import gram_product, wide
from ..loss.guidance import layer_masks
from ..model.topology import LAYERS
from ..model.vgg import VGG19Features
from .tiling import Tile, TileGrid, features_along, grid_for

# A Gram matrix of the output: (None, layer) unguided, shared by the styles that use the
# layer without a region; (i, layer) for style i guided by its content mask.
GramKey = tuple[int | None, str]

# Content targets in float32 up to this size, else stored in bf16 (a 4096x3072 print's
# relu4_2 features take 403 MB in float32). Features computed in bf16 are stored in
# bf16 anyway: nothing is lost.
CONTENT_TARGET_BYTES = 256 * 2**20


class TileMeter:
    """Tiles done in the current pass over an image; ``callback(done, total)`` after each.

    ``stage`` says what the pass is for: ``"targets"`` while the content and style
    targets of a tiled size are measured, ``"iteration"`` while an iterate is.
    """

    def __init__(self, callback: Callable[[int, int], None] | None = None) -> None:
        self.callback = callback
        self.done = 0
        self.total = 0
        self.stage = "iteration"

    def start(self, total: int, stage: str = "iteration") -> None:
        self.done, self.total, self.stage = 0, total, stage

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _crop(t: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    return t[:, :, rows, cols]


def _clipped(x: torch.Tensor) -> torch.Tensor:
    """``x`` clipped to 0-255 with the gradient passed straight through, as in
    :func:`impasto.run.evaluate.loss_of_saved_image`."""
    return x + (x.clamp(0, 255) - x).detach()


class TiledGatysLoss(GatysLoss):
    """:class:`GatysLoss`, measured and evaluated tile by tile.

    Calling it gives the loss terms of an image (without a gradient: the gradient is
    :class:`TiledEvaluator`'s work). ``tile`` is the core's side in pixels and
    ``halo`` the margin around it (None: :func:`~impasto.run.tiling.default_halo`;
    :func:`~impasto.run.tiling.full_halo` makes it exact).
    """

    def __init__(
        self,
        net: VGG19Features,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        *,
        tile: int,
        halo: int | None = None,
        meter: TileMeter | None = None,
        **weights: Any,
    ):
        # Read by the target hooks that GatysLoss.__init__ calls.
        self.tile, self.halo = tile, halo
        # Whether the network's pooling keeps partial windows (rounds sides up).
        self.ceil = any(getattr(m, "ceil_mode", False) for m in net.modules())
        self.tile_targets: list[dict[str, torch.Tensor]] = []
        self.meter = meter or TileMeter()  # measuring the targets takes a pass per image
        super().__init__(net, content, styles, **weights)
        self.height, self.width = content.shape[-2:]
        self.device = content.device
        self.grid = self.grid_for(self.width, self.height)
        self.tiles = self.grid.tiles()
        self.gram_keys = self._gram_keys()
        self.divisors = {key: self._divisor(key) for key in self.gram_keys}

    # --- geometry ---------------------------------------------------------------------
    def grid_for(self, width: int, height: int) -> TileGrid:
        # With no network layer in use only TV is left, which needs one pixel of halo.
        layers = self.layers or ("conv1_1",)
        return grid_for(width, height, self.tile, layers, self.halo, self.ceil)

    def _count(self, layer: str) -> int:
        """Positions of ``layer`` in the whole output image."""
        s = LAYERS[layer].stride
        return features_along(self.height, s, self.ceil) * features_along(self.width, s, self.ceil)

    def _gram_keys(self) -> list[GramKey]:
        keys: list[GramKey] = []
        for i, (weights, region) in enumerate(zip(self.style_layer_sets, self.region_masks)):
            for layer in weights:
                key = (None if region is None else i, layer)
                if key not in keys:
                    keys.append(key)
        return keys

    def _divisor(self, key: GramKey) -> torch.Tensor | float:
        """C·N, or C·Σ T² for a guided Gram matrix, as the whole image has them."""
        index, layer = key
        channels = LAYERS[layer].out_channels
        if index is None:
            return float(channels * self._count(layer))
        region = self.region_masks[index]
        assert region is not None
        return channels * (region[layer] ** 2).sum()

    # --- targets, measured tile by tile ---------------------------------------------------
    def content_features(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each tile's core features of the content image, kept in ``tile_targets``."""
        height, width = content.shape[-2:]
        positions = sum(
            LAYERS[k].out_channels
            * features_along(height, LAYERS[k].stride, self.ceil)
            * features_along(width, LAYERS[k].stride, self.ceil)
            for k in self.content_layers
        )
        self.tile_targets = []
        tiles = self.grid_for(width, height).tiles()
        self.meter.start(len(tiles), "targets")
        for tile in tiles:
            feats = self.net(_crop(content, *tile.padded_slices()), self.content_layers)
            self.tile_targets.append(
                {
                    layer: _crop(f, *tile.core_at(LAYERS[layer].stride)).to(
                        _target_dtype(f.dtype, 4 * positions), copy=True
                    )
                    for layer, f in feats.items()
                }
            )
            self.meter.step()
        return {}

    def style_grams(
        self, style: torch.Tensor, layers: Mapping[str, float], mask: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """A style image's (guided) Gram matrices, summed over its tiles."""
        if not layers:
            return {}
        height, width = style.shape[-2:]
        masks = None if mask is None else layer_masks(mask, layers)
        sums: dict[str, torch.Tensor] = {}
        tiles = self.grid_for(width, height).tiles()
        self.meter.start(len(tiles), "targets")
        for tile in tiles:
            feats = self.net(_crop(style, *tile.padded_slices()), layers)
            for layer, f in feats.items():
                s = LAYERS[layer].stride
                core = _crop(f, *tile.core_at(s))
                if masks is None:
                    divisor: torch.Tensor | float = (
                        f.shape[1]
                        * features_along(height, s, self.ceil)
                        * features_along(width, s, self.ceil)
                    )
                else:
                    core = wide(core) * _crop(masks[layer], *tile.core_in_image(s)).to(core.device)
                    divisor = f.shape[1] * (masks[layer] ** 2).sum()
                g = gram_product(core.reshape(1, core.shape[1], -1), divisor)
                sums[layer] = g if layer not in sums else sums[layer] + g
            self.meter.step()
        return sums

    # --- one tile -----------------------------------------------------------------------
    def tile_terms(
        self, x: torch.Tensor, index: int
    ) -> tuple[torch.Tensor, torch.Tensor, dict[GramKey, torch.Tensor]]:
        """Content and TV terms of tile ``index``'s core, and its share of each Gram
        matrix; ``x`` is the tile with its halo (the padded box)."""
        tile = self.tiles[index]
        feats = self.net(x, self.layers) if self.layers else {}
        zero = x.new_zeros((), dtype=torch.float32)
        content = zero
        for layer, w in self.content_layers.items():
            f = _crop(feats[layer], *tile.core_at(LAYERS[layer].stride))
            target = self.tile_targets[index][layer]
            squares = ((wide(f) - target.to(torch.float32)) ** 2).sum()
            content = content + w * squares / (f.shape[1] * self._count(layer))
        tv = (
            self.tv_weight * self._tile_tv(self.net.preprocess(x), tile) if self.tv_weight else zero
        )
        grams = {}
        for key in self.gram_keys:
            region, layer = key
            s = LAYERS[layer].stride
            f = _crop(feats[layer], *tile.core_at(s))
            if region is not None:
                mask = self.region_masks[region]
                assert mask is not None
                f = wide(f) * _crop(mask[layer], *tile.core_in_image(s))
            grams[key] = gram_product(f.reshape(1, f.shape[1], -1), self.divisors[key])
        return self.content_weight * content, tv, grams

    def _tile_tv(self, pre: torch.Tensor, tile: Tile) -> torch.Tensor:
        """The core's share of mean(dy²) + mean(dx²): the pairs whose first pixel it owns."""
        c, p = tile.core, tile.padded
        r0, r1, c0, c1 = c.y0 - p.y0, c.y1 - p.y0, c.x0 - p.x0, c.x1 - p.x0
        r_end = min(r1 + 1, p.y1 - p.y0)  # one row more, where the halo has it
        c_end = min(c1 + 1, p.x1 - p.x0)
        dy = pre[:, :, r0 + 1 : r_end, c0:c1] - pre[:, :, r0 : r_end - 1, c0:c1]
        dx = pre[:, :, r0:r1, c0 + 1 : c_end] - pre[:, :, r0:r1, c0 : c_end - 1]
        h, w = self.height, self.width
        return (dy**2).sum() / (3 * (h - 1) * w) + (dx**2).sum() / (3 * h * (w - 1))

    # --- the whole image -------------------------------------------------------------------
    def style_from_grams(self, grams: Mapping[GramKey, torch.Tensor]) -> torch.Tensor:
        """style_weight · Σ_i b_i Σ_l w_il · mean((G_l − A_il)²), from the image's Grams."""
        terms = [
            b * w * torch.mean((grams[(None if region is None else i, layer)] - t[layer]) ** 2)
            for i, (t, b, weights, region) in enumerate(
                zip(self.style_targets, self.style_blend, self.style_layer_sets, self.region_masks)
            )
            for layer, w in weights.items()
        ]
        if not terms:
            return torch.zeros((), device=self.device)
        return self.style_weight * torch.stack(terms).sum()

    def style_slopes(
        self, grams: Mapping[GramKey, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[GramKey, torch.Tensor]]:
        """The style loss and D = ∂(style loss)/∂G for each of the image's Gram matrices."""
        leaves = {k: g.detach().requires_grad_(True) for k, g in grams.items()}
        with torch.enable_grad():
            style = self.style_from_grams(leaves)
        if not leaves:
            return style.detach(), {}
        style.backward()
        slopes = {
            k: g.grad if g.grad is not None else torch.zeros_like(g) for k, g in leaves.items()
        }
        return style.detach(), slopes

    def first_pass(
        self, image: torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    ) -> tuple[dict[GramKey, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The image's Gram matrices and its content and TV terms, tile by tile, no graph.

        ``prepare`` is applied to each tile first (the evaluator's clip to 0-255).
        """
        grams: dict[GramKey, torch.Tensor] = {}
        content = tv = image.new_zeros((), dtype=torch.float32)
        with torch.no_grad():
            for i, tile in enumerate(self.tiles):
                c, v, partial = self.tile_terms(prepare(_crop(image, *tile.padded_slices())), i)
                content, tv = content + c, tv + v
                for key, g in partial.items():
                    grams[key] = g if key not in grams else grams[key] + g
                self.meter.step()
        return grams, content, tv

    def forward(self, image: torch.Tensor) -> LossTerms:
        """The loss terms of ``image``, measured tile by tile (no gradient)."""
        self.meter.start(len(self.tiles))
        grams, content, tv = self.first_pass(image)
        style = self.style_from_grams(grams)
        return LossTerms(content, style, tv, content + style + tv)

    def evaluator(self, machine: Machine) -> TiledEvaluator:
        """The evaluator of this loss (see :func:`impasto.run.evaluate.make_evaluator`)."""
        return TiledEvaluator(self, machine)


def _target_dtype(computed: torch.dtype, float32_bytes: int) -> torch.dtype:
    """Content targets are kept as computed (bf16 or fp16 features lose nothing), in
    float32 while they are small, else in bf16."""
    if computed != torch.float32:
        return computed
    return torch.float32 if float32_bytes <= CONTENT_TARGET_BYTES else torch.bfloat16


class TiledEvaluator:
    """Loss and exact gradient of an iterate, two passes over the tiles (see the module)."""

    def __init__(self, loss: TiledGatysLoss, machine: Machine):
        self.loss = loss
        self.machine = machine

    def __call__(self, x: torch.Tensor) -> LossTerms:
        loss, tiles = self.loss, self.loss.tiles
        x.grad = None
        loss.meter.start(2 * len(tiles))
        with self.machine.autocast():
            grams, content, tv = loss.first_pass(x.detach(), _clipped)
        style, slopes = loss.style_slopes(grams)
        grad = torch.zeros_like(x)
        for i, tile in enumerate(tiles):
            rows, cols = tile.padded_slices()
            xt = x.detach()[:, :, rows, cols].clone().requires_grad_(True)
            with self.machine.autocast():
                c, v, partial = loss.tile_terms(_clipped(xt), i)
                surrogate = c + v
                for key, g in partial.items():
                    surrogate = surrogate + (slopes[key] * g).sum()
            surrogate.backward()
            assert xt.grad is not None
            grad[:, :, rows, cols] += xt.grad
            loss.meter.step()
        x.grad = grad
        return LossTerms(content, style, tv, content + style + tv)

    def score(self, x: torch.Tensor) -> LossTerms:
        self.loss.meter.start(len(self.loss.tiles))
        with self.machine.autocast():
            grams, content, tv = self.loss.first_pass(x.detach(), _clipped)
        style = self.loss.style_from_grams(grams)
        return LossTerms(content, style, tv, content + style + tv)
