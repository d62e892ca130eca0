"""Where the tiles of an image lie, how far each must reach, and which tile size fits.

A VGG19 feature at position q of a layer whose total stride is s depends on the input
pixels from ``q*s - left`` to ``q*s + right`` (the layer's reach, from the topology).
A tile that owns the *core* [x0, x1) of an image and is run through the network with
a *halo* of h pixels around it therefore gives, in its core, exactly the features of
the whole image when

* h >= left, and h >= right - s + 1 (the reach of the core's last feature), and
* x0 - h is a multiple of s, so that every pooling window of the tile is one of
  the whole image's (core sides and halo are multiples of s),

with zero padding only where the tile meets the true image border. Smaller halos
trade exactness for speed (docs/tiled.md measures how much).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..model.topology import LAYERS, VGG19_LAYERS

# The smallest tile side allowed: a multiple of VGG19's stride at relu5_x.
TILE_STEP = 16


@dataclass(frozen=True)
class Reach:
    """How far a layer's features see into the input, in input pixels."""

    left: int  # pixels before q*s that feature q depends on
    right: int  # pixels after q*s
    stride: int

    @property
    def halo(self) -> int:
        """The halo that makes a core's features exact, before alignment."""
        return max(self.left, self.right - self.stride + 1)


def reach(layer: str) -> Reach:
    """The reach of ``layer``: each 3x3 convolution adds one step of the current
    stride on both sides; each 2x2 pooling adds one step on the right and doubles
    the stride."""
    left = right = 0
    stride = 1
    for name in VGG19_LAYERS[: VGG19_LAYERS.index(layer) + 1]:
        kind = LAYERS[name].kind
        if kind == "conv":
            left, right = left + stride, right + stride
        elif kind == "pool":
            right += stride
            stride *= 2
    return Reach(left, right, stride)


def deepest(layers: Iterable[str]) -> str:
    return max(layers, key=VGG19_LAYERS.index)


def alignment(layers: Iterable[str]) -> int:
    """The multiple that tile origins (and so cores and halos) must be of."""
    return LAYERS[deepest(layers)].stride


def full_halo(layers: Iterable[str]) -> int:
    """The narrowest halo that gives exact features at every one of ``layers``."""
    need = reach(deepest(layers)).halo
    step = alignment(layers)
    return -(-need // step) * step


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)


@dataclass(frozen=True)
class Tile:
    core: Box  # the pixels whose features (and loss terms) this tile owns
    padded: Box  # core and halo, clipped to the image: what runs through the network

    def core_at(self, stride: int) -> tuple[slice, slice]:
        """(rows, columns) of the core's features in the padded tile's feature map."""
        c, p = self.core, self.padded
        rows = slice(c.y0 // stride - p.y0 // stride, c.y1 // stride - p.y0 // stride)
        cols = slice(c.x0 // stride - p.x0 // stride, c.x1 // stride - p.x0 // stride)
        return rows, cols

    def core_in_image(self, stride: int) -> tuple[slice, slice]:
        """(rows, columns) of the core's features in the whole image's feature map."""
        c = self.core
        return slice(c.y0 // stride, c.y1 // stride), slice(c.x0 // stride, c.x1 // stride)

    def padded_slices(self) -> tuple[slice, slice]:
        p = self.padded
        return slice(p.y0, p.y1), slice(p.x0, p.x1)


@dataclass(frozen=True)
class TileGrid:
    """Cores of ``tile`` x ``tile`` pixels covering a ``width`` x ``height`` image."""

    width: int
    height: int
    tile: int
    halo: int

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.halo < 0:
            raise ValueError(f"a tile grid needs tile > 0 and halo >= 0, got {self}")

    def tiles(self) -> list[Tile]:
        out = []
        for y0 in range(0, self.height, self.tile):
            for x0 in range(0, self.width, self.tile):
                core = Box(x0, y0, min(x0 + self.tile, self.width), min(y0 + self.tile, self.height))
                padded = Box(
                    max(0, core.x0 - self.halo),
                    max(0, core.y0 - self.halo),
                    min(self.width, core.x1 + self.halo),
                    min(self.height, core.y1 + self.halo),
                )
                out.append(Tile(core, padded))
        return out

    def __len__(self) -> int:
        return -(-self.width // self.tile) * -(-self.height // self.tile)

    def padded_area(self) -> int:
        """Pixels run through the network per pass, halos included."""
        return sum(t.padded.area for t in self.tiles())


def grid_for(width: int, height: int, tile: int, layers: Iterable[str], halo: int | None) -> TileGrid:
    """The grid for an image of this size: cores of ``tile`` rounded down to the
    alignment ``layers`` need (pool5 needs 32), the full halo unless one is given."""
    layers = tuple(layers)
    step = alignment(layers)
    core = max(step, tile // step * step)
    if halo is None:
        halo = full_halo(layers)
    elif halo % step:
        raise ValueError(f"the halo must be a multiple of {step} for these layers, got {halo}")
    return TileGrid(width, height, core, halo)


def is_tiled(tile: int | None, size: tuple[int, int]) -> bool:
    """Whether a scale of ``size`` (width, height) runs tiled: tile set, image larger."""
    return bool(tile) and max(size) > (tile or 0)
