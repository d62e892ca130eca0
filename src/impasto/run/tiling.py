"""Where the tiles of an image lie, how far each must reach, and which tile size fits.

A VGG19 feature at position q of a layer whose total stride is s depends on the input
pixels from ``q*s - left`` to ``q*s + right`` (the layer's reach, from the topology).
A tile that owns the *core* [x0, x1) of an image and is run through the network with
a *halo* of h pixels around it therefore gives, in its core, exactly the features of
the whole image when

* h >= left, and h >= right - s + 1 (the reach of the core's last feature), and
* x0 - h is a multiple of s, so that every pooling window of the tile is one of
  the whole image's (core sides and halo are multiples of s),

with zero padding only where the tile meets the true image border. That full halo is
a worst case: a pixel at the edge of a receptive field barely moves a feature. The
default halo covers two thirds of the reach (48 px at relu5_1 instead of 80), which
changed the gradient by at most 2e-5 of its largest value in the measurements of
docs/tiled.md, for 18-20% less work than the full halo.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch

from ..devices import FIXED_BYTES, Machine, available_memory_bytes, estimate_memory_bytes
from ..errors import ImpastoError
from ..model.topology import LAYERS, VGG19_LAYERS
from ..settings import Settings
from .schedule import Schedule

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
    layers = tuple(layers)
    return _aligned(reach(deepest(layers)).halo, alignment(layers))


# The default halo's share of the full one's reach (see the module's docstring).
HALO_FRACTION = 2 / 3


def default_halo(layers: Iterable[str]) -> int:
    """The halo used unless one is given: two thirds of the reach, aligned."""
    layers = tuple(layers)
    return _aligned(math.ceil(HALO_FRACTION * reach(deepest(layers)).halo), alignment(layers))


def _aligned(pixels: int, step: int) -> int:
    return -(-pixels // step) * step


def features_along(pixels: int, stride: int, ceil: bool = False) -> int:
    """Features along a side of ``pixels`` at a layer of total ``stride``: each pooling
    halves it, rounding down, or up where the pooling keeps a last, partial window."""
    return -(-pixels // stride) if ceil else pixels // stride


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
    ceil: bool = False  # whether the network's pooling rounds sides up

    def core_at(self, stride: int) -> tuple[slice, slice]:
        """(rows, columns) of the core's features in the padded tile's feature map."""
        c, p = self.core, self.padded
        y1, x1 = features_along(c.y1, stride, self.ceil), features_along(c.x1, stride, self.ceil)
        rows = slice(c.y0 // stride - p.y0 // stride, y1 - p.y0 // stride)
        cols = slice(c.x0 // stride - p.x0 // stride, x1 - p.x0 // stride)
        return rows, cols

    def core_in_image(self, stride: int) -> tuple[slice, slice]:
        """(rows, columns) of the core's features in the whole image's feature map."""
        c = self.core
        y1, x1 = features_along(c.y1, stride, self.ceil), features_along(c.x1, stride, self.ceil)
        return slice(c.y0 // stride, y1), slice(c.x0 // stride, x1)

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
    ceil: bool = False  # whether the network's pooling rounds sides up

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.halo < 0:
            raise ValueError(f"a tile grid needs tile > 0 and halo >= 0, got {self}")

    def tiles(self) -> list[Tile]:
        out = []
        for y0 in range(0, self.height, self.tile):
            for x0 in range(0, self.width, self.tile):
                core = Box(
                    x0, y0, min(x0 + self.tile, self.width), min(y0 + self.tile, self.height)
                )
                padded = Box(
                    max(0, core.x0 - self.halo),
                    max(0, core.y0 - self.halo),
                    min(self.width, core.x1 + self.halo),
                    min(self.height, core.y1 + self.halo),
                )
                out.append(Tile(core, padded, self.ceil))
        return out

    def __len__(self) -> int:
        return -(-self.width // self.tile) * -(-self.height // self.tile)

    def padded_area(self) -> int:
        """Pixels run through the network per pass, halos included."""
        return sum(t.padded.area for t in self.tiles())


def grid_for(
    width: int,
    height: int,
    tile: int,
    layers: Iterable[str],
    halo: int | None,
    ceil: bool = False,
) -> TileGrid:
    """The grid for an image of this size: cores of ``tile`` rounded down to the
    alignment ``layers`` need (pool5 needs 32), the default halo unless one is given;
    ``ceil`` for a network whose pooling rounds sides up."""
    layers = tuple(layers)
    step = alignment(layers)
    core = max(step, tile // step * step)
    if halo is None:
        halo = default_halo(layers)
    elif halo % step:
        raise ValueError(f"the halo must be a multiple of {step} for these layers, got {halo}")
    return TileGrid(width, height, core, halo, ceil)


def is_tiled(tile: int | None, size: tuple[int, int]) -> bool:
    """Whether a scale of ``size`` (width, height) runs tiled: tile set, image larger."""
    return bool(tile) and max(size) > (tile or 0)


# --- what fits -------------------------------------------------------------------------
# Memory of a tiled run, in float32 (half of the per-pixel parts in bf16/fp16): what grows
# with the image (iterate, gradient, best image, L-BFGS vectors and history, content
# targets) per output pixel, and the network's forward and backward per pixel of one
# padded tile. Per output pixel: six float32 RGB images (iterate, gradient, best image,
# L-BFGS step, previous gradient, direction: 72 B), five bf16 history pairs (60 B) and
# the content targets in bf16 (20 B), rounded up; a 4096x3072 print in tiles of 512 px
# peaked at 3.5 GB, as this estimates (benchmarks/tiled.py, docs/tiled.md).
IMAGE_BYTES_PER_PIXEL = 160
TILE_BYTES_PER_PIXEL = 3200
# Tile sides auto tries, largest first.
AUTO_TILES = (4096, 3072, 2048, 1536, 1024, 768, 512, 384, 256)
# An iteration's cost per padded pixel against an untiled one: two forward passes and
# one backward instead of one of each (a backward costs about two forwards).
SECOND_PASS_COST = 4 / 3


def estimate_tiled_bytes(width: int, height: int, grid: TileGrid, dtype: torch.dtype | None) -> int:
    """Peak memory of a tiled run at this size (a safe overestimate)."""
    half = dtype in (torch.float16, torch.bfloat16)
    tile = min(grid.width, grid.tile + 2 * grid.halo) * min(grid.height, grid.tile + 2 * grid.halo)
    image = IMAGE_BYTES_PER_PIXEL * width * height
    return FIXED_BYTES + image + (TILE_BYTES_PER_PIXEL // (2 if half else 1)) * tile


def network_layers(settings: Settings) -> tuple[str, ...]:
    return tuple(set(settings.content_layer_weights()) | settings.all_style_layers()) or (
        "conv1_1",
    )


def resolve_tile(
    settings: Settings, size: tuple[int, int], machine: Machine, free: int | None = None
) -> int:
    """The tile side to use for a run whose final size is ``size`` (width, height).

    ``settings.tile`` when set (after checking that it fits); for auto, 0 when the
    untiled evaluation fits the memory available (``free`` bytes, by default what the
    device has free now) and else the largest tile that does. Raises
    :class:`ImpastoError` when nothing fits.
    """
    width, height = size
    if free is None:
        free = available_memory_bytes(machine.device)
    layers = network_layers(settings)
    if settings.tile is None:
        untiled = estimate_memory_bytes(height, width, machine.dtype)
        if free is None or untiled <= free:
            return 0
        candidates = [t for t in AUTO_TILES if t < max(size)]
        if not candidates:  # too small to tile
            raise ImpastoError(
                f"a {width}x{height} image needs about {untiled / 1e9:.1f} GB but only "
                f"{free / 1e9:.1f} GB is free on {machine.device}"
            )
    elif not is_tiled(settings.tile, size):
        machine.check_fits(width, height)
        return settings.tile
    else:
        candidates = [settings.tile]
    for tile in candidates:
        need = estimate_tiled_bytes(
            width, height, grid_for(width, height, tile, layers, None), machine.dtype
        )
        if free is None or need <= free:
            return tile
    raise ImpastoError(
        f"a {width}x{height} image needs about {need / 1e9:.1f} GB even in tiles of "
        f"{tile} px, but only {free / 1e9:.1f} GB is free on {machine.device}; use a smaller "
        "--size or --tile"
    )


def tiled_cost(size: tuple[int, int], tile: int, layers: Iterable[str]) -> float:
    """An iteration's cost per pixel at ``size``, relative to an untiled iteration."""
    if not is_tiled(tile, size):
        return 1.0
    grid = grid_for(*size, tile, layers, None)
    return SECOND_PASS_COST * grid.padded_area() / (size[0] * size[1])


def plan_tiles(settings: Settings, schedule: Schedule, machine: Machine) -> tuple[int, Schedule]:
    """The run's tile side (auto resolved, so that the settings recorded repeat the run)
    and its schedule, with tiled scales weighted by their cost for the time left."""
    tile = resolve_tile(settings, schedule.sizes[-1], machine)
    layers = network_layers(settings)
    costs = tuple(tiled_cost(size, tile, layers) for size in schedule.sizes)
    return tile, replace(schedule, costs=costs)
